//! A strict fake Cachet 3.x API (cachethq/core; docs/status-page-apis.md, Cachet 3.x) on loopback.
//!
//! Strict where the real server is: writes need `Authorization: Bearer` (401) with the right
//! ability (403); a request that does not accept JSON gets Laravel's redirect instead of a 422;
//! status enums 1-6 and incident statuses 0-4 only; per_page 1-100; JSON:API answers with enums
//! as {"human","value"}; relationships only when `include` asks for them; POST answers 201.
//! Pinned assumptions (the spec marks them uncertain): incident creation takes
//! `components: [{component_id, component_status}]`; `filter[name]` is a partial match.

use serde_json::{Value, json};

use crate::http::{Api, FakeServer, Reply, Req};

const COMPONENT_STATUS: [&str; 6] = [
    "Operational",
    "Performance issues",
    "Partial outage",
    "Major outage",
    "Unknown",
    "Under maintenance",
];
const INCIDENT_STATUS: [&str; 5] = [
    "Unknown",
    "Investigating",
    "Identified",
    "Watching",
    "Fixed",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C3Component {
    pub id: u64,
    pub name: String,
    pub status: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C3Incident {
    pub id: u64,
    pub name: String,
    pub message: String,
    pub status: i64,
    pub visible: bool,
    pub notifications: bool,
    /// (component id, component status) impacts.
    pub components: Vec<(u64, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C3Schedule {
    pub id: u64,
    pub name: String,
    /// 0 upcoming, 1 in progress, 2 complete.
    pub status: i64,
    pub components: Vec<u64>,
}

pub struct Cachet3Api {
    token: String,
    prefix: String,
    /// Abilities of the token (`components.manage`, `incidents.manage`, ...).
    pub abilities: Vec<String>,
    pub components: Vec<C3Component>,
    pub incidents: Vec<C3Incident>,
    /// (incident id, status, message) of every update.
    pub updates: Vec<(u64, i64, String)>,
    pub schedules: Vec<C3Schedule>,
}

fn message(status: u16, text: &str) -> Reply {
    Reply::json(status, json!({ "message": text }))
}

fn invalid(field: &str, text: &str) -> Reply {
    Reply::json(422, json!({ "message": text, "errors": { field: [text] } }))
}

fn enum_json(value: i64, names: &[&str], first: i64) -> Value {
    let human = usize::try_from(value - first)
        .ok()
        .and_then(|i| names.get(i))
        .copied();
    json!({ "human": human.unwrap_or("?"), "value": value })
}

fn component_json(c: &C3Component) -> Value {
    json!({"id": c.id, "type": "components", "attributes": {
        "name": c.name, "description": "", "link": "", "order": 0, "enabled": true,
        "status": enum_json(c.status, &COMPONENT_STATUS, 1),
    }})
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn boolean(v: Option<&Value>) -> Result<Option<bool>, ()> {
    match v {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::Number(n)) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
            Ok(Some(n.as_i64() == Some(1)))
        }
        _ => Err(()),
    }
}

impl Cachet3Api {
    fn incident_json(&self, i: &C3Incident, include: bool) -> Value {
        let mut v = json!({"id": i.id, "type": "incidents", "attributes": {
            "name": i.name, "message": i.message, "visible": i.visible, "stickied": false,
            "status": enum_json(i.status, &INCIDENT_STATUS, 0),
        }});
        if include {
            v["relationships"] = json!({"components": {"data": i.components.iter()
                .map(|(id, _)| json!({"type": "components", "id": id})).collect::<Vec<_>>()}});
        }
        v
    }

    fn page(&self, req: &Req, items: Vec<Value>) -> Reply {
        let per = req
            .query("per_page")
            .map(|p| p.parse::<usize>().unwrap_or(0))
            .unwrap_or(15);
        if !(1..=100).contains(&per) {
            return invalid("per_page", "The per page field must be between 1 and 100.");
        }
        let page: usize = req
            .query("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
            .max(1);
        let more = items.len() > page * per;
        let data: Vec<Value> = items.into_iter().skip((page - 1) * per).take(per).collect();
        let next = more.then(|| format!("{}?page={}", req.path, page + 1));
        Reply::json(
            200,
            json!({"data": data, "links": {"first": null, "last": null, "prev": null, "next": next},
            "meta": {"current_page": page, "per_page": per, "path": req.path}}),
        )
    }

    fn can(&self, req: &Req, ability: &str) -> Option<Reply> {
        if !self.token_ok(req) {
            return Some(message(401, "Unauthenticated."));
        }
        (!self.abilities.iter().any(|a| a == ability))
            .then(|| message(403, "This action is unauthorized."))
    }

    fn routes(&mut self, req: &Req, rest: &[&str]) -> Reply {
        let body = req.json().unwrap_or(Value::Null);
        let include = req
            .query("include")
            .is_some_and(|i| i.split(',').any(|x| x == "components"));
        let status_filter = req.query("filter[status]").map(|s| s.to_string());
        match (req.method.as_str(), rest) {
            ("GET", ["ping"]) => Reply::json(200, json!({"data": "Pong!"})),
            ("GET", ["components"]) => {
                let name = req.query("filter[name]").unwrap_or("").to_lowercase();
                let list = self
                    .components
                    .iter()
                    .filter(|c| c.name.to_lowercase().contains(&name))
                    .filter(|c| {
                        status_filter
                            .as_ref()
                            .is_none_or(|s| *s == c.status.to_string())
                    })
                    .map(component_json)
                    .collect();
                self.page(req, list)
            }
            ("GET", ["components", id]) => {
                match self.components.iter().find(|c| c.id.to_string() == *id) {
                    Some(c) => Reply::json(200, json!({"data": component_json(c)})),
                    None => message(404, "Not Found"),
                }
            }
            ("PATCH" | "PUT", ["components", id]) => {
                if let Some(r) = self.can(req, "components.manage") {
                    return r;
                }
                // Absent is fine (a partial update); present must be one of the enum's values.
                let status = match body.get("status") {
                    None => None,
                    Some(v) => match int(Some(v)).filter(|s| (1..=6).contains(s)) {
                        Some(s) => Some(s),
                        None => return invalid("status", "The selected status is invalid."),
                    },
                };
                match self.components.iter_mut().find(|c| c.id.to_string() == *id) {
                    Some(c) => {
                        if let Some(s) = status {
                            c.status = s;
                        }
                        Reply::json(200, json!({"data": component_json(c)}))
                    }
                    None => message(404, "Not Found"),
                }
            }
            ("GET", ["incidents"]) => {
                let mut list: Vec<&C3Incident> = self
                    .incidents
                    .iter()
                    .filter(|i| {
                        status_filter
                            .as_ref()
                            .is_none_or(|s| s.split(',').any(|x| x == i.status.to_string()))
                    })
                    .collect();
                if req.query("sort") == Some("-id") {
                    list.reverse();
                }
                let list = list
                    .into_iter()
                    .map(|i| self.incident_json(i, include))
                    .collect();
                self.page(req, list)
            }
            ("POST", ["incidents"]) => {
                if let Some(r) = self.can(req, "incidents.manage") {
                    return r;
                }
                let name = body.get("name").and_then(Value::as_str).unwrap_or("");
                if name.is_empty() || name.chars().count() > 255 {
                    return invalid("name", "The name field is required.");
                }
                let Some(msg) = body.get("message").and_then(Value::as_str) else {
                    return invalid(
                        "message",
                        "The message field is required when template is not present.",
                    );
                };
                let Some(status) = int(body.get("status")).filter(|s| (0..=4).contains(s)) else {
                    return invalid("status", "The selected status is invalid.");
                };
                let (Ok(visible), Ok(notifications)) = (
                    boolean(body.get("visible")),
                    boolean(body.get("notifications")),
                ) else {
                    return invalid("visible", "The visible field must be true or false.");
                };
                let mut comps = Vec::new();
                for c in body
                    .get("components")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let id = int(c.get("component_id"));
                    if !id.is_some_and(|id| self.components.iter().any(|x| x.id as i64 == id)) {
                        return invalid(
                            "components.0.component_id",
                            "The selected components.0.component_id is invalid.",
                        );
                    }
                    let Some(st) = int(c.get("component_status")).filter(|s| (1..=6).contains(s))
                    else {
                        return invalid(
                            "components.0.component_status",
                            "The selected components.0.component_status is invalid.",
                        );
                    };
                    comps.push((id.unwrap_or(0) as u64, st));
                }
                let i = C3Incident {
                    id: self.incidents.len() as u64 + 1,
                    name: name.into(),
                    message: msg.into(),
                    status,
                    visible: visible.unwrap_or(false),
                    notifications: notifications.unwrap_or(false),
                    components: comps,
                };
                let out = self.incident_json(&i, true);
                self.incidents.push(i);
                Reply::json(201, json!({"data": out}))
            }
            ("POST", ["incidents", id, "updates"]) => {
                if let Some(r) = self.can(req, "incident-updates.manage") {
                    return r;
                }
                let Some(status) = int(body.get("status")).filter(|s| (0..=4).contains(s)) else {
                    return invalid("status", "The selected status is invalid.");
                };
                let Some(msg) = body.get("message").and_then(Value::as_str) else {
                    return invalid("message", "The message field is required.");
                };
                let Some(i) = self.incidents.iter_mut().find(|i| i.id.to_string() == *id) else {
                    return message(404, "Not Found");
                };
                i.status = status;
                let iid = i.id;
                self.updates.push((iid, status, msg.into()));
                Reply::json(
                    201,
                    json!({"data": {"id": self.updates.len(), "type": "updates",
                    "attributes": {"status": enum_json(status, &INCIDENT_STATUS, 0), "message": msg}}}),
                )
            }
            ("GET", ["schedules"]) => {
                let list = self.schedules.iter()
                    .filter(|s| status_filter.as_ref().is_none_or(|f| *f == s.status.to_string()))
                    .map(|s| {
                        let mut v = json!({"id": s.id, "type": "schedules", "attributes": {
                            "name": s.name, "message": "planned work",
                            "status": enum_json(s.status, &["Upcoming", "In progress", "Complete"], 0)}});
                        if include {
                            v["relationships"] = json!({"components": {"data": s.components.iter()
                                .map(|id| json!({"type": "components", "id": id})).collect::<Vec<_>>()}});
                        }
                        v
                    })
                    .collect();
                self.page(req, list)
            }
            (_, ["components" | "incidents" | "schedules", ..]) => {
                message(405, "The method is not supported for this route.")
            }
            _ => message(404, "Not Found"),
        }
    }
}

impl Api for Cachet3Api {
    fn route(&mut self, req: &Req) -> Reply {
        let Some(rest) = req.under(&self.prefix.clone()) else {
            return message(404, "Not Found");
        };
        // Laravel answers a non-JSON client's validation failure with a redirect.
        let wants_json = req
            .header("Accept")
            .is_some_and(|a| a.contains("application/json"));
        let reply = self.routes(req, &rest);
        if reply.status == 422 && !wants_json {
            return Reply::json(302, json!({})).with_header("Location", "/");
        }
        reply
    }

    fn fault_body(&self, _status: u16, text: &str) -> Value {
        json!({ "message": text })
    }

    fn token_ok(&self, req: &Req) -> bool {
        req.header("Authorization") == Some(format!("Bearer {}", self.token).as_str())
    }
}

/// The fake Cachet 3.x server.
pub type FakeCachet3 = FakeServer<Cachet3Api>;

impl FakeServer<Cachet3Api> {
    /// Serve under `prefix` ("/status/api") for `token`, with every ability.
    pub fn cachet3(token: &str, prefix: &str, components: &[(u64, &str)]) -> FakeCachet3 {
        FakeServer::start(Cachet3Api {
            token: token.into(),
            prefix: prefix.into(),
            abilities: [
                "components.manage",
                "incidents.manage",
                "incident-updates.manage",
            ]
            .map(String::from)
            .to_vec(),
            components: components
                .iter()
                .map(|(id, name)| C3Component {
                    id: *id,
                    name: name.to_string(),
                    status: 1,
                })
                .collect(),
            incidents: Vec::new(),
            updates: Vec::new(),
            schedules: Vec::new(),
        })
    }

    pub fn component_status(&self, id: u64) -> Option<i64> {
        self.api()
            .components
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.status)
    }
}
