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

use std::time::Duration;

use serde_json::json;
use statusrelay_core::State;
use statusrelay_core::relay::{RelayAck, RelayBatch};

use crate::http::{Api, OverHttp, base64};
use crate::{Backend, BackendError, CheckLine, ComponentRef};

/// A client of one aggregator.
pub struct Relay {
    base: String,
    api: Api,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("base", &self.base).finish()
    }
}

impl Relay {
    /// `url` is the aggregator's base URL; `node` and `secret` its credential for this node.
    pub fn new(url: &str, node: &str, secret: String, timeout: Duration) -> Relay {
        let auth = format!("Basic {}", base64(format!("{node}:{secret}").as_bytes()));
        Relay {
            base: url.trim_end_matches('/').to_string(),
            api: Api::new(url, vec![("Authorization", auth)], timeout),
        }
    }
}

impl OverHttp for Relay {
    fn api_mut(&mut self) -> &mut Api {
        &mut self.api
    }
}

impl Backend for Relay {
    fn identity(&self) -> String {
        format!("relay {}", self.base)
    }

    /// The aggregator knows components by name.
    fn resolve(&mut self, component: &ComponentRef) -> Result<String, BackendError> {
        Ok(component.name.clone())
    }

    fn set_state(
        &mut self,
        _remote_id: &str,
        component: &ComponentRef,
        _state: State,
        _message: Option<&str>,
    ) -> Result<State, BackendError> {
        Err(BackendError::Protocol(format!(
            "{:?}: an aggregator takes a node's failing tests, not a state",
            component.name
        )))
    }

    fn wants_tests(&self) -> bool {
        true
    }

    fn relay(&mut self, batch: &RelayBatch) -> Result<RelayAck, BackendError> {
        let body = serde_json::to_value(batch)
            .map_err(|e| BackendError::Protocol(format!("report: {e}")))?;
        let v = self.api.call("POST", "/v1/reports", &[], Some(body))?;
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

    fn check(&mut self, components: &[ComponentRef]) -> Vec<CheckLine> {
        let mut out = vec![match self.api.call("GET", "/ready", &[], None) {
            Ok(_) => CheckLine {
                ok: true,
                what: format!("{} is ready", self.base),
            },
            Err(e) => CheckLine {
                ok: false,
                what: crate::probe_failure(&self.base, &e),
            },
        }];
        // An empty report of nothing proves the credential without changing anything.
        let probe = json!({ "epoch": 0, "reports": [] });
        out.push(
            match self.api.call("POST", "/v1/reports", &[], Some(probe)) {
                Ok(_) => CheckLine {
                    ok: true,
                    what: "the aggregator accepts this node's credential".into(),
                },
                Err(e) => CheckLine {
                    ok: false,
                    what: format!("the aggregator refuses this node: {e}"),
                },
            },
        );
        out.extend(components.iter().map(|c| CheckLine {
            ok: true,
            what: format!("component {:?} (the aggregator checks it exists)", c.name),
        }));
        out
    }
}
