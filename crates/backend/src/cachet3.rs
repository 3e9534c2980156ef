//! Cachet 3.x (cachethq/core), per the contract in docs/status-page-apis.md (Cachet 3.x).
//!
//! Invariants:
//! - Requests go to `{url}{api_prefix}` (default `/status/api`) with `Authorization: Bearer`.
//! - Answers are JSON:API (`data.attributes`); enums arrive as `{"human","value"}` and only
//!   `value` is trusted.
//! - Listings are simple-paginated: pages are read until `links.next` is null.
//! - The component's status is always set with its own PATCH: an incident's component impact
//!   does not change `component.status`.
//! - Incidents are created `visible: true` (the server's default hides them) and with
//!   `notifications` (3.x's name for `notify`).
//! - Requests are paced (default 200 ms) under the 300 requests/minute limit.

use std::time::Duration;

use serde_json::{Value, json};
use statusrelay_core::State;

use crate::http::{Api, OverHttp, write_proof};
use crate::{
    Backend, BackendError, CheckLine, ComponentRef, PageIncident, PageMaintenance, ReadBack, text,
    unique_id,
};

/// Cachet 3.x component status numbers.
pub fn status_code(state: State) -> u8 {
    match state {
        State::Operational => 1,
        State::PerformanceIssues => 2,
        State::PartialOutage => 3,
        State::MajorOutage => 4,
        State::Unknown => 5,
        State::UnderMaintenance => 6,
    }
}

/// Cachet 3.x incident statuses.
const INVESTIGATING: u8 = 1;
const IDENTIFIED: u8 = 2;
const FIXED: u8 = 4;
/// A schedule in progress (`filter[status]=1`).
const SCHEDULE_IN_PROGRESS: &str = "1";
const MAX_PAGES: usize = 100;

/// An enum field: `{"human","value"}` or a bare number.
fn enum_value(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.get("value").unwrap_or(v).as_i64()
}

fn attr<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item.pointer(&format!("/attributes/{key}"))
}

fn attr_text(item: &Value, key: &str) -> String {
    item.get("attributes")
        .map(|a| text(a, key))
        .unwrap_or_default()
}

fn id_of(item: &Value) -> String {
    match item.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Ids of the components a JSON:API item relates to (`relationships.components.data[].id`).
fn related_components(item: &Value) -> Vec<String> {
    item.pointer("/relationships/components/data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(id_of)
        .collect()
}

/// A Cachet 3.x API client.
#[derive(Debug)]
pub struct Cachet3 {
    api: Api,
}

impl Cachet3 {
    /// `url` is the installation's address, `prefix` the API path under it ("/status/api").
    pub fn new(url: &str, prefix: &str, token: String, timeout: Duration) -> Cachet3 {
        let base = format!("{}{prefix}", url.trim_end_matches('/'));
        Cachet3 {
            api: Api::new(
                &base,
                vec![("Authorization", format!("Bearer {token}"))],
                timeout,
            )
            .paced(Duration::from_millis(200)),
        }
    }

    /// Every item of a listing, following simple pagination.
    fn list_all(&self, path: &str, query: &[(&str, &str)]) -> Result<Vec<Value>, BackendError> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let p = page.to_string();
            let mut q = query.to_vec();
            q.extend([("per_page", "100"), ("page", p.as_str())]);
            let v = self.api.call("GET", path, &q, None)?;
            let items = v
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| BackendError::Protocol(format!("GET {path}: no data array")))?;
            out.extend(items.iter().cloned());
            if v.pointer("/links/next").is_none_or(Value::is_null) {
                return Ok(out);
            }
        }
        Err(BackendError::Protocol(format!(
            "GET {path}: links.next still set after {MAX_PAGES} pages"
        )))
    }

    fn post_update(&self, incident: &str, status: u8, message: &str) -> Result<(), BackendError> {
        self.api
            .call(
                "POST",
                &format!("/incidents/{incident}/updates"),
                &[],
                Some(json!({ "status": status, "message": message })),
            )
            .map(|_| ())
    }

    fn component_status(&self, id: &str) -> Result<i64, BackendError> {
        let v = self
            .api
            .call("GET", &format!("/components/{id}"), &[], None)?;
        enum_value(v.pointer("/data/attributes/status")).ok_or_else(|| {
            BackendError::Protocol(format!("GET /components/{id}: no data.attributes.status"))
        })
    }
}

impl OverHttp for Cachet3 {
    fn api_mut(&mut self) -> &mut Api {
        &mut self.api
    }
}

impl Backend for Cachet3 {
    fn identity(&self) -> String {
        format!("cachet3 {}", self.api.base())
    }

    fn resolve(&mut self, component: &ComponentRef) -> Result<String, BackendError> {
        if let Some(id) = &component.id {
            return Ok(id.clone());
        }
        // filter[name] is a partial match: keep the exact ones.
        let ids = self
            .list_all("/components", &[("filter[name]", &component.name)])?
            .iter()
            .filter(|c| attr(c, "name").and_then(Value::as_str) == Some(component.name.as_str()))
            .map(id_of)
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
        let code = status_code(state);
        let v = self.api.call(
            "PATCH",
            &format!("/components/{remote_id}"),
            &[],
            Some(json!({ "status": code })),
        )?;
        let echoed = enum_value(v.pointer("/data/attributes/status")).ok_or_else(|| {
            BackendError::Protocol(format!(
                "PATCH /components/{remote_id}: no data.attributes.status in the answer"
            ))
        })?;
        if echoed != i64::from(code) {
            return Err(BackendError::Protocol(format!(
                "set {:?} to status {code} but the page answered {echoed}",
                component.name
            )));
        }
        Ok(state)
    }

    fn read_back(&mut self, remote_id: &str, state: State) -> Result<ReadBack, BackendError> {
        let code = self.component_status(remote_id)?;
        Ok(if code == i64::from(status_code(state)) {
            ReadBack::Shows
        } else {
            ReadBack::Differs(format!("status {code}"))
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
        let component: Value = remote_id
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| json!(remote_id));
        let body = json!({
            "name": name, "message": message, "status": INVESTIGATING, "visible": true,
            "notifications": notify,
            "components": [{ "component_id": component, "component_status": status_code(state) }],
        });
        let v = self.api.call("POST", "/incidents", &[], Some(body))?;
        let id = v.pointer("/data/id").map(|_| id_of(&v["data"]));
        id.filter(|i| !i.is_empty()).ok_or_else(|| {
            BackendError::Protocol("POST /incidents: no data.id in the answer".into())
        })
    }

    fn open_incidents(&mut self, remote_id: &str) -> Result<Vec<PageIncident>, BackendError> {
        Ok(self
            .list_all("/incidents", &[("include", "components"), ("sort", "-id")])?
            .iter()
            .filter(|i| enum_value(attr(i, "status")).is_some_and(|s| s != i64::from(FIXED)))
            .filter(|i| related_components(i).iter().any(|c| c == remote_id))
            .map(|i| PageIncident {
                id: id_of(i),
                name: attr_text(i, "name"),
                text: attr_text(i, "message"),
            })
            .collect())
    }

    fn update_incident(
        &mut self,
        incident: &str,
        _remote_id: &str,
        _state: State,
        message: &str,
    ) -> Result<(), BackendError> {
        self.post_update(incident, IDENTIFIED, message)
    }

    fn resolve_incident(
        &mut self,
        incident: &str,
        _remote_id: &str,
        message: &str,
        _notify: bool,
    ) -> Result<(), BackendError> {
        self.post_update(incident, FIXED, message)
    }

    fn active_maintenance(&mut self) -> Result<Vec<PageMaintenance>, BackendError> {
        let mut out: Vec<PageMaintenance> = self
            .list_all(
                "/schedules",
                &[
                    ("filter[status]", SCHEDULE_IN_PROGRESS),
                    ("include", "components"),
                ],
            )?
            .iter()
            .map(|s| PageMaintenance {
                name: attr_text(s, "name"),
                message: attr_text(s, "message"),
                components: related_components(s),
            })
            .collect();
        // A component someone set to Under maintenance (6) by hand is in maintenance too.
        let by_hand: Vec<String> = self
            .list_all("/components", &[("filter[status]", "6")])?
            .iter()
            .filter(|c| enum_value(attr(c, "status")) == Some(6))
            .flat_map(|c| [id_of(c), attr_text(c, "name")])
            .collect();
        if !by_hand.is_empty() {
            out.push(PageMaintenance {
                name: "component status Under maintenance".into(),
                message: String::new(),
                components: by_hand,
            });
        }
        Ok(out)
    }

    fn check(&mut self, components: &[ComponentRef]) -> Vec<CheckLine> {
        let mut out = Vec::new();
        let mut line = |ok: bool, what: String| out.push(CheckLine { ok, what });
        match self.api.call("GET", "/ping", &[], None) {
            Ok(_) => line(true, format!("{} answers /ping", self.api.base())),
            Err(e) => {
                line(
                    false,
                    format!(
                        "{} (is api_prefix right?)",
                        crate::probe_failure(self.api.base(), &e)
                    ),
                );
                return out;
            }
        }
        let mut first = None;
        for c in components {
            match self
                .resolve(c)
                .and_then(|id| Ok((self.component_status(&id)?, id)))
            {
                Ok((code, id)) => {
                    line(
                        true,
                        format!("component {:?} is id {id} (status {code})", c.name),
                    );
                    first.get_or_insert((id, code, c.name.clone()));
                }
                Err(e) => line(false, format!("component {:?}: {e}", c.name)),
            }
        }
        // Reads may be public; only a write proves the token has components.manage.
        out.push(write_proof(&self.api, "PATCH", first));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_numbers_follow_the_contract() {
        let codes: Vec<u8> = State::ALL.into_iter().map(status_code).collect();
        // ALL is operational, performance, partial, major, maintenance, unknown.
        assert_eq!(codes, vec![1, 2, 3, 4, 6, 5]);
    }

    #[test]
    fn enums_are_read_from_value() {
        assert_eq!(
            enum_value(Some(&json!({"human": "Operational", "value": 1}))),
            Some(1)
        );
        assert_eq!(enum_value(Some(&json!(4))), Some(4));
        assert_eq!(enum_value(Some(&json!({"human": "x"}))), None);
        assert_eq!(
            related_components(
                &json!({"relationships": {"components": {"data": [{"id": 3, "type": "components"}]}}})
            ),
            vec!["3"]
        );
    }
}
