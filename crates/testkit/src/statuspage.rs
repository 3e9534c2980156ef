//! A strict fake Atlassian Statuspage API v1 (docs/status-page-apis.md, Atlassian Statuspage) on loopback.
//!
//! Strict where the real service is: `Authorization: OAuth <key>`, about one request per second
//! per key (a request sooner than `min_gap` after the previous one gets 429 + Retry-After), the
//! unpaginated component listing at most once a minute, per_page at most 100, status strings
//! from the enum only, incident component ids that exist.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::{Api, FakeServer, Reply, Req};

pub const STATUSES: [&str; 5] = [
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
];
const INCIDENT_STATUSES: [&str; 4] = ["investigating", "identified", "monitoring", "resolved"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpComponent {
    pub id: String,
    pub name: String,
    pub status: String,
    pub group: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpIncident {
    pub id: String,
    pub name: String,
    pub status: String,
    pub components: Vec<String>,
    /// (status, body) of every update, the first one included.
    pub updates: Vec<(String, String)>,
    pub deliver_notifications: Option<bool>,
    /// A scheduled maintenance (shown by active_maintenance while "in_progress").
    pub scheduled: bool,
}

pub struct StatuspageApi {
    key: String,
    page: String,
    pub components: Vec<SpComponent>,
    pub incidents: Vec<SpIncident>,
    pub min_gap: Duration,
    last: Option<Instant>,
    last_unpaginated: Option<Instant>,
    /// Requests answered 429 by the rate limit.
    pub rate_limited: usize,
}

fn err(status: u16, text: &str) -> Reply {
    Reply::json(status, json!({ "error": text }))
}

fn component_json(c: &SpComponent) -> Value {
    json!({
        "id": c.id, "page_id": "", "group_id": null, "name": c.name, "description": null,
        "status": c.status, "position": 1, "showcase": true, "only_show_if_degraded": false,
        "group": c.group, "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-22T00:00:00Z",
    })
}

impl StatuspageApi {
    fn incident_json(&self, i: &SpIncident) -> Value {
        json!({
            "id": i.id, "name": i.name, "status": i.status, "impact": "major",
            "components": i.components.iter()
                .filter_map(|id| self.components.iter().find(|c| &c.id == id))
                .map(component_json).collect::<Vec<_>>(),
            "incident_updates": i.updates.iter().rev()
                .map(|(s, b)| json!({"status": s, "body": b})).collect::<Vec<_>>(),
            "created_at": "2026-11-22T00:00:00Z",
        })
    }

    /// Apply `incident.components` ({id: status}) and check `component_ids`.
    fn apply_components(&mut self, inc: &Value) -> Result<Vec<String>, Reply> {
        let mut ids = Vec::new();
        if let Some(map) = inc.get("components") {
            let map = map
                .as_object()
                .ok_or_else(|| err(422, "components must be a map of component id to status"))?;
            for (id, st) in map {
                let st = st.as_str().filter(|s| STATUSES.contains(s));
                let (Some(c), Some(st)) = (self.components.iter_mut().find(|c| &c.id == id), st)
                else {
                    return Err(err(
                        422,
                        &format!("components: invalid component {id} or status"),
                    ));
                };
                c.status = st.to_string();
                ids.push(id.clone());
            }
        }
        for id in inc
            .get("component_ids")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = id.as_str().unwrap_or("");
            if !self.components.iter().any(|c| c.id == id) {
                return Err(err(422, &format!("component_ids: {id} does not exist")));
            }
            if !ids.iter().any(|i| i == id) {
                ids.push(id.to_string());
            }
        }
        Ok(ids)
    }

    fn paginate(&self, req: &Req, items: Vec<Value>) -> Reply {
        let page: usize = req
            .query("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
            .max(1);
        let per: usize = req
            .query("per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(100);
        if per == 0 || per > 100 {
            return err(400, "per_page must be between 1 and 100");
        }
        let slice: Vec<Value> = items.into_iter().skip((page - 1) * per).take(per).collect();
        Reply::json(200, Value::Array(slice))
    }

    fn routes(&mut self, req: &Req, rest: &[&str]) -> Reply {
        let body = req.json().unwrap_or(Value::Null);
        match (req.method.as_str(), rest) {
            ("GET", []) => Reply::json(200, json!({"id": self.page, "name": "Fake page"})),
            ("GET", ["components"]) => {
                if req.query("page").is_none() || req.query("per_page").is_none() {
                    let now = Instant::now();
                    if self
                        .last_unpaginated
                        .is_some_and(|t| now - t < Duration::from_secs(60))
                    {
                        return err(429, "Unpaginated requests are limited to 1 per minute")
                            .with_header("Retry-After", "60");
                    }
                    self.last_unpaginated = Some(now);
                    let all = self.components.iter().map(component_json).collect();
                    return Reply::json(200, Value::Array(all));
                }
                let all = self.components.iter().map(component_json).collect();
                self.paginate(req, all)
            }
            ("GET", ["components", id]) => match self.components.iter().find(|c| c.id == *id) {
                Some(c) => Reply::json(200, component_json(c)),
                None => err(404, "Not found"),
            },
            ("PATCH" | "PUT", ["components", id]) => {
                let Some(st) = body.pointer("/component/status") else {
                    return err(400, "component is missing");
                };
                let Some(st) = st.as_str().filter(|s| STATUSES.contains(s)) else {
                    return err(422, &format!("Status {st} is not included in the list"));
                };
                match self.components.iter_mut().find(|c| c.id == *id) {
                    Some(c) if c.group => err(422, "a component group has no status"),
                    Some(c) => {
                        c.status = st.to_string();
                        Reply::json(200, component_json(c))
                    }
                    None => err(404, "Not found"),
                }
            }
            ("POST", ["incidents"]) => {
                let Some(inc) = body.get("incident").cloned() else {
                    return err(400, "incident is missing");
                };
                let name = inc.get("name").and_then(Value::as_str).unwrap_or("");
                if name.is_empty() {
                    return err(422, "Name can't be blank");
                }
                let status = inc
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("investigating");
                if !INCIDENT_STATUSES.contains(&status) {
                    return err(
                        422,
                        &format!("Status {status} is not a valid incident status"),
                    );
                }
                let comps = match self.apply_components(&inc) {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                let i = SpIncident {
                    id: format!("inc{}", self.incidents.len() + 1),
                    name: name.into(),
                    status: status.into(),
                    components: comps,
                    updates: vec![(
                        status.into(),
                        inc.get("body").and_then(Value::as_str).unwrap_or("").into(),
                    )],
                    deliver_notifications: inc
                        .get("deliver_notifications")
                        .and_then(Value::as_bool),
                    scheduled: false,
                };
                let out = self.incident_json(&i);
                self.incidents.push(i);
                Reply::json(201, out)
            }
            ("PATCH" | "PUT", ["incidents", id]) => {
                let Some(inc) = body.get("incident").cloned() else {
                    return err(400, "incident is missing");
                };
                if !self.incidents.iter().any(|i| i.id == *id) {
                    return err(404, "Not found");
                }
                if let Some(s) = inc.get("status").and_then(Value::as_str)
                    && !INCIDENT_STATUSES.contains(&s)
                {
                    return err(422, &format!("Status {s} is not a valid incident status"));
                }
                let comps = match self.apply_components(&inc) {
                    Ok(c) => c,
                    Err(r) => return r,
                };
                let i = self
                    .incidents
                    .iter_mut()
                    .find(|i| i.id == *id)
                    .expect("checked");
                if let Some(s) = inc.get("status").and_then(Value::as_str) {
                    i.status = s.into();
                }
                for c in comps {
                    if !i.components.contains(&c) {
                        i.components.push(c);
                    }
                }
                let text = inc.get("body").and_then(Value::as_str).unwrap_or("");
                i.updates.push((i.status.clone(), text.into()));
                let i = i.clone();
                Reply::json(200, self.incident_json(&i))
            }
            ("GET", ["incidents", "unresolved"]) => {
                let list = self
                    .incidents
                    .iter()
                    .rev()
                    .filter(|i| !i.scheduled && i.status != "resolved")
                    .map(|i| self.incident_json(i))
                    .collect();
                self.paginate(req, list)
            }
            ("GET", ["incidents", "active_maintenance"]) => {
                let list = self
                    .incidents
                    .iter()
                    .filter(|i| i.scheduled && i.status == "in_progress")
                    .map(|i| self.incident_json(i))
                    .collect();
                self.paginate(req, list)
            }
            (_, ["components" | "incidents", ..]) => err(405, "Method not allowed"),
            _ => err(404, "Not found"),
        }
    }
}

impl Api for StatuspageApi {
    fn route(&mut self, req: &Req) -> Reply {
        if !self.token_ok(req) {
            return err(401, "Could not authenticate");
        }
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t < self.min_gap) {
            self.rate_limited += 1;
            return err(429, "Rate limit exceeded").with_header("Retry-After", "1");
        }
        self.last = Some(now);
        match req.under(&format!("/v1/pages/{}", self.page)) {
            Some(rest) => self.routes(req, &rest),
            None => err(404, "Not found"),
        }
    }

    fn fault_body(&self, _status: u16, text: &str) -> Value {
        json!({ "error": text })
    }

    fn token_ok(&self, req: &Req) -> bool {
        req.header("Authorization") == Some(format!("OAuth {}", self.key).as_str())
    }
}

/// The fake Statuspage.
pub type FakeStatuspage = FakeServer<StatuspageApi>;

impl FakeServer<StatuspageApi> {
    /// Serve page `page` for `key` with these (id, name) components, all operational.
    pub fn statuspage(key: &str, page: &str, components: &[(&str, &str)]) -> FakeStatuspage {
        FakeServer::start(StatuspageApi {
            key: key.into(),
            page: page.into(),
            components: components
                .iter()
                .map(|(id, name)| SpComponent {
                    id: id.to_string(),
                    name: name.to_string(),
                    status: "operational".into(),
                    group: false,
                })
                .collect(),
            incidents: Vec::new(),
            min_gap: Duration::from_secs(1),
            last: None,
            last_unpaginated: None,
            rate_limited: 0,
        })
    }

    /// The API root to configure (`url`).
    pub fn api_url(&self) -> String {
        format!("{}/v1", self.url())
    }

    pub fn component_status(&self, id: &str) -> Option<String> {
        let api = self.api();
        api.components
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.status.clone())
    }

    /// A maintenance in progress covering these component ids.
    pub fn add_maintenance(&self, name: &str, components: &[&str]) {
        let mut api = self.api();
        let id = format!("mnt{}", api.incidents.len() + 1);
        api.incidents.push(SpIncident {
            id,
            name: name.into(),
            status: "in_progress".into(),
            components: components.iter().map(|s| s.to_string()).collect(),
            updates: vec![("in_progress".into(), "planned work".into())],
            deliver_notifications: None,
            scheduled: true,
        });
    }

    pub fn end_maintenance(&self) {
        let mut api = self.api();
        for i in api.incidents.iter_mut().filter(|i| i.scheduled) {
            i.status = "completed".into();
        }
    }
}
