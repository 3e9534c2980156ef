//! A strict fake status.io API v2 (docs/status-page-apis.md, status.io) on loopback.
//!
//! Strict where the real service is: x-api-id and x-api-key on every call; the envelope
//! `{"status":{"error","message"},"result"}`; errors as HTTP 200 with `error: "yes"`; status
//! codes 100-600 only; incident states 100-300; notify flags as the strings "0"/"1";
//! `infrastructure_affected` entries `<component>-<container>` that exist. Pinned assumptions
//! (not in the spec): a bad key is also an HTTP-200 error; incident/list returns
//! `active_incidents` with `components_affected`/`containers_affected`; maintenance/list/active
//! returns `active_maintenances`.

use serde_json::{Value, json};

use crate::http::{Api, FakeServer, Reply, Req};

const STATUS_CODES: [i64; 6] = [100, 200, 300, 400, 500, 600];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SioComponent {
    pub id: String,
    pub name: String,
    /// (container id, container name, status code).
    pub containers: Vec<(String, String, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SioIncident {
    pub id: String,
    pub name: String,
    pub active: bool,
    /// `<component>-<container>` entries.
    pub affected: Vec<String>,
    /// (details, current_state, current_status) of each step: create, updates, resolve.
    pub messages: Vec<(String, i64, i64)>,
    pub notify_email: String,
}

pub struct StatusioApi {
    api_id: String,
    key: String,
    page: String,
    pub components: Vec<SioComponent>,
    pub incidents: Vec<SioIncident>,
    /// (name, affected `<component>-<container>` entries) of maintenances in progress.
    pub maintenances: Vec<(String, Vec<String>)>,
}

fn fail(text: &str) -> Reply {
    Reply::json(200, json!({"status": {"error": "yes", "message": text}}))
}

fn ok(result: Value) -> Reply {
    Reply::json(
        200,
        json!({"status": {"error": "no", "message": "OK"}, "result": result}),
    )
}

fn code(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl StatusioApi {
    fn set_status(&mut self, entry: &str, status: i64) -> bool {
        let Some((comp, cont)) = entry.split_once('-') else {
            return false;
        };
        let Some(c) = self.components.iter_mut().find(|c| c.id == comp) else {
            return false;
        };
        match c.containers.iter_mut().find(|k| k.0 == cont) {
            Some(k) => {
                k.2 = status;
                true
            }
            None => false,
        }
    }

    fn named(&self, entries: &[String]) -> (Vec<Value>, Vec<Value>) {
        let mut comps = Vec::new();
        let mut conts = Vec::new();
        for e in entries {
            let (a, b) = e.split_once('-').unwrap_or((e, ""));
            if let Some(c) = self.components.iter().find(|c| c.id == a) {
                comps.push(json!({"_id": c.id, "name": c.name}));
                if let Some(k) = c.containers.iter().find(|k| k.0 == b) {
                    conts.push(json!({"_id": k.0, "name": k.1}));
                }
            }
        }
        (comps, conts)
    }

    /// Validate and apply the fields create/update/resolve share; returns the details.
    fn notice(
        &mut self,
        b: &Value,
        need_affected: bool,
    ) -> Result<(String, i64, i64, Vec<String>), Reply> {
        let details = b
            .get("incident_details")
            .and_then(Value::as_str)
            .ok_or_else(|| fail("incident_details is required"))?;
        let status = code(b.get("current_status"))
            .filter(|c| STATUS_CODES.contains(c))
            .ok_or_else(|| fail("current_status is invalid"))?;
        let state = code(b.get("current_state"))
            .filter(|c| [100, 200, 300].contains(c))
            .ok_or_else(|| fail("current_state is invalid"))?;
        for f in [
            "notify_email",
            "notify_sms",
            "notify_webhook",
            "social",
            "irc",
            "hipchat",
            "slack",
        ] {
            match b.get(f) {
                None => {}
                Some(Value::String(s)) if s == "0" || s == "1" => {}
                Some(other) => {
                    return Err(fail(&format!("{f} must be \"0\" or \"1\", not {other}")));
                }
            }
        }
        let affected: Vec<String> = b
            .get("infrastructure_affected")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if need_affected && affected.is_empty() {
            return Err(fail("infrastructure_affected is required"));
        }
        for a in &affected {
            if !self.set_status(a, status) {
                return Err(fail(&format!("infrastructure_affected {a} is invalid")));
            }
        }
        Ok((details.to_string(), state, status, affected))
    }

    fn routes(&mut self, req: &Req, rest: &[&str]) -> Reply {
        let b = req.json().unwrap_or(Value::Null);
        if req.method == "POST"
            && b.get("statuspage_id").and_then(Value::as_str) != Some(self.page.as_str())
        {
            return fail("statuspage_id is invalid");
        }
        match (req.method.as_str(), rest) {
            ("POST", ["component", "status", "update"]) => {
                let status = code(b.get("current_status")).filter(|c| STATUS_CODES.contains(c));
                let (Some(comp), Some(cont), Some(status)) = (
                    b.get("component").and_then(Value::as_str),
                    b.get("container").and_then(Value::as_str),
                    status,
                ) else {
                    return fail("component, container and a valid current_status are required");
                };
                if !self.set_status(&format!("{comp}-{cont}"), status) {
                    return fail("component or container not found");
                }
                ok(json!(true))
            }
            ("POST", ["incident", "create"]) => {
                let Some(name) = b
                    .get("incident_name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                else {
                    return fail("incident_name is required");
                };
                let (details, state, status, affected) = match self.notice(&b, true) {
                    Ok(n) => n,
                    Err(r) => return r,
                };
                let id = format!("{:024x}", self.incidents.len() + 1);
                self.incidents.push(SioIncident {
                    id: id.clone(),
                    name: name.into(),
                    active: true,
                    affected,
                    messages: vec![(details, state, status)],
                    notify_email: b
                        .get("notify_email")
                        .and_then(Value::as_str)
                        .unwrap_or("0")
                        .into(),
                });
                ok(json!(id))
            }
            ("POST", ["incident", step @ ("update" | "resolve")]) => {
                let id = b
                    .get("incident_id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if !self.incidents.iter().any(|i| i.id == id && i.active) {
                    return fail("incident_id is invalid or resolved");
                }
                let (details, state, status, _) = match self.notice(&b, false) {
                    Ok(n) => n,
                    Err(r) => return r,
                };
                let i = self
                    .incidents
                    .iter_mut()
                    .find(|i| i.id == id)
                    .expect("checked");
                i.messages.push((details, state, status));
                if *step == "resolve" {
                    i.active = false;
                }
                ok(json!(true))
            }
            ("GET", ["incident", "list", page]) if *page == self.page => {
                let list = |active: bool| -> Vec<Value> {
                    self.incidents.iter().filter(|i| i.active == active).map(|i| {
                        let (c, k) = self.named(&i.affected);
                        json!({"_id": i.id, "name": i.name, "components_affected": c, "containers_affected": k})
                    }).collect()
                };
                ok(json!({"active_incidents": list(true), "resolved_incidents": list(false)}))
            }
            ("GET", ["maintenance", "list", "active", page]) if *page == self.page => {
                let list: Vec<Value> = self.maintenances.iter().map(|(name, aff)| {
                    let (c, k) = self.named(aff);
                    json!({"_id": "m1", "name": name, "components_affected": c, "containers_affected": k,
                        "messages": [{"details": "planned work"}]})
                }).collect();
                ok(json!({"active_maintenances": list}))
            }
            ("GET", ["status", "summary", page]) if *page == self.page => {
                let status: Vec<Value> = self.components.iter().map(|c| json!({
                    "id": c.id, "name": c.name, "status_code": c.containers.iter().map(|k| k.2).max().unwrap_or(100),
                    "containers": c.containers.iter().map(|k| json!({"id": k.0, "name": k.1, "status_code": k.2})).collect::<Vec<_>>(),
                })).collect();
                ok(json!({"status_overall": {}, "status": status}))
            }
            _ => Reply::json(
                404,
                json!({"status": {"error": "yes", "message": "Not found"}}),
            ),
        }
    }
}

impl Api for StatusioApi {
    fn route(&mut self, req: &Req) -> Reply {
        if !self.token_ok(req) {
            return fail("Authentication failed: invalid x-api-id or x-api-key");
        }
        match req.under("/v2") {
            Some(rest) => self.routes(req, &rest),
            None => Reply::json(
                404,
                json!({"status": {"error": "yes", "message": "Not found"}}),
            ),
        }
    }

    fn fault_body(&self, _status: u16, text: &str) -> Value {
        json!({"status": {"error": "yes", "message": text}})
    }

    fn token_ok(&self, req: &Req) -> bool {
        req.header("x-api-id") == Some(self.api_id.as_str())
            && req.header("x-api-key") == Some(self.key.as_str())
    }
}

/// (id, name) of the containers a component is shown in.
pub type Containers<'a> = &'a [(&'a str, &'a str)];

/// The fake status.io.
pub type FakeStatusio = FakeServer<StatusioApi>;

impl FakeServer<StatusioApi> {
    /// Serve page `page` for (api_id, key), each component in the given containers (all 100).
    pub fn statusio(
        api_id: &str,
        key: &str,
        page: &str,
        components: &[(&str, &str, Containers)],
    ) -> FakeStatusio {
        FakeServer::start(StatusioApi {
            api_id: api_id.into(),
            key: key.into(),
            page: page.into(),
            components: components
                .iter()
                .map(|(id, name, conts)| SioComponent {
                    id: id.to_string(),
                    name: name.to_string(),
                    containers: conts
                        .iter()
                        .map(|(i, n)| (i.to_string(), n.to_string(), 100))
                        .collect(),
                })
                .collect(),
            incidents: Vec::new(),
            maintenances: Vec::new(),
        })
    }

    pub fn api_url(&self) -> String {
        format!("{}/v2", self.url())
    }

    /// The status code of `<component>-<container>`.
    pub fn status_of(&self, entry: &str) -> Option<i64> {
        let (a, b) = entry.split_once('-')?;
        let api = self.api();
        let c = api.components.iter().find(|c| c.id == a)?;
        c.containers.iter().find(|k| k.0 == b).map(|k| k.2)
    }
}
