//! A strict fake Cachet 2.x API (docs/status-page-apis.md, Cachet 2.x) on loopback, on the
//! shared [`FakeServer`] core: it rejects what the real server rejects (a missing token on a
//! write, a client that does not accept JSON, a field of the wrong type) with the real
//! server's error shape, and records every PUT so tests assert what the page received.

use serde_json::{Value, json};

use crate::http::{self, FakeServer, Reply, Req};

mod incidents;

/// A component on the fake page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeComponent {
    pub id: u64,
    pub name: String,
    pub status: i64,
    pub enabled: bool,
}

/// An incident on the fake page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeIncident {
    pub id: u64,
    pub name: String,
    pub message: String,
    pub status: i64,
    pub component_id: Option<u64>,
    pub visible: bool,
    pub stickied: bool,
}

#[derive(Default)]
pub struct CachetApi {
    token: String,
    /// "2.4.1" or "2.3.18": 2.3 has no incident updates and no schedules.
    version: String,
    incidents: Vec<FakeIncident>,
    /// (incident id, status, message) of each incident update, in order.
    updates: Vec<(u64, i64, String)>,
    schedules: Vec<Value>,
    /// Incident PUTs that omitted visible, stickied or notify (Cachet resets omitted ones).
    lax_incident_puts: usize,
    components: Vec<FakeComponent>,
    /// Successful component PUTs: (id, status), in order.
    puts: Vec<(u64, i64)>,
}

/// The fake Cachet 2.x server.
pub struct FakeCachet {
    server: FakeServer<CachetApi>,
}

impl std::ops::Deref for FakeCachet {
    type Target = FakeServer<CachetApi>;
    fn deref(&self) -> &FakeServer<CachetApi> {
        &self.server
    }
}

impl std::ops::DerefMut for FakeCachet {
    fn deref_mut(&mut self) -> &mut FakeServer<CachetApi> {
        &mut self.server
    }
}

fn error_body(status: u16, title: &str, detail: &str, details: &[&str]) -> String {
    let mut e = json!({"id": "00000000-0000-0000-0000-000000000000", "status": status, "title": title, "detail": detail});
    if !details.is_empty() {
        e["meta"] = json!({ "details": details });
    }
    json!({ "errors": [e] }).to_string()
}

/// Cachet's validation failure: 400 with the reasons in meta.details.
fn bad_request(detail: &str) -> (u16, String) {
    (
        400,
        error_body(
            400,
            "Bad Request",
            "The request cannot be fulfilled due to bad syntax.",
            &[detail],
        ),
    )
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().filter(|i| *i == 0 || *i == 1).map(|i| i == 1),
        Value::String(s) if s == "1" || s == "true" => Some(true),
        Value::String(s) if s == "0" || s == "false" => Some(false),
        _ => None,
    }
}

fn list_json(items: Vec<Value>) -> String {
    let n = items.len();
    json!({"meta": {"pagination": {"total": n, "count": n, "per_page": 20, "current_page": 1, "total_pages": 1, "links": {"next_page": null, "previous_page": null}}}, "data": items}).to_string()
}

fn component_json(c: &FakeComponent) -> Value {
    let names = [
        "Unknown",
        "Operational",
        "Performance Issues",
        "Partial Outage",
        "Major Outage",
    ];
    json!({
        "id": c.id, "name": c.name, "description": "", "link": "", "status": c.status, "order": 0,
        "group_id": 0, "enabled": c.enabled, "meta": null, "created_at": "2026-11-01 00:00:00",
        "updated_at": "2026-11-22 00:00:00", "deleted_at": null,
        "status_name": names.get(c.status as usize).copied().unwrap_or("Unknown"), "tags": []
    })
}

/// Parse a JSON or form body into a JSON object.
fn parse_body(body: &str, content_type: &str) -> Option<Value> {
    if body.trim().is_empty() {
        return Some(json!({}));
    }
    if content_type.contains("json") {
        return serde_json::from_str(body).ok();
    }
    let mut m = serde_json::Map::new();
    for pair in body.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    Some(Value::Object(m))
}

/// Cachet's integer validation: ints, or strings of digits.
fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

impl http::Api for CachetApi {
    fn route(&mut self, req: &Req) -> Reply {
        let (status, body) = self.answer(req);
        Reply {
            status,
            body,
            headers: Vec::new(),
        }
    }

    fn fault_body(&self, status: u16, text: &str) -> Value {
        let title = if status == 429 {
            "Too Many Requests"
        } else {
            "Internal Server Error"
        };
        serde_json::from_str(&error_body(status, title, text, &[])).unwrap_or_default()
    }

    fn token_ok(&self, req: &Req) -> bool {
        req.header("X-Cachet-Token") == Some(self.token.as_str())
    }
}

/// One request's parts, as every resource's handler reads them.
#[derive(Clone, Copy)]
struct Call<'a> {
    method: &'a str,
    /// The path under `/api/v1`.
    rest: &'a str,
    params: &'a [(String, String)],
    token_ok: bool,
    body: &'a str,
    content_type: &'a str,
}

fn not_found() -> (u16, String) {
    (
        404,
        error_body(
            404,
            "Not Found",
            "The requested resource could not be found but may be available again in the future.",
            &[],
        ),
    )
}

fn unauthorized() -> (u16, String) {
    (
        401,
        error_body(
            401,
            "Unauthorized",
            "You are not authorized to view this content.",
            &[],
        ),
    )
}

impl CachetApi {
    /// Cachet refuses a client that does not accept JSON (406) before anything else, then
    /// routes by resource.
    fn answer(&mut self, req: &Req) -> (u16, String) {
        let accept = req.header("Accept").unwrap_or_default();
        if !accept.contains("application/json") && !accept.contains("*/*") {
            return (
                406,
                error_body(
                    406,
                    "Not Acceptable",
                    "The requested resource is only capable of generating content not acceptable according to the Accept headers sent in the request.",
                    &[],
                ),
            );
        }
        let Some(rest) = req.path.strip_prefix("/api/v1") else {
            return not_found();
        };
        let c = Call {
            method: &req.method,
            rest,
            params: &req.query,
            token_ok: http::Api::token_ok(self, req),
            body: &req.body,
            content_type: req.header("Content-Type").unwrap_or_default(),
        };
        match rest.trim_start_matches('/').split('/').next().unwrap_or("") {
            "ping" | "version" => self.meta(&c),
            "components" => self.components(&c),
            "incidents" => self.incidents(&c),
            "schedules" => self.schedules(&c),
            _ => not_found(),
        }
    }

    /// `/ping` and `/version`.
    fn meta(&mut self, call: &Call<'_>) -> (u16, String) {
        let s = self;
        match (call.method, call.rest) {
            ("GET", "/ping") => (200, json!({"data": "Pong!"}).to_string()),
            ("GET", "/version") => (
                200,
                json!({"meta": {"on_latest": true, "latest": {"tag_name": "v2.4.1"}}, "data": s.version})
                    .to_string(),
            ),
            _ => not_found(),
        }
    }

    /// `/components`: guests see enabled components only; writes need the token.
    fn components(&mut self, call: &Call<'_>) -> (u16, String) {
        let s = self;
        match (call.method, call.rest) {
            ("GET", "/components") => {
                let filters: Vec<&(String, String)> = call
                    .params
                    .iter()
                    .filter(|(k, _)| {
                        matches!(
                            k.as_str(),
                            "id" | "name" | "status" | "order" | "group_id" | "enabled"
                        )
                    })
                    .collect();
                // Spec (?): a field filter combined with `page` likely fails server-side. Pinned here.
                if !filters.is_empty() && call.params.iter().any(|(k, _)| k == "page") {
                    return (
                        500,
                        error_body(500, "Internal Server Error", "filter with page", &[]),
                    );
                }
                // A bad token on a GET is a guest: enabled components only.
                let list: Vec<Value> = s
                    .components
                    .iter()
                    .filter(|c| call.token_ok || c.enabled)
                    .filter(|c| {
                        filters.iter().all(|(k, v)| match k.as_str() {
                            "name" => &c.name == v,
                            "id" => c.id.to_string() == *v,
                            "status" => c.status.to_string() == *v,
                            _ => true,
                        })
                    })
                    .map(component_json)
                    .collect();
                let n = list.len();
                (200, json!({"meta": {"pagination": {"total": n, "count": n, "per_page": 20, "current_page": 1, "total_pages": 1, "links": {"next_page": null, "previous_page": null}}}, "data": list}).to_string())
            }
            ("GET", p) if p.starts_with("/components/") => {
                let id = p.trim_start_matches("/components/").parse::<u64>().ok();
                match s
                    .components
                    .iter()
                    .find(|c| Some(c.id) == id && (call.token_ok || c.enabled))
                {
                    Some(c) => (200, json!({"data": component_json(c)}).to_string()),
                    None => not_found(),
                }
            }
            ("PUT", p) if p.starts_with("/components/") => {
                if !call.token_ok {
                    return unauthorized();
                }
                let id = p.trim_start_matches("/components/").parse::<u64>().ok();
                let Some(idx) = s.components.iter().position(|c| Some(c.id) == id) else {
                    return not_found();
                };
                let Some(fields) = parse_body(call.body, call.content_type) else {
                    return bad_request("The body is not valid JSON.");
                };
                let mut new = s.components[idx].clone();
                if let Some(st) = fields.get("status") {
                    match as_int(st) {
                        Some(v) if (0..=4).contains(&v) => new.status = v,
                        _ => {
                            return bad_request("The status format is invalid.");
                        }
                    }
                }
                if let Some(n) = fields.get("name").and_then(Value::as_str) {
                    new.name = n.to_string();
                }
                if let Some(e) = fields.get("enabled") {
                    new.enabled = matches!(e, Value::Bool(true)) || e == "1" || e == 1;
                }
                s.components[idx] = new.clone();
                if fields.get("status").is_some() {
                    s.puts.push((new.id, new.status));
                }
                (200, json!({"data": component_json(&new)}).to_string())
            }
            _ => not_found(),
        }
    }

    /// `/schedules` (2.4 only).
    fn schedules(&mut self, call: &Call<'_>) -> (u16, String) {
        let s = self;
        match (call.method, call.rest) {
            ("GET", "/schedules") => {
                if s.version.starts_with("2.3") {
                    return not_found();
                }
                (200, list_json(s.schedules.clone()))
            }
            (_, p) if p.starts_with("/components") || p == "/ping" => (
                405,
                error_body(
                    405,
                    "Method Not Allowed",
                    "The request method is not supported for this resource.",
                    &[],
                ),
            ),
            _ => not_found(),
        }
    }
}

impl FakeCachet {
    /// Start on a free loopback port with this token and these components.
    pub fn start(token: &str, components: &[(u64, &str)]) -> FakeCachet {
        let api = CachetApi {
            token: token.to_string(),
            version: "2.4.1".into(),
            components: components
                .iter()
                .map(|(id, name)| FakeComponent {
                    id: *id,
                    name: name.to_string(),
                    status: 1,
                    enabled: true,
                })
                .collect(),
            ..Default::default()
        };
        FakeCachet {
            server: FakeServer::start(api),
        }
    }

    pub fn set_token(&self, token: &str) {
        self.api().token = token.to_string();
    }

    pub fn set_enabled(&self, id: u64, enabled: bool) {
        let mut s = self.api();
        if let Some(c) = s.components.iter_mut().find(|c| c.id == id) {
            c.enabled = enabled;
        }
    }

    /// Set a component's status directly, as a restore from backup or a human would.
    pub fn set_status(&self, id: u64, status: i64) {
        let mut s = self.api();
        if let Some(c) = s.components.iter_mut().find(|c| c.id == id) {
            c.status = status;
        }
    }

    pub fn add_component(&self, id: u64, name: &str) {
        self.api().components.push(FakeComponent {
            id,
            name: name.into(),
            status: 1,
            enabled: true,
        });
    }

    /// Serve as Cachet 2.3 ("2.3.18") or 2.4 ("2.4.1").
    pub fn set_version(&self, v: &str) {
        self.api().version = v.to_string();
    }

    pub fn incidents(&self) -> Vec<FakeIncident> {
        self.api().incidents.clone()
    }

    /// (incident id, status, message) of each incident update posted.
    pub fn updates(&self) -> Vec<(u64, i64, String)> {
        self.api().updates.clone()
    }

    /// Incident PUTs that omitted visible, stickied or notify.
    pub fn lax_incident_puts(&self) -> usize {
        self.api().lax_incident_puts
    }

    /// An incident a human opened for a component.
    pub fn add_incident(&self, component_id: u64, name: &str) -> u64 {
        let mut s = self.api();
        let id = s.incidents.iter().map(|i| i.id).max().unwrap_or(0) + 1;
        s.incidents.push(FakeIncident {
            id,
            name: name.into(),
            message: "a human wrote this".into(),
            status: 2,
            component_id: Some(component_id),
            visible: true,
            stickied: false,
        });
        id
    }

    pub fn set_incident_status(&self, id: u64, status: i64) {
        let mut s = self.api();
        if let Some(i) = s.incidents.iter_mut().find(|i| i.id == id) {
            i.status = status;
        }
    }

    pub fn delete_incident(&self, id: u64) {
        self.api().incidents.retain(|i| i.id != id);
    }

    /// Put a schedule (JSON as Cachet serves it) on the page.
    pub fn add_schedule(&self, schedule: Value) {
        self.api().schedules.push(schedule);
    }

    pub fn clear_schedules(&self) {
        self.api().schedules.clear();
    }

    pub fn remove_component(&self, id: u64) {
        self.api().components.retain(|c| c.id != id);
    }

    pub fn status_of(&self, id: u64) -> Option<i64> {
        self.api()
            .components
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.status)
    }

    /// Successful status PUTs so far: (id, status), in order.
    pub fn puts(&self) -> Vec<(u64, i64)> {
        self.api().puts.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One raw HTTP/1.1 exchange with the fake, so its strictness is tested without statusrelay.
    fn raw(f: &FakeCachet, req: &str) -> String {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", f.port())).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    }

    fn put(f: &FakeCachet, token: &str, accept: &str, body: &str) -> String {
        raw(
            f,
            &format!(
                "PUT /api/v1/components/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Cachet-Token: {token}\r\nAccept: {accept}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    }

    #[test]
    fn the_fake_rejects_what_cachet_rejects() {
        let f = FakeCachet::start("tok", &[(2, "db")]);
        assert!(put(&f, "bad", "application/json", r#"{"status":4}"#).starts_with("HTTP/1.1 401"));
        assert!(put(&f, "tok", "text/html", r#"{"status":4}"#).starts_with("HTTP/1.1 406"));
        let r = put(&f, "tok", "application/json", r#"{"status":7}"#);
        assert!(
            r.starts_with("HTTP/1.1 400") && r.contains("The status format is invalid."),
            "{r}"
        );
        assert!(put(&f, "tok", "application/json", "{nope").starts_with("HTTP/1.1 400"));
        assert_eq!(f.status_of(2), Some(1));
        assert!(
            put(&f, "tok", "application/json", r#"{"status":"4"}"#).starts_with("HTTP/1.1 200")
        );
        assert_eq!(f.puts(), vec![(2, 4)]);
        // A filter combined with page fails, as the spec expects of the real server.
        let r = raw(
            &f,
            "GET /api/v1/components?name=db&page=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: application/json\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 500"), "{r}");
        // A guest (bad token) does not see disabled components.
        f.set_enabled(2, false);
        let r = raw(
            &f,
            "GET /api/v1/components/2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: application/json\r\n\r\n",
        );
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    }
}
