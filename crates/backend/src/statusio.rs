//! status.io (API v2), per the contract in docs/status-page-apis.md (status.io).
//!
//! Invariants:
//! - Every request carries `x-api-id` and `x-api-key`; bodies are JSON.
//! - An answer is only a success when HTTP is 2xx *and* the envelope says
//!   `status.error == "no"`: status.io reports many errors as HTTP 200 with `error: "yes"`.
//!   Those are classified by their text (an auth or validation message is permanent).
//! - A component is shown inside a container; the remote id is `<component>-<container>`, the
//!   form `infrastructure_affected` takes.
//! - status.io has no "unknown" status: `unknown` is sent as 300 Degraded performance
//!   (pinned in a test). Requests are paced (default 1 s): there is no published limit.

use std::time::Duration;

use serde_json::{Value, json};
use statusrelay_core::State;

use crate::ReadBack;
use crate::http::{Api, OverHttp};
use crate::{
    Backend, BackendError, CheckLine, ComponentRef, PageIncident, PageMaintenance, probed_check,
    text, unique_id,
};

/// status.io component status codes.
pub fn status_code(state: State) -> u16 {
    match state {
        State::Operational => 100,
        State::UnderMaintenance => 200,
        State::PerformanceIssues | State::Unknown => 300,
        State::PartialOutage => 400,
        State::MajorOutage => 500,
    }
}

/// Incident states.
const INVESTIGATING: u16 = 100;
const IDENTIFIED: u16 = 200;
const MONITORING: u16 = 300;

/// A status.io API client for one status page.
#[derive(Debug)]
pub struct Statusio {
    api: Api,
    page: String,
}

/// `id` of an object, which status.io spells `id` or `_id`.
fn oid(v: &Value) -> String {
    let t = text(v, "id");
    if t.is_empty() { text(v, "_id") } else { t }
}

/// The HTTP-200 error status.io reports in its envelope, as a [`BackendError`].
fn envelope_error(v: &Value, what: &str) -> Option<BackendError> {
    let status = v.get("status")?;
    let error = status.get("error").and_then(Value::as_str).unwrap_or("no");
    if error == "no" {
        return None;
    }
    let message = text(status, "message");
    let lower = message.to_lowercase();
    // A message about the key, the page or the input will not change on retry; anything else
    // (the service's own trouble) might.
    let permanent = [
        "auth",
        "key",
        "invalid",
        "not found",
        "required",
        "missing",
        "permission",
    ]
    .iter()
    .any(|w| lower.contains(w));
    Some(BackendError::Http {
        status: if permanent { 400 } else { 503 },
        message: format!("{what}: status.io said error \"yes\": {message}"),
        retry_after: None,
    })
}

impl Statusio {
    /// `url` is the API root (`https://api.status.io/v2`); `page` the status page id.
    pub fn new(url: &str, page: &str, api_id: &str, key: String, timeout: Duration) -> Statusio {
        Statusio {
            api: Api::new(
                url,
                vec![("x-api-id", api_id.to_string()), ("x-api-key", key)],
                timeout,
            )
            .paced(Duration::from_secs(1)),
            page: page.to_string(),
        }
    }

    /// One call whose envelope must say `error: "no"`; returns `result`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, BackendError> {
        let v = self.api.call(method, path, &[], body)?;
        if let Some(e) = envelope_error(&v, path) {
            return Err(e);
        }
        if v.pointer("/status/error").is_none() {
            return Err(BackendError::Protocol(format!(
                "{method} {path}: no status.error in the answer"
            )));
        }
        Ok(v.get("result").cloned().unwrap_or(Value::Null))
    }

    fn summary(&self) -> Result<Vec<Value>, BackendError> {
        let r = self.call("GET", &format!("/status/summary/{}", self.page), None)?;
        r.get("status")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| BackendError::Protocol("status/summary: no result.status array".into()))
    }

    fn split(remote_id: &str) -> Result<(&str, &str), BackendError> {
        remote_id.split_once('-').ok_or_else(|| {
            BackendError::Protocol(format!(
                "{remote_id:?} is not <component>-<container>: set the component's id that way"
            ))
        })
    }

    /// The fields incident/create, /update and /resolve share.
    fn notice(
        &self,
        incident: Option<&str>,
        remote_id: &str,
        state: State,
        current_state: u16,
        message: &str,
        notify: bool,
    ) -> Value {
        let flag = if notify { "1" } else { "0" };
        let mut body = json!({
            "statuspage_id": self.page,
            "incident_details": message,
            "infrastructure_affected": [remote_id],
            "current_status": status_code(state),
            "current_state": current_state,
            "notify_email": flag, "notify_sms": flag, "notify_webhook": flag,
            "social": "0", "irc": "0", "hipchat": "0", "slack": "0",
        });
        if let Some(i) = incident {
            body["incident_id"] = json!(i);
        }
        body
    }
}

impl OverHttp for Statusio {
    fn api_mut(&mut self) -> &mut Api {
        &mut self.api
    }
}

impl Backend for Statusio {
    fn identity(&self) -> String {
        format!("statusio {}/{}", self.api.base(), self.page)
    }

    fn resolve(&mut self, component: &ComponentRef) -> Result<String, BackendError> {
        if let Some(id) = &component.id {
            return Ok(id.clone());
        }
        let comps = self.summary()?;
        let id = unique_id(
            &component.name,
            comps
                .iter()
                .filter(|c| text(c, "name") == component.name)
                .map(oid)
                .collect(),
        )?;
        let comp = comps
            .iter()
            .find(|c| oid(c) == id)
            .cloned()
            .unwrap_or_default();
        let containers: Vec<&Value> = comp
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|k| {
                component
                    .container
                    .as_deref()
                    .is_none_or(|want| want == oid(k) || want == text(k, "name"))
            })
            .collect();
        match containers.as_slice() {
            [k] => Ok(format!("{id}-{}", oid(k))),
            [] => Err(BackendError::NotFound(match &component.container {
                Some(c) => format!("{} (container {c:?})", component.name),
                None => format!("{} (it is in no container)", component.name),
            })),
            many => Err(BackendError::Ambiguous {
                name: format!("{} (set `container` to one of them)", component.name),
                count: many.len(),
                ids: many
                    .iter()
                    .map(|k| format!("{} {:?}", oid(k), text(k, "name")))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn set_state(
        &mut self,
        remote_id: &str,
        _component: &ComponentRef,
        state: State,
        message: Option<&str>,
    ) -> Result<State, BackendError> {
        let (component, container) = Self::split(remote_id)?;
        self.call(
            "POST",
            "/component/status/update",
            Some(json!({
                "statuspage_id": self.page, "component": component, "container": container,
                "details": message.unwrap_or(""), "current_status": status_code(state),
            })),
        )?;
        Ok(state)
    }

    fn read_back(&mut self, remote_id: &str, state: State) -> Result<ReadBack, BackendError> {
        // status/summary is the page's own view of every component and container.
        let (component, container) = Self::split(remote_id)?;
        let comps = self.summary()?;
        let shows = comps
            .iter()
            .find(|c| oid(c) == component)
            .and_then(|c| c.get("containers").and_then(Value::as_array))
            .and_then(|ks| ks.iter().find(|k| oid(k) == container))
            .and_then(|k| k.get("status_code").and_then(Value::as_i64))
            .ok_or_else(|| BackendError::NotFound(format!("{remote_id} in status/summary")))?;
        Ok(if shows == i64::from(status_code(state)) {
            ReadBack::Shows
        } else {
            ReadBack::Differs(format!("status {shows}"))
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
        Self::split(remote_id)?;
        let mut body = self.notice(None, remote_id, state, INVESTIGATING, message, notify);
        body["incident_name"] = json!(name);
        let r = self.call("POST", "/incident/create", Some(body))?;
        match r.as_str() {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            _ => Err(BackendError::Protocol(format!(
                "incident/create: result is not an incident id: {r}"
            ))),
        }
    }

    fn open_incidents(&mut self, remote_id: &str) -> Result<Vec<PageIncident>, BackendError> {
        let (component, container) = Self::split(remote_id)?;
        let r = self.call("GET", &format!("/incident/list/{}", self.page), None)?;
        let affects = |i: &Value, key: &str, want: &str| {
            i.get(key)
                .and_then(Value::as_array)
                .is_some_and(|l| l.iter().any(|x| oid(x) == want || x.as_str() == Some(want)))
        };
        Ok(r.get("active_incidents")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|i| {
                affects(i, "components_affected", component)
                    && (i.get("containers_affected").is_none()
                        || affects(i, "containers_affected", container))
            })
            .map(|i| PageIncident {
                id: oid(i),
                name: text(i, "name"),
                // status.io lists messages with their details; older shapes have none.
                text: crate::texts_of(i.get("messages"), "details"),
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
        let body = self.notice(Some(incident), remote_id, state, IDENTIFIED, message, false);
        self.call("POST", "/incident/update", Some(body))
            .map(|_| ())
    }

    fn resolve_incident(
        &mut self,
        incident: &str,
        remote_id: &str,
        message: &str,
        notify: bool,
    ) -> Result<(), BackendError> {
        let body = self.notice(
            Some(incident),
            remote_id,
            State::Operational,
            MONITORING,
            message,
            notify,
        );
        self.call("POST", "/incident/resolve", Some(body))
            .map(|_| ())
    }

    fn active_maintenance(&mut self) -> Result<Vec<PageMaintenance>, BackendError> {
        let r = self.call(
            "GET",
            &format!("/maintenance/list/active/{}", self.page),
            None,
        )?;
        let list = r
            .get("active_maintenances")
            .or(Some(&r))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(list
            .iter()
            .map(|m| PageMaintenance {
                name: text(m, "name"),
                message: m
                    .pointer("/messages/0/details")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                components: m
                    .get("components_affected")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .flat_map(|c| [oid(c), text(c, "name")])
                    .filter(|s| !s.is_empty())
                    .collect(),
            })
            .collect())
    }

    fn check(&mut self, components: &[ComponentRef]) -> Vec<CheckLine> {
        // The summary is public; the incident list needs the key, so it proves the key.
        let base = self.api.base().to_string();
        let probe = self
            .call("GET", &format!("/incident/list/{}", self.page), None)
            .map(|_| format!("{base} accepts the key for page {}", self.page))
            .map_err(|e| format!("{base}: {e}"));
        probed_check(self, probe, components, " (component-container)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_follow_the_contract() {
        let codes: Vec<u16> = State::ALL.into_iter().map(status_code).collect();
        // ALL is operational, performance, partial, major, maintenance, unknown.
        assert_eq!(codes, vec![100, 300, 400, 500, 200, 300]);
    }

    #[test]
    fn an_http_200_with_error_yes_is_an_error() {
        let ok = json!({"status": {"error": "no", "message": "OK"}, "result": true});
        assert!(envelope_error(&ok, "x").is_none());
        let auth = json!({"status": {"error": "yes", "message": "Invalid API key"}});
        let e = envelope_error(&auth, "x").unwrap();
        assert!(
            !e.is_retryable() && e.to_string().contains("Invalid API key"),
            "{e}"
        );
        let busy = json!({"status": {"error": "yes", "message": "Database timeout"}});
        assert!(envelope_error(&busy, "x").unwrap().is_retryable());
    }
}
