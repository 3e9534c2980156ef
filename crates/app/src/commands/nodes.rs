//! `statusrelay nodes`: the nodes that report to this aggregator. With no action, list them
//! (when last heard from, how, what they may feed, what they report failing); `add NAME`
//! creates a node's credential and prints its secret once; `forget NAME` clears a
//! decommissioned node's failures and removes it.
//!
//! Invariant: the secret is printed once, by `add`, and stored only as its digest
//! (`statusrelay_serve::credentials`); nothing else ever shows it.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use statusrelay_core::source::{EventSource, ForgetNode};
use statusrelay_core::store::NodeCredentials;
use statusrelay_core::time::{Clock, rfc3339};
use statusrelay_core::{Config, Effect};
use statusrelay_serve::store::Store;
use statusrelay_spool::store::Nodes;
use statusrelay_spool::{NewEvent, Node};

use crate::cli::{NodesAction, NodesArgs};
use statusrelay_serve::credentials;
use statusrelay_spool::retry_corrupt;

use crate::AppError;

pub fn run(
    a: &NodesArgs,
    config: Option<&Path>,
    clock: Arc<dyn Clock>,
) -> Result<String, AppError> {
    let config = Config::load(config)?;
    retry_corrupt(&*clock, || {
        let mut spool = super::open_store(&config, clock.clone())?;
        match &a.action {
            None => list(&mut spool, a.json),
            Some(NodesAction::Add(x)) => match &x.secret_file {
                Some(f) => put(&config, &mut spool, &x.name, &x.components, f),
                None => add(&config, &mut spool, &x.name, &x.components),
            },
            Some(NodesAction::Forget(x)) => forget(&config, &mut spool, &x.name),
        }
    })
}

/// A node's name: a plain token, since it is a URL's user name and a host name in the spool.
fn check_name(name: &str) -> Result<(), AppError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AppError::Usage(format!(
            "node name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.' (it is the user name in Monit's `set mmonit` URL)"
        )))
    }
}

fn add(
    config: &Config,
    spool: &mut Store,
    name: &str,
    components: &[String],
) -> Result<String, AppError> {
    check_name(name)?;
    let mut names = Vec::new();
    for c in components {
        names.push(config.component(c)?.name);
    }
    let secret = credentials::new_secret()?;
    let limited = (!names.is_empty()).then_some(names.as_slice());
    if !spool.add_node(name, &credentials::digest(&secret), limited)? {
        return Err(AppError::Usage(format!(
            "node {name:?} exists already: `statusrelay nodes forget {name}` first to give it a new secret"
        )));
    }
    let mut out = format!(
        "added node {name}{}\nits secret, shown this once (store it now; only its hash is kept):\n{secret}\n",
        if names.is_empty() {
            String::new()
        } else {
            format!(", limited to {}", names.join(", "))
        }
    );
    // The URL as this aggregator serves it: https with a certificate, else http.
    let (scheme, port) = match &config.serve {
        Some(s) => (
            if s.tls_cert.is_some() {
                "https"
            } else {
                "http"
            },
            s.listen.port(),
        ),
        None => ("https", 8731),
    };
    let _ = writeln!(
        out,
        "a node running statusrelay: [backend] kind = \"relay\", url = \"{scheme}://AGGREGATOR:{port}\", token_file holding the secret\n\
         a node with Monit alone: set mmonit {scheme}://{name}:{secret}@AGGREGATOR:{port}/collector"
    );
    Ok(out)
}

/// `nodes add NAME --secret-file F`: the node as a config manager declares it, idempotent.
fn put(
    config: &Config,
    spool: &mut Store,
    name: &str,
    components: &[String],
    file: &Path,
) -> Result<String, AppError> {
    check_name(name)?;
    let mut names = Vec::new();
    for c in components {
        names.push(config.component(c)?.name);
    }
    let text = statusrelay_core::fsutil::read_regular(file).map_err(|source| AppError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let secret = text.lines().next().unwrap_or("").trim().to_string();
    if secret.len() < 32
        || !secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c))
    {
        return Err(AppError::Usage(format!(
            "{}: a node secret is one line of at least 32 letters, digits or -_.~ (it goes into a URL); make one with `openssl rand -hex 32`",
            file.display()
        )));
    }
    let bits = credentials::strength_bits(&secret);
    if bits < credentials::MIN_SECRET_BITS {
        return Err(AppError::Usage(format!(
            "{}: the secret is too weak: about {bits:.0} bits by length and the characters it uses, at least {:.0} needed; make one with `openssl rand -hex 32`",
            file.display(),
            credentials::MIN_SECRET_BITS
        )));
    }
    let limited = (!names.is_empty()).then_some(names.as_slice());
    let existed = spool.node(name)?.is_some();
    Ok(
        match (
            spool.put_node(name, &credentials::digest(&secret), limited)?,
            existed,
        ) {
            (false, _) => format!("node {name} unchanged\n"),
            (true, false) => format!("added node {name} with the secret in {}\n", file.display()),
            (true, true) => format!(
                "node {name}: secret or components replaced from {}; its old secret no longer works\n",
                file.display()
            ),
        },
    )
}

/// Forget a node: one transaction removes it with every test it reported and recomputes each
/// component it fed, so no report of it can land in between (one that comes after is 401).
fn forget(config: &Config, spool: &mut Store, name: &str) -> Result<String, AppError> {
    let ev = NewEvent {
        host: Some(name.to_string()),
        description: Some(format!("node {name} forgotten (decommissioned)")),
        effect: Some(Effect::Recover),
        ..NewEvent::new(EventSource::Forget {
            forget: ForgetNode {
                node: name.to_string(),
            },
        })
    };
    let rule_of = |c: &str| config.node_rule(c);
    let Some(done) = spool.forget_node(name, &ev, &rule_of)? else {
        return Err(AppError::NoSuchItem(format!("node {name}")));
    };
    let mut out = String::new();
    for c in &done.recorded.changes {
        let _ = writeln!(
            out,
            "{}: {} -> {} without {name} (delivery {})",
            c.component,
            c.from.map(|s| s.as_str()).unwrap_or("none"),
            c.to,
            c.outbox_id
        );
    }
    let _ = writeln!(
        out,
        "forgot node {name} ({} failing test(s) cleared); its credential no longer works",
        done.cleared
    );
    Ok(out)
}

fn list(spool: &mut Store, json_out: bool) -> Result<String, AppError> {
    let nodes = spool.nodes()?;
    let now = spool.now();
    // On PostgreSQL the nodes report to any of the aggregator's instances: which there are,
    // and which writes the page, come first.
    let fleet = super::status::Fleet::of(spool)?;
    if json_out {
        let list: Vec<_> = nodes.iter().map(|n| node_json(spool, n)).collect();
        let mut v = json!({ "nodes": list });
        if let Some(f) = &fleet {
            v["instances"] = json!(f.instances);
            v["writer"] = json!(f.writer);
        }
        return Ok(serde_json::to_string_pretty(&v).unwrap_or_default() + "\n");
    }
    let mut out = String::new();
    if let Some(f) = &fleet {
        super::status::fleet_lines(&mut out, f);
    }
    if nodes.is_empty() {
        out.push_str("no nodes: add one with `statusrelay nodes add NAME`\n");
        return Ok(out);
    }
    for n in &nodes {
        let seen = n
            .last_seen_at
            .map(|t| format!("last seen {}s ago", (now - t).max(0) / 1000))
            .unwrap_or_else(|| "never seen".into());
        let failing = spool.node_failing(&n.name)?;
        let _ = writeln!(
            out,
            "{}: {}{seen}{}{}{}{}; {}",
            n.name,
            if n.stale_since.is_some() {
                "STALE, "
            } else {
                ""
            },
            n.via.map(|v| format!(" via {v}")).unwrap_or_default(),
            n.period_ms
                .map(|p| format!(" every {}s", p / 1000))
                .unwrap_or_default(),
            if n.feeds.is_empty() {
                String::new()
            } else {
                format!(", reports on {}", n.feeds.join(", "))
            },
            n.components
                .as_ref()
                .map(|c| format!(", feeds only {}", c.join(", ")))
                .unwrap_or_default(),
            if failing.is_empty() {
                "nothing failing".to_string()
            } else {
                failing
                    .iter()
                    .map(|(c, s, t)| format!("{c}: {s} {t}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        );
        out.push_str(&node_troubles(spool, n, now)?);
    }
    Ok(out)
}

/// A node as `nodes --json` (and `status --json`, for nodes with troubles) shows it.
pub(crate) fn node_json<S: Nodes>(spool: &mut S, n: &Node) -> serde_json::Value {
    json!({
        "name": n.name, "components": n.components, "added_at": rfc3339(n.added_at),
        "via": n.via, "period_ms": n.period_ms,
        "last_seen_at": n.last_seen_at.map(rfc3339),
        "stale": n.stale_since.is_some(),
        "stale_since": n.stale_since.map(rfc3339),
        "feeds": n.feeds,
        "failing": spool.node_failing(&n.name).map(|f| f.len()).unwrap_or(0),
        "reporter": n.reporter, "reporter_peer": n.reporter_peer,
        "rival": n.rival, "rival_peer": n.rival_peer,
        "conflict_since": n.conflict_since.map(rfc3339),
        "refused": n.refused, "refused_at": n.refused_at.map(rfc3339),
        "refusals": n.refusals,
        "unrouted": spool.unrouted(&n.name).unwrap_or_default().into_iter()
            .map(|(service, tests, since)| json!({
                "service": service, "tests": tests, "since": rfc3339(since)
            }))
            .collect::<Vec<_>>(),
    })
}

/// What the aggregator does not take from a node, indented under it: a conflict, the last
/// refusal, failing services no component takes. Empty when there is nothing to say.
pub(crate) fn node_troubles<S: Nodes>(spool: &mut S, n: &Node, now: i64) -> Result<String, AppError>
where
    AppError: From<S::Error>,
{
    let mut out = String::new();
    if let Some(since) = n.conflict_since {
        let _ = writeln!(
            out,
            "  CONFLICT since {}: two reporters use its credential, {} from {} and {} from {}; neither is taken until one stops",
            rfc3339(since),
            n.reporter.as_deref().unwrap_or("?"),
            n.reporter_peer.as_deref().unwrap_or("?"),
            n.rival.as_deref().unwrap_or("?"),
            n.rival_peer.as_deref().unwrap_or("?"),
        );
    }
    if let (Some(why), Some(at)) = (&n.refused, n.refused_at) {
        let _ = writeln!(
            out,
            "  refused {} report(s), the last {}s ago: {why}",
            n.refusals,
            (now - at).max(0) / 1000
        );
    }
    for (service, tests, since) in spool.unrouted(&n.name)? {
        let _ = writeln!(
            out,
            "  reports {service} failing ({tests}) since {}: no component takes it",
            rfc3339(since)
        );
    }
    Ok(out)
}
