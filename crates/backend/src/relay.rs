//! The relay backend (`kind = "relay"`): a node's flusher delivers to the fleet's aggregator
//! (`statusrelay serve`), which alone writes to the page. See `statusrelay_core::relay` for the
//! wire format.
//!
//! Invariants:
//! - The node authenticates as itself (HTTP basic auth: its node name and the secret
//!   `statusrelay nodes add` printed on the aggregator); nothing in the body claims an
//!   identity.
//! - A delivery sends the node's failing tests of the component, not only a state, so the
//!   aggregator can show which service and test failed on which node and combine nodes by the
//!   component's rule; the flusher orders its reports (see `statusrelay_core::relay`).
//! - Retry, backoff and dead letters are the node's flusher's, as for any page: a 401 or 403
//!   (a wrong or forgotten credential) is dead-lettered with the aggregator's words.
//! - Several aggregators (`url`, then `fallback_urls`): requests go to the one that last
//!   answered; one that cannot be reached (a transport error) is passed over for the next, in
//!   order. Safe to resend: reports are ordered, so one delivered twice changes nothing.

use std::time::Duration;

use serde_json::json;
use statusrelay_core::relay::{RelayAck, RelayBatch};

use crate::http::{Api, OverHttp, base64};
use crate::{BackendError, CheckLine, ComponentRef};

/// A client of the fleet's aggregator (and its fallbacks).
pub struct Relay {
    bases: Vec<String>,
    current: usize,
    api: Api,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("bases", &self.bases).finish()
    }
}

impl Relay {
    /// `url` is the aggregator's base URL; `node` and `secret` its credential for this node.
    pub fn new(url: &str, node: &str, secret: String, timeout: Duration) -> Relay {
        let auth = format!("Basic {}", base64(format!("{node}:{secret}").as_bytes()));
        Relay {
            bases: vec![url.trim_end_matches('/').to_string()],
            current: 0,
            api: Api::new(url, vec![("Authorization", auth)], timeout),
        }
    }

    /// Aggregators to try, in order, when the one in use cannot be reached.
    pub fn with_fallbacks(mut self, urls: &[String]) -> Relay {
        self.bases
            .extend(urls.iter().map(|u| u.trim_end_matches('/').to_string()));
        self
    }

    /// One request to the aggregator in use, or to the next that can be reached.
    fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, BackendError> {
        let mut tried = Vec::new();
        for k in 0..self.bases.len() {
            let i = (self.current + k) % self.bases.len();
            self.api.set_base(&self.bases[i]);
            match self.api.call(method, path, &[], body.clone()) {
                Err(BackendError::Transport(m)) if self.bases.len() > 1 => {
                    tried.push(format!("{}: {m}", self.bases[i]));
                }
                other => {
                    self.current = i;
                    return other;
                }
            }
        }
        Err(BackendError::Transport(format!(
            "no aggregator could be reached ({})",
            tried.join("; ")
        )))
    }
}

impl OverHttp for Relay {
    fn api_mut(&mut self) -> &mut Api {
        &mut self.api
    }
}

impl Relay {
    /// Stable identity ("relay https://aggregator:8731").
    pub fn identity(&self) -> String {
        format!("relay {}", self.bases[0])
    }

    /// Deliver a batch of the node's reports; the aggregator's acknowledgement, sent only
    /// once it has committed them.
    pub fn relay(&mut self, batch: &RelayBatch) -> Result<RelayAck, BackendError> {
        let body = serde_json::to_value(batch)
            .map_err(|e| BackendError::Protocol(format!("report: {e}")))?;
        let v = self.call("POST", "/v1/reports", Some(body))?;
        let ack: RelayAck = serde_json::from_value(v).map_err(|e| {
            BackendError::Protocol(format!("POST /v1/reports: not an acknowledgement ({e})"))
        })?;
        if ack.applied + ack.outdated != batch.reports.len() {
            return Err(BackendError::Protocol(format!(
                "POST /v1/reports: acknowledged {} reports of {}",
                ack.applied + ack.outdated,
                batch.reports.len()
            )));
        }
        Ok(ack)
    }

    /// Every aggregator, fallbacks too: each should be ready and take this node's credential.
    pub fn check(&mut self, components: &[ComponentRef]) -> Vec<CheckLine> {
        let mut out = Vec::new();
        for base in self.bases.clone() {
            self.api.set_base(&base);
            out.push(match self.api.call("GET", "/ready", &[], None) {
                Ok(_) => CheckLine {
                    ok: true,
                    what: format!("{base} is ready"),
                },
                Err(e) => CheckLine {
                    ok: false,
                    what: crate::probe_failure(&base, &e),
                },
            });
            // An empty report of nothing proves the credential without changing anything.
            let probe = json!({ "epoch": 0, "reports": [] });
            out.push(
                match self.api.call("POST", "/v1/reports", &[], Some(probe)) {
                    Ok(_) => CheckLine {
                        ok: true,
                        what: format!("{base} accepts this node's credential"),
                    },
                    Err(e) => CheckLine {
                        ok: false,
                        what: format!("{base} refuses this node: {e}"),
                    },
                },
            );
        }
        self.api.set_base(&self.bases[self.current]);
        // Components cannot be probed without reporting on them; nothing is claimed about
        // them, least of all with the aggregator unreachable.
        if !components.is_empty() && out.iter().all(|l| l.ok) {
            out.push(CheckLine {
                ok: true,
                what: format!(
                    "{} component(s) not probed: the aggregator refuses a report on one it does not have (422, dead-lettered here with the reason)",
                    components.len()
                ),
            });
        }
        out
    }
}
