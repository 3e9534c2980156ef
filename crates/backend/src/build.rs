//! The configured status page, built from the config: the one place that knows which file
//! implements which `kind`.
//!
//! Invariants:
//! - Reads the token (never logs it) and the CA file; touches no network.
//! - Every API client is paced, trusts only the configured CA when there is one, and, given a
//!   shutdown flag, abandons pacing and requests in flight when it is set.
//! - What is weak about how the page is reached (plain http to another host, a token file
//!   others can read) is handed to the caller's `warn`, to log.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use statusrelay_core::Config;
use statusrelay_core::config::{BackendConfig, BackendKind};
use statusrelay_core::time::Clock;

use crate::cachet::Cachet;
use crate::cachet3::Cachet3;
use crate::html::{Html, PageGroup};
use crate::http::{OverHttp, transport_warnings};
use crate::relay::Relay;
use crate::statusio::Statusio;
use crate::statuspage::Statuspage;
use crate::{Backend, BackendError, Sink, read_token};

/// Build the backend `config` names; what is weak about how it is reached goes to `warn`.
pub fn from_config(
    config: &Config,
    clock: Arc<dyn Clock>,
    shutdown: Option<Arc<AtomicBool>>,
    warn: &mut dyn FnMut(String),
) -> Result<Sink, BackendError> {
    let kind = config.backend.kind();
    let r = match &config.backend {
        BackendConfig::Html {
            dir,
            title,
            groups,
            history_days,
        } => {
            let names = config.components.iter().map(|c| c.name.clone()).collect();
            let groups = groups
                .iter()
                .map(|g| PageGroup {
                    name: g.name.clone(),
                    components: g.components.clone(),
                })
                .collect();
            return Ok(Sink::Page(Box::new(
                Html::new(dir, title, names, clock).with_layout(groups, *history_days),
            )));
        }
        BackendConfig::Api { remote, .. } => remote,
    };
    let url = r.url_for(kind);
    let token = read_token(r.token_file.as_deref(), r.token_env.as_deref())?;
    for w in transport_warnings(&url, r.token_file.as_deref()) {
        warn(w);
    }
    let pem = r
        .ca_file
        .as_ref()
        .map(|ca| {
            std::fs::read(ca).map_err(|e| {
                BackendError::Config(format!("cannot read ca_file {}: {e}", ca.display()))
            })
        })
        .transpose()?;
    let http = Client {
        pace: r.min_interval_for(kind),
        pem: pem.as_deref(),
        shutdown,
    };
    let page = r.page_id.as_deref().unwrap_or_default();
    // The one place that knows which file implements which kind.
    let sink = match kind {
        BackendKind::Cachet => {
            http.page(Cachet::new(&url, token, r.timeout).with_version(r.version))?
        }
        BackendKind::Cachet3 => http.page(Cachet3::new(&url, &r.api_prefix(), token, r.timeout))?,
        BackendKind::Statuspage => http.page(Statuspage::new(&url, page, token, r.timeout))?,
        BackendKind::Statusio => {
            let api_id = r.api_id.as_deref().unwrap_or_default();
            http.page(Statusio::new(&url, page, api_id, token, r.timeout))?
        }
        BackendKind::Relay => Sink::Aggregator(Box::new(
            http.configure(
                Relay::new(&url, &config.node_name(), token, r.timeout)
                    .with_fallbacks(&r.fallback_urls),
            )?,
        )),
        BackendKind::Html => unreachable!("built above"),
    };
    Ok(sink)
}

/// What every API client gets: pacing, the trusted CA, the shutdown flag.
struct Client<'a> {
    pace: Duration,
    pem: Option<&'a [u8]>,
    shutdown: Option<Arc<AtomicBool>>,
}

impl Client<'_> {
    /// A status page over HTTP, configured.
    fn page<B: OverHttp + Backend + 'static>(&self, c: B) -> Result<Sink, BackendError> {
        Ok(Sink::Page(Box::new(self.configure(c)?)))
    }

    /// Any client over HTTP, with the pacing, the shutdown flag and the CA.
    fn configure<B: OverHttp>(&self, c: B) -> Result<B, BackendError> {
        let mut c = c.paced(self.pace);
        if let Some(flag) = &self.shutdown {
            c = c.stopped_by(flag.clone());
        }
        if let Some(p) = self.pem {
            c = c.with_ca_pem(p)?;
        }
        Ok(c)
    }
}
