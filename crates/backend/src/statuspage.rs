//! Atlassian Statuspage (API v1), per the contract in docs/status-page-apis.md (Atlassian Statuspage).
//!
//! Invariants:
//! - Every request carries `Authorization: OAuth <key>` and goes to `{url}/pages/{page_id}`.
//! - Requests are paced (default 1 s apart, from the end of one exchange to the start of the
//!   next): the API allows about 1 request per second per key, and a burst costs a 429.
//! - The component list is only ever read with `page` and `per_page` (the unpaginated listing
//!   is limited to once a minute), page after page until a short page.
//! - Statuspage has no "unknown" status: `unknown` is shown as `degraded_performance`, the
//!   mildest non-operational status (pinned in a test).
//! - The status the server echoes back is what counts as confirmed; a mismatch is an error.

use std::time::Duration;

use serde_json::{Value, json};
use statusrelay_core::State;

use crate::ReadBack;
use crate::http::{Api, OverHttp};
use crate::{
    Backend, BackendError, CheckLine, ComponentRef, PageIncident, PageMaintenance, component_keys,
    probed_check, text, unique_id,
};

/// Components per page of the listing (the API's maximum).
const PER_PAGE: usize = 100;
/// A page with more components than this is a server that ignores `page`: stop, loudly.
const MAX_PAGES: usize = 100;

/// The Statuspage status string of a state.
pub fn status_str(state: State) -> &'static str {
    match state {
        State::Operational => "operational",
        State::PerformanceIssues | State::Unknown => "degraded_performance",
        State::PartialOutage => "partial_outage",
        State::MajorOutage => "major_outage",
        State::UnderMaintenance => "under_maintenance",
    }
}

/// A Statuspage API client for one page.
#[derive(Debug)]
pub struct Statuspage {
    api: Api,
}

impl Statuspage {
    /// `url` is the API root (`https://api.statuspage.io/v1`).
    pub fn new(url: &str, page_id: &str, key: String, timeout: Duration) -> Statuspage {
        let base = format!("{}/pages/{page_id}", url.trim_end_matches('/'));
        Statuspage {
            api: Api::new(
                &base,
                vec![("Authorization", format!("OAuth {key}"))],
                timeout,
            )
            .paced(Duration::from_secs(1)),
        }
    }

    /// Every item of a paginated listing.
    fn list_all(&self, path: &str) -> Result<Vec<Value>, BackendError> {
        let mut out = Vec::new();
        let per_page = PER_PAGE.to_string();
        for page in 1..=MAX_PAGES {
            let p = page.to_string();
            let v = self
                .api
                .call("GET", path, &[("page", &p), ("per_page", &per_page)], None)?;
            let items = v
                .as_array()
                .ok_or_else(|| BackendError::Protocol(format!("GET {path}: not a JSON array")))?;
            let short = items.len() < PER_PAGE;
            out.extend(items.iter().cloned());
            if short {
                return Ok(out);
            }
        }
        Err(BackendError::Protocol(format!(
            "GET {path}: still more after {MAX_PAGES} pages of {PER_PAGE}: does the server ignore `page`?"
        )))
    }

    fn incident_body(
        name: Option<&str>,
        status: &str,
        body: &str,
        remote_id: &str,
        state: State,
        notify: Option<bool>,
    ) -> Value {
        let mut i = json!({
            "status": status,
            "body": body,
            "components": { remote_id: status_str(state) },
            "component_ids": [remote_id],
        });
        if let Some(n) = name {
            i["name"] = json!(n);
        }
        if let Some(n) = notify {
            i["deliver_notifications"] = json!(n);
        }
        json!({ "incident": i })
    }

    fn patch_incident(&self, incident: &str, body: Value) -> Result<(), BackendError> {
        self.api
            .call("PATCH", &format!("/incidents/{incident}"), &[], Some(body))
            .map(|_| ())
    }
}

impl OverHttp for Statuspage {
    fn api_mut(&mut self) -> &mut Api {
        &mut self.api
    }
}

impl Backend for Statuspage {
    fn identity(&self) -> String {
        format!("statuspage {}", self.api.base())
    }

    fn resolve(&mut self, component: &ComponentRef) -> Result<String, BackendError> {
        if let Some(id) = &component.id {
            return Ok(id.clone());
        }
        let ids = self
            .list_all("/components")?
            .iter()
            // A component group is listed too; it cannot take a status of its own.
            .filter(|c| c.get("group").and_then(Value::as_bool) != Some(true))
            .filter(|c| c.get("name").and_then(Value::as_str) == Some(component.name.as_str()))
            .map(|c| text(c, "id"))
            .collect();
        unique_id(&component.name, ids)
    }

    fn set_state(
        &mut self,
        remote_id: &str,
        component: &ComponentRef,
        state: State,
        _message: Option<&str>,
    ) -> Result<State, BackendError> {
        let want = status_str(state);
        let v = self.api.call(
            "PATCH",
            &format!("/components/{remote_id}"),
            &[],
            Some(json!({ "component": { "status": want } })),
        )?;
        let echoed = v.get("status").and_then(Value::as_str).ok_or_else(|| {
            BackendError::Protocol(format!(
                "PATCH /components/{remote_id}: no status in the answer"
            ))
        })?;
        if echoed != want {
            return Err(BackendError::Protocol(format!(
                "set {:?} to {want} but the page answered {echoed}",
                component.name
            )));
        }
        Ok(state)
    }

    fn read_back(&mut self, remote_id: &str, state: State) -> Result<ReadBack, BackendError> {
        let v = self
            .api
            .call("GET", &format!("/components/{remote_id}"), &[], None)?;
        let shows = v.get("status").and_then(Value::as_str).ok_or_else(|| {
            BackendError::Protocol(format!(
                "GET /components/{remote_id}: no status in the answer"
            ))
        })?;
        Ok(if shows == status_str(state) {
            ReadBack::Shows
        } else {
            ReadBack::Differs(shows.to_string())
        })
    }

    fn supports_incidents(&self) -> bool {
        true
    }

    fn open_incident(
        &mut self,
        remote_id: &str,
        state: State,
        name: &str,
        message: &str,
        notify: bool,
    ) -> Result<String, BackendError> {
        let body = Self::incident_body(
            Some(name),
            "investigating",
            message,
            remote_id,
            state,
            Some(notify),
        );
        let v = self.api.call("POST", "/incidents", &[], Some(body))?;
        match v.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(BackendError::Protocol(
                "POST /incidents: no id in the answer".into(),
            )),
        }
    }

    fn open_incidents(&mut self, remote_id: &str) -> Result<Vec<PageIncident>, BackendError> {
        Ok(self
            .list_all("/incidents/unresolved")?
            .iter()
            .filter(|i| {
                component_keys(i.get("components"))
                    .iter()
                    .any(|k| k == remote_id)
            })
            .map(|i| PageIncident {
                id: text(i, "id"),
                name: text(i, "name"),
                text: crate::texts_of(i.get("incident_updates"), "body"),
            })
            .collect())
    }

    fn update_incident(
        &mut self,
        incident: &str,
        remote_id: &str,
        state: State,
        message: &str,
    ) -> Result<(), BackendError> {
        let body = Self::incident_body(None, "identified", message, remote_id, state, None);
        self.patch_incident(incident, body)
    }

    fn resolve_incident(
        &mut self,
        incident: &str,
        remote_id: &str,
        message: &str,
        notify: bool,
    ) -> Result<(), BackendError> {
        let body = Self::incident_body(
            None,
            "resolved",
            message,
            remote_id,
            State::Operational,
            Some(notify),
        );
        self.patch_incident(incident, body)
    }

    fn active_maintenance(&mut self) -> Result<Vec<PageMaintenance>, BackendError> {
        Ok(self
            .list_all("/incidents/active_maintenance")?
            .iter()
            .map(|m| PageMaintenance {
                name: text(m, "name"),
                message: m
                    .pointer("/incident_updates/0/body")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                components: component_keys(m.get("components")),
            })
            .collect())
    }

    fn check(&mut self, components: &[ComponentRef]) -> Vec<CheckLine> {
        // Every Statuspage call needs a valid key, so reading the page proves the key.
        let base = self.api.base().to_string();
        let probe = self
            .api
            .call("GET", "", &[], None)
            .map(|v| {
                format!(
                    "{base} answers; the key is accepted for page {:?}",
                    text(&v, "name")
                )
            })
            .map_err(|e| format!("{base}: {e}"));
        probed_check(self, probe, components, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_strings_follow_the_contract() {
        assert_eq!(status_str(State::Operational), "operational");
        assert_eq!(status_str(State::PerformanceIssues), "degraded_performance");
        assert_eq!(status_str(State::PartialOutage), "partial_outage");
        assert_eq!(status_str(State::MajorOutage), "major_outage");
        assert_eq!(status_str(State::UnderMaintenance), "under_maintenance");
        // Pinned assumption: Statuspage has no unknown status.
        assert_eq!(status_str(State::Unknown), "degraded_performance");
    }

    #[test]
    fn incidents_name_the_component_both_ways() {
        let b = Statuspage::incident_body(
            Some("db down"),
            "investigating",
            "m",
            "abc",
            State::MajorOutage,
            Some(false),
        );
        assert_eq!(b["incident"]["components"]["abc"], "major_outage");
        assert_eq!(b["incident"]["component_ids"][0], "abc");
        assert_eq!(b["incident"]["deliver_notifications"], false);
        assert_eq!(b["incident"]["name"], "db down");
    }
}
