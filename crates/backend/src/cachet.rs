//! Cachet 2.x (`/api/v1`), per the contract in shared/specs/status-page-apis.md §1.
//!
//! Invariants:
//! - Writes carry `X-Cachet-Token`; every request sends `Accept: application/json` (else 406).
//! - Names are resolved with `GET /components?name=` and *no* `page` parameter (combining a
//!   filter with `page` makes the server fail).
//! - A PUT is a partial update: only `status` is sent, never `enabled` (cachet #3288).
//! - Redirects are not followed: a PUT that turns into a GET elsewhere would report success
//!   for nothing. A 3xx is reported with its Location so the operator can fix `url`.
//! - The status the server echoes back is what counts as confirmed; a mismatch is an error.

use std::time::Duration;

use serde_json::{Value, json};
use statusrelay_core::State;
use ureq::Agent;

use crate::{Backend, BackendError, CheckLine, ComponentRef, PageIncident, PageMaintenance};

/// Cachet 2.x status codes (0 Unknown, 1 Operational, 2 Performance Issues, 3 Partial Outage,
/// 4 Major Outage). Cachet 2.x has no maintenance status: `under_maintenance` is shown as
/// Performance Issues, the mildest non-operational code (a maintenance is planned, not broken).
pub fn status_code(state: State) -> u8 {
    match state {
        State::Unknown => 0,
        State::Operational => 1,
        State::PerformanceIssues | State::UnderMaintenance => 2,
        State::PartialOutage => 3,
        State::MajorOutage => 4,
    }
}

/// The state a Cachet 2.x status code shows.
pub fn state_of(code: i64) -> Option<State> {
    Some(match code {
        0 => State::Unknown,
        1 => State::Operational,
        2 => State::PerformanceIssues,
        3 => State::PartialOutage,
        4 => State::MajorOutage,
        _ => return None,
    })
}

/// A Cachet 2.x API client.
pub struct Cachet {
    base: String,
    token: String,
    agent: Agent,
    /// Some(true) for 2.3 (no incident updates, no schedules), Some(false) for 2.4; None: ask.
    is_23: Option<bool>,
}

/// Cachet incident statuses.
const INVESTIGATING: u8 = 1;
const FIXED: u8 = 4;

impl std::fmt::Debug for Cachet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cachet")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

fn first_str(v: &Value, ptrs: &[&str]) -> Option<String> {
    ptrs.iter()
        .find_map(|p| v.pointer(p).and_then(Value::as_str).map(str::to_string))
}

/// The server's own words from an error body, shortened for logs and dead letters.
fn error_text(body: &str) -> String {
    let text = match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let mut parts = Vec::new();
            if let Some(t) = first_str(
                &v,
                &["/errors/0/detail", "/errors/0/title", "/message", "/error"],
            ) {
                parts.push(t);
            }
            if let Some(details) = v
                .pointer("/errors/0/meta/details")
                .or_else(|| v.pointer("/meta/details"))
                .and_then(Value::as_array)
            {
                parts.extend(details.iter().filter_map(Value::as_str).map(str::to_string));
            }
            if parts.is_empty() {
                body.trim().to_string()
            } else {
                parts.join(" ")
            }
        }
        Err(_) => body.trim().to_string(),
    };
    let mut t: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    if t.is_empty() {
        t = "(empty body)".into();
    }
    t
}

fn parse_retry_after(v: Option<&str>) -> Option<Duration> {
    v.and_then(|s| s.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(3600)))
}

fn transport(e: ureq::Error) -> BackendError {
    match e {
        ureq::Error::Tls(m) => BackendError::Tls(m.to_string()),
        ureq::Error::Rustls(r) => BackendError::Tls(r.to_string()),
        ureq::Error::Timeout(t) => BackendError::Transport(format!("timed out ({t})")),
        ureq::Error::Io(io) => BackendError::Transport(io.to_string()),
        ureq::Error::HostNotFound => BackendError::Transport("host not found".into()),
        ureq::Error::ConnectionFailed => BackendError::Transport("connection failed".into()),
        other => BackendError::Transport(other.to_string()),
    }
}

impl Cachet {
    /// `url` is the installation's base URL (without `/api/v1`).
    pub fn new(url: &str, token: String, timeout: Duration) -> Cachet {
        let agent = build_agent(timeout, None);
        Cachet {
            base: url.trim_end_matches('/').to_string(),
            token,
            agent,
            is_23: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// One request; returns the parsed JSON body of a 2xx answer.
    fn call(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value, BackendError> {
        let url = self.url(path);
        let resp = match (method, body) {
            ("GET", _) => {
                let mut rb = self
                    .agent
                    .get(&url)
                    .header("Accept", "application/json")
                    .header("X-Cachet-Token", &self.token);
                for (k, v) in query {
                    rb = rb.query(*k, *v);
                }
                rb.call()
            }
            (m, body) => {
                let rb = match m {
                    "PUT" => self.agent.put(&url),
                    "POST" => self.agent.post(&url),
                    other => {
                        return Err(BackendError::Protocol(format!(
                            "unsupported method {other}"
                        )));
                    }
                };
                rb.header("Accept", "application/json")
                    .header("X-Cachet-Token", &self.token)
                    .send_json(body.unwrap_or(Value::Null))
            }
        }
        .map_err(transport)?;
        let status = resp.status().as_u16();
        let retry_after = parse_retry_after(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
        );
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = resp.into_body();
        let text = body
            .with_config()
            .limit(4 * 1024 * 1024)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(transport)?;
        if (300..400).contains(&status) {
            return Err(BackendError::Http {
                status,
                message: format!(
                    "redirected to {} : set backend.url to the final address",
                    location.unwrap_or_default()
                ),
                retry_after: None,
            });
        }
        if !(200..300).contains(&status) {
            return Err(BackendError::Http {
                status,
                message: error_text(&text),
                retry_after,
            });
        }
        serde_json::from_str(&text)
            .map_err(|e| BackendError::Protocol(format!("{method} {path}: body is not JSON ({e})")))
    }

    /// Trust only the CA(s) in this PEM for the page's certificate (a private CA). Verification
    /// stays on; there is deliberately no way to turn it off.
    pub fn with_ca_pem(mut self, pem: &[u8], timeout: Duration) -> Result<Cachet, BackendError> {
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| BackendError::Config(format!("ca_file is not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(BackendError::Config(
                "ca_file holds no certificate (expected -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        self.agent = build_agent(timeout, Some(certs));
        Ok(self)
    }

    /// Pin the API version ("2.3" or "2.4"); "auto" asks `/api/v1/version` on first need.
    pub fn with_version(mut self, version: &str) -> Cachet {
        self.is_23 = match version {
            "2.3" => Some(true),
            "2.4" => Some(false),
            _ => None,
        };
        self
    }

    /// Is this Cachet 2.3 (incidents are PUT, no updates, no schedules)?
    pub fn is_23(&mut self) -> Result<bool, BackendError> {
        if let Some(v) = self.is_23 {
            return Ok(v);
        }
        let v = self.call("GET", "/version", &[], None)?;
        let version = v
            .get("data")
            .and_then(Value::as_str)
            .ok_or_else(|| BackendError::Protocol("GET /version: no data string".into()))?;
        let is_23 = version.trim_start_matches('v').starts_with("2.3");
        self.is_23 = Some(is_23);
        Ok(is_23)
    }

    /// 2.3 has no incident updates: the incident itself is PUT, always with visible, stickied
    /// and notify (an omitted one would be reset).
    fn put_incident(
        &self,
        incident: &str,
        remote_id: &str,
        status: u8,
        state: State,
        message: &str,
        notify: bool,
    ) -> Result<(), BackendError> {
        let body = json!({
            "status": status, "message": message, "visible": 1, "stickied": 0, "notify": notify,
            "component_id": remote_id, "component_status": status_code(state),
        });
        self.call("PUT", &format!("/incidents/{incident}"), &[], Some(body))
            .map(|_| ())
    }

    /// POST an incident update (2.4). A 404 means the incident is gone, unless the incident is
    /// still there: then this server has no updates endpoint (a 2.3 pinned as 2.4), which must
    /// fail loudly rather than pass for a deleted incident.
    fn post_update(&self, incident: &str, status: u8, message: &str) -> Result<(), BackendError> {
        let body = json!({ "status": status, "message": message });
        match self.call(
            "POST",
            &format!("/incidents/{incident}/updates"),
            &[],
            Some(body),
        ) {
            Err(e) if e.is_not_found() => {
                match self.call("GET", &format!("/incidents/{incident}"), &[], None) {
                    Ok(_) => Err(BackendError::Protocol(format!(
                        "incident #{incident} exists but POST /incidents/{incident}/updates is 404: is this Cachet 2.3? set [backend] version = \"2.3\""
                    ))),
                    Err(_) => Err(e),
                }
            }
            other => other.map(|_| ()),
        }
    }

    fn current_status(&self, id: &str) -> Result<i64, BackendError> {
        let v = self.call("GET", &format!("/components/{id}"), &[], None)?;
        v.pointer("/data/status")
            .and_then(Value::as_i64)
            .ok_or_else(|| BackendError::Protocol(format!("GET /components/{id}: no data.status")))
    }
}

impl Backend for Cachet {
    fn identity(&self) -> String {
        format!("cachet {}", self.base)
    }

    fn resolve(&mut self, component: &ComponentRef) -> Result<String, BackendError> {
        if let Some(id) = component.id {
            return Ok(id.to_string());
        }
        let v = self.call(
            "GET",
            "/components",
            &[("name", component.name.as_str())],
            None,
        )?;
        let list = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| BackendError::Protocol("GET /components: no data array".into()))?;
        let ids: Vec<i64> = list
            .iter()
            .filter(|c| c.get("name").and_then(Value::as_str) == Some(component.name.as_str()))
            .filter_map(|c| c.get("id").and_then(Value::as_i64))
            .collect();
        match ids.as_slice() {
            [] => Err(BackendError::NotFound(component.name.clone())),
            [id] => Ok(id.to_string()),
            many => Err(BackendError::Ambiguous {
                name: component.name.clone(),
                count: many.len(),
                ids: many
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn set_state(
        &mut self,
        remote_id: &str,
        component: &ComponentRef,
        state: State,
        _message: Option<&str>,
    ) -> Result<State, BackendError> {
        let code = status_code(state);
        let v = self.call(
            "PUT",
            &format!("/components/{remote_id}"),
            &[],
            Some(json!({ "status": code })),
        )?;
        let echoed = v
            .pointer("/data/status")
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                BackendError::Protocol(format!(
                    "PUT /components/{remote_id}: no data.status in the answer"
                ))
            })?;
        if echoed != i64::from(code) {
            return Err(BackendError::Protocol(format!(
                "PUT status {code} for {:?} but the page answered status {echoed}",
                component.name
            )));
        }
        state_of(echoed)
            .ok_or_else(|| BackendError::Protocol(format!("unknown Cachet status {echoed}")))
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
        let body = json!({
            "name": name, "message": message, "status": INVESTIGATING, "visible": 1, "stickied": 0,
            "notify": notify, "component_id": remote_id, "component_status": status_code(state),
        });
        let v = self.call("POST", "/incidents", &[], Some(body))?;
        v.pointer("/data/id")
            .and_then(Value::as_i64)
            .map(|id| id.to_string())
            .ok_or_else(|| {
                BackendError::Protocol("POST /incidents: no data.id in the answer".into())
            })
    }

    fn open_incidents(&mut self, remote_id: &str) -> Result<Vec<PageIncident>, BackendError> {
        // A filter without `page`, as for components; newest first.
        let v = self.call(
            "GET",
            "/incidents",
            &[
                ("component_id", remote_id),
                ("sort", "id"),
                ("order", "desc"),
            ],
            None,
        )?;
        let list = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| BackendError::Protocol("GET /incidents: no data array".into()))?;
        Ok(list
            .iter()
            .filter(|i| {
                i.get("component_id")
                    .and_then(Value::as_i64)
                    .map(|c| c.to_string())
                    .as_deref()
                    == Some(remote_id)
            })
            // 4 is Fixed; 2.3's 0 is a scheduled maintenance, not an incident.
            .filter(|i| !matches!(i.get("status").and_then(Value::as_i64), Some(0) | Some(4)))
            .filter_map(|i| {
                Some(PageIncident {
                    id: i.get("id")?.as_i64()?.to_string(),
                    name: i.get("name")?.as_str()?.to_string(),
                })
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
        if self.is_23()? {
            return self.put_incident(incident, remote_id, INVESTIGATING, state, message, false);
        }
        self.post_update(incident, INVESTIGATING, message)
    }

    fn resolve_incident(
        &mut self,
        incident: &str,
        remote_id: &str,
        message: &str,
        notify: bool,
    ) -> Result<(), BackendError> {
        if self.is_23()? {
            return self.put_incident(
                incident,
                remote_id,
                FIXED,
                State::Operational,
                message,
                notify,
            );
        }
        self.post_update(incident, FIXED, message)
    }

    fn active_maintenance(&mut self) -> Result<Vec<PageMaintenance>, BackendError> {
        if self.is_23()? {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for page in 1..=10 {
            let p = page.to_string();
            let v = self.call(
                "GET",
                "/schedules",
                &[("per_page", "100"), ("page", &p)],
                None,
            )?;
            let list = v
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| BackendError::Protocol("GET /schedules: no data array".into()))?;
            out.extend(list.iter().filter(|s| schedule_in_progress(s)).map(|s| {
                PageMaintenance {
                    name: s
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    message: s
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    components: s
                        .get("components")
                        .and_then(Value::as_array)
                        .map(|cs| {
                            cs.iter()
                                .flat_map(|c| match c {
                                    Value::Object(_) => [
                                        c.get("id").map(|i| i.to_string()),
                                        c.get("name").and_then(Value::as_str).map(str::to_string),
                                    ]
                                    .into_iter()
                                    .flatten()
                                    .collect::<Vec<_>>(),
                                    other => vec![other.to_string().trim_matches('"').to_string()],
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            }));
            let total = v
                .pointer("/meta/pagination/total_pages")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            if page >= total {
                break;
            }
        }
        Ok(out)
    }

    fn check(&mut self, components: &[ComponentRef]) -> Vec<CheckLine> {
        let mut out = Vec::new();
        let mut line = |ok: bool, what: String| out.push(CheckLine { ok, what });
        match self.call("GET", "/ping", &[], None) {
            Ok(v) if v.get("data").and_then(Value::as_str) == Some("Pong!") => {
                line(true, format!("{} answers /api/v1/ping", self.base))
            }
            Ok(v) => line(
                false,
                format!(
                    "{} /api/v1/ping answered {v}, not Pong!: is this Cachet 2.x?",
                    self.base
                ),
            ),
            Err(e) => {
                line(false, format!("{} is not reachable: {e}", self.base));
                return out;
            }
        }
        let mut first_id = None;
        for c in components {
            match self.resolve(c) {
                Ok(id) => match self.current_status(&id) {
                    Ok(code) => {
                        line(
                            true,
                            format!("component {:?} is id {id} (status {code})", c.name),
                        );
                        first_id.get_or_insert((id, code, c.name.clone()));
                    }
                    Err(e) => line(false, format!("component {:?} (id {id}): {e}", c.name)),
                },
                Err(e) => line(false, format!("component {:?}: {e}", c.name)),
            }
        }
        // A GET cannot validate a token (Cachet treats a bad token as a guest), so write the
        // status the component already has: a no-op that needs a valid token.
        match first_id {
            Some((id, code, name)) => match self.call(
                "PUT",
                &format!("/components/{id}"),
                &[],
                Some(json!({ "status": code })),
            ) {
                Ok(_) => line(
                    true,
                    format!("the token can write (re-sent {name:?}'s current status)"),
                ),
                Err(e) => line(false, format!("the token cannot write: {e}")),
            },
            None => line(false, "token unverified: no component to write to".into()),
        }
        out
    }
}

fn build_agent(timeout: Duration, roots: Option<Vec<ureq::tls::Certificate<'static>>>) -> Agent {
    let mut b = Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(concat!("statusrelay/", env!("CARGO_PKG_VERSION")));
    if let Some(certs) = roots {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
            .build();
        b = b.tls_config(tls);
    }
    b.build().into()
}

/// Warnings about how a Cachet URL and token are set up; empty when all is well.
pub fn transport_warnings(url: &str, token_file: Option<&std::path::Path>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or("");
        let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
        if !loopback {
            out.push(format!("backend.url {url} is plain http to another host: the token crosses the network in clear; use https"));
        }
    }
    if let Some(p) = token_file {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o004 != 0) {
            out.push(format!("token_file {} is readable by everyone: chmod 0600 (owner statusrelay) or 0640 root:statusrelay", p.display()));
        }
    }
    out
}

/// A schedule is in progress when its status is 1, or when it has started, is not complete and
/// not marked complete (status 2). Timestamps are the server's "Y-m-d H:i" local time; they are
/// read as UTC (pinned in a test), so a server in another zone should rely on status 1.
pub fn schedule_in_progress(s: &Value) -> bool {
    match s.get("status").and_then(Value::as_i64) {
        Some(1) => return true,
        Some(2) => return false,
        _ => {}
    }
    if !s.get("completed_at").is_none_or(Value::is_null) {
        return false;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    s.get("scheduled_at")
        .and_then(Value::as_str)
        .and_then(parse_cachet_time)
        .is_some_and(|t| t <= now)
}

/// "2026-11-22 10:30" or "2026-11-22 10:30:00", read as UTC, to unix seconds.
pub fn parse_cachet_time(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once(' ')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi) = (t.next()??, t.next()??);
    let sec = t.next().flatten().unwrap_or(0);
    // Reuse MONIT_DATE's calendar arithmetic through its text form.
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let text = format!(
        "Mon, {day:02} {} {y} {h:02}:{mi:02}:{sec:02}",
        MONTHS.get((m - 1) as usize)?
    );
    statusrelay_core::time::parse_monit_date(&text).map(|ms| ms / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_in_progress_by_status_or_by_time() {
        assert!(schedule_in_progress(&json!({"status": 1})));
        assert!(!schedule_in_progress(
            &json!({"status": 2, "scheduled_at": "2000-01-01 00:00"})
        ));
        assert!(schedule_in_progress(
            &json!({"status": 0, "scheduled_at": "2000-01-01 00:00", "completed_at": null})
        ));
        assert!(!schedule_in_progress(
            &json!({"status": 0, "scheduled_at": "2999-01-01 00:00", "completed_at": null})
        ));
        assert!(!schedule_in_progress(
            &json!({"status": 0, "scheduled_at": "2000-01-01 00:00", "completed_at": "2000-01-01 01:00"})
        ));
        // Pinned: server times are read as UTC.
        assert_eq!(parse_cachet_time("1970-01-02 00:00"), Some(86_400));
        assert_eq!(
            parse_cachet_time("2026-11-22 00:43:17"),
            Some(1_795_308_197)
        );
        assert_eq!(parse_cachet_time("yesterday"), None);
    }

    #[test]
    fn status_codes_follow_the_contract() {
        assert_eq!(status_code(State::Operational), 1);
        assert_eq!(status_code(State::PerformanceIssues), 2);
        assert_eq!(status_code(State::PartialOutage), 3);
        assert_eq!(status_code(State::MajorOutage), 4);
        assert_eq!(status_code(State::Unknown), 0);
        // Pinned assumption: 2.x has no maintenance status.
        assert_eq!(status_code(State::UnderMaintenance), 2);
        for s in State::ALL
            .into_iter()
            .filter(|s| *s != State::UnderMaintenance)
        {
            assert_eq!(state_of(status_code(s).into()), Some(s));
        }
        assert_eq!(state_of(5), None);
    }

    #[test]
    fn error_text_prefers_the_servers_words() {
        let body = r#"{"errors":[{"id":"x","status":400,"title":"Bad Request","detail":"The request cannot be fulfilled due to bad syntax.","meta":{"details":["The status format is invalid."]}}]}"#;
        assert_eq!(
            error_text(body),
            "The request cannot be fulfilled due to bad syntax. The status format is invalid."
        );
        assert_eq!(error_text("<html>oops</html>"), "<html>oops</html>");
        assert_eq!(error_text(""), "(empty body)");
        assert!(error_text(&"x".repeat(10_000)).len() <= 300);
    }

    #[test]
    fn a_private_ca_is_accepted_and_garbage_is_a_clear_error() {
        let pem = include_bytes!("../testdata/test-ca.pem");
        let c = Cachet::new("https://127.0.0.1:9", "t".into(), Duration::from_secs(1));
        assert!(c.with_ca_pem(pem, Duration::from_secs(1)).is_ok());
        let c = Cachet::new("https://127.0.0.1:9", "t".into(), Duration::from_secs(1));
        let e = c
            .with_ca_pem(b"not a pem", Duration::from_secs(1))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("holds no certificate"), "{e}");
    }

    #[test]
    fn plain_http_to_another_host_is_warned_about() {
        assert!(transport_warnings("http://127.0.0.1:8080", None).is_empty());
        assert!(transport_warnings("http://localhost", None).is_empty());
        assert!(transport_warnings("https://status.example.com", None).is_empty());
        let w = transport_warnings("http://status.example.com", None);
        assert!(
            w[0].contains("plain http") && w[0].contains("use https"),
            "{w:?}"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = Cachet::new(
            "http://127.0.0.1:9",
            "s3cret-token".into(),
            Duration::from_secs(1),
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
