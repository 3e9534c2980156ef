//! `statusrelay check [--online]`: the config is valid (file, line, key), what it means, what
//! is probably not meant (warnings), and with `--online` that the page answers, every component
//! exists and the token can write.

use std::fmt::Write as _;
use std::sync::Arc;

use statusrelay_backend::ComponentRef;
use statusrelay_core::config::BackendConfig;
use statusrelay_core::time::Clock;
use statusrelay_core::{Config, duration};

use crate::AppError;
use crate::flusher::build_backend;

/// `statusrelay check [--online]`.
pub fn run(
    a: &crate::cli::CheckArgs,
    config: Option<&std::path::Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    check(&Config::load(config)?, a.online, clock)
}

/// `statusrelay check`.
pub fn check(config: &Config, online: bool, clock: Arc<dyn Clock>) -> Result<String, AppError> {
    let mut out = String::new();
    let src = config
        .source
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    // Building the backend reads the token and the CA file and warns about weak transport,
    // exactly as the flusher will; nothing goes on the network here.
    let mut backend = build_backend(config, clock, None)?;
    let _ = writeln!(out, "config OK: {src}");
    let _ = writeln!(out, "  spool:   {}", config.spool.display());
    describe_backend(config, &mut out);
    if let Some(sv) = &config.serve {
        // The certificate is loaded exactly as `serve` will: a bad one fails here, not at 3 a.m.
        let tls = match (&sv.tls_cert, &sv.tls_key) {
            (Some(cert), Some(key)) => {
                statusrelay_serve::tls::server_config(cert, key).map_err(|message| {
                    AppError::Core(statusrelay_core::CoreError::ConfigInvalid {
                        path: src.clone().into(),
                        key: "serve.tls_cert".into(),
                        message,
                    })
                })?;
                format!("TLS with {}", cert.display())
            }
            _ => "plain HTTP".into(),
        };
        let _ = writeln!(
            out,
            "  serve:   {} ({tls}); nodes stale after {} missed periods, {} requests/s each after a burst of {}",
            sv.listen, sv.stale_after, sv.node_rate, sv.node_burst
        );
    }
    // The store is resolved as `serve` will (password file, CA file, connection string);
    // nothing goes on the network here.
    let store = statusrelay_pg::Target::of(config)?;
    if let Some(t) = &store {
        let _ = writeln!(out, "  store:   {}", t.describe());
        // This host's own Monit is a node like any other here: `serve` delivers what the
        // database holds, never the spool the exec handler writes.
        let _ = writeln!(
            out,
            "  this host's Monit: report it with `set mmonit` to the instances (docs/ha.md); `statusrelay monit` with this config keeps its events in {}, which no instance delivers",
            config.spool.display()
        );
    }
    if config.components.is_empty() {
        let _ = writeln!(
            out,
            "  components: none configured; each Monit service becomes its own component"
        );
    }
    for c in &config.components {
        let svc: Vec<&str> = c.services.iter().map(|g| g.as_str()).collect();
        let feeds = if svc.is_empty() {
            c.name.clone()
        } else {
            svc.join(", ")
        };
        let id =
            c.id.as_ref()
                .map(|i| format!(" (id {i})"))
                .unwrap_or_default();
        let _ = writeln!(out, "  component {:?}{id} <- {feeds}", c.name);
    }
    for w in config.warnings() {
        crate::warn!("{w}");
        let _ = writeln!(out, "  warning: {w}");
    }
    if online {
        let comps: Vec<ComponentRef> = config
            .components
            .iter()
            .map(|c| ComponentRef {
                name: c.name.clone(),
                id: c.id.clone(),
                container: c.container.clone(),
            })
            .collect();
        let mut lines = backend.check(&comps);
        if let Some(t) = &store {
            lines.push(probe_store(t));
        }
        let failed = lines.iter().filter(|l| !l.ok).count();
        for l in &lines {
            let _ = writeln!(out, "  [{}] {}", if l.ok { "ok" } else { "FAIL" }, l.what);
        }
        if failed > 0 {
            print!("{out}");
            return Err(AppError::CheckFailed(failed));
        }
    }
    Ok(out)
}

/// The PostgreSQL store asked, changing nothing: reachable, its schema against this
/// statusrelay's, and who writes.
fn probe_store(t: &statusrelay_pg::Target) -> statusrelay_backend::CheckLine {
    let known = statusrelay_pg::SCHEMA;
    let (ok, what) = match t.probe() {
        Err(e) => (false, format!("the store: {e}")),
        Ok((None, _)) => (
            true,
            format!(
                "the store is reachable and empty: the first instance to start makes its schema ({known})"
            ),
        ),
        Ok((Some(found), _)) if found > known => (
            false,
            format!(
                "the store is at schema {found}, newer than this statusrelay's {known}: upgrade statusrelay"
            ),
        ),
        Ok((Some(found), writer)) => (
            true,
            format!(
                "the store is reachable, schema {found} (this statusrelay's: {known}); {}",
                match writer.filter(|w| w.expires_in_s > 0.0) {
                    Some(w) => format!("instance {} writes the page (term {})", w.holder, w.term),
                    None => "no instance writes the page now".into(),
                }
            ),
        ),
    };
    statusrelay_backend::CheckLine { ok, what }
}

/// Where the flusher delivers, as the config says: the page's kind, URL, token source,
/// timeout and pacing; the static page's directory; or Monit alone pushing to an aggregator.
fn describe_backend(config: &Config, out: &mut String) {
    let kind = config.backend.kind();
    match (&config.backend, config.backend.remote()) {
        (_, Some(r)) => {
            let from = r
                .token_file
                .as_ref()
                .map(|p| p.display().to_string())
                .or(r.token_env.as_ref().map(|v| format!("${v}")))
                .unwrap_or_default();
            let what = kind.label();
            let page = r
                .page_id
                .as_ref()
                .map(|p| format!(", page {p}"))
                .unwrap_or_default();
            let pace = r.min_interval_for(kind);
            let pace = if pace.is_zero() {
                String::new()
            } else {
                format!(", one request per {}", duration::format(pace))
            };
            let _ = writeln!(
                out,
                "  backend: {what} at {}{page} (token from {from}, timeout {}{pace})",
                r.url_for(kind),
                duration::format(r.timeout),
            );
            if let Some(ca) = &r.ca_file {
                let _ = writeln!(out, "  trusted CA: {}", ca.display());
            }
        }
        // A node with Monit alone writes no page: Monit pushes to the aggregator.
        (BackendConfig::Html { .. }, None) if config.collector.is_some() => {
            let c = config.collector.as_ref().expect("matched");
            let _ = writeln!(
                out,
                "  node:    {}, Monit alone: it pushes to {} (`monit-config` writes the line); no page is written here",
                config.node.as_deref().unwrap_or("-"),
                c.url
            );
        }
        (BackendConfig::Html { dir, .. }, None) => {
            let _ = writeln!(out, "  backend: static page in {}", dir.display());
        }
        _ => {}
    }
}
