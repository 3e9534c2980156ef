//! Cachet 2.x (`/api/v1`), per the contract in docs/status-page-apis.md (Cachet 2.x).
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

use statusrelay_core::config::CachetVersion;

use crate::http::{Api, OverHttp, write_proof};
use crate::{
    Backend, BackendError, CheckLine, ComponentRef, PageIncident, PageMaintenance, ReadBack,
    component_keys, text, unique_id,
};

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
    api: Api,
    /// Some(true) for 2.3 (no incident updates, no schedules), Some(false) for 2.4; None: ask.
    is_23: Option<bool>,
}

/// Cachet incident statuses.
const INVESTIGATING: u8 = 1;
const FIXED: u8 = 4;

impl std::fmt::Debug for Cachet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cachet").field("api", &self.api).finish()
    }
}

impl Cachet {
    /// `url` is the installation's base URL (without `/api/v1`).
    pub fn new(url: &str, token: String, timeout: Duration) -> Cachet {
        let base = url.trim_end_matches('/').to_string();
        Cachet {
            api: Api::new(
                &format!("{base}/api/v1"),
                vec![("X-Cachet-Token", token)],
                timeout,
            ),
            base,
            is_23: None,
        }
    }

    /// Pin the API version; `Auto` asks `/api/v1/version` on first need.
    pub fn with_version(mut self, version: CachetVersion) -> Cachet {
        self.is_23 = match version {
            CachetVersion::V2_3 => Some(true),
            CachetVersion::V2_4 => Some(false),
            CachetVersion::Auto => None,
        };
        self
    }

    /// Is this Cachet 2.3 (incidents are PUT, no updates, no schedules)?
    pub fn is_23(&mut self) -> Result<bool, BackendError> {
        if let Some(v) = self.is_23 {
            return Ok(v);
        }
        let v = self.api.call("GET", "/version", &[], None)?;
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
        self.api
            .call("PUT", &format!("/incidents/{incident}"), &[], Some(body))
            .map(|_| ())
    }

    /// POST an incident update (2.4). A 404 means the incident is gone, unless the incident is
    /// still there: then this server has no updates endpoint (a 2.3 pinned as 2.4), which must
    /// fail loudly rather than pass for a deleted incident.
    fn post_update(&self, incident: &str, status: u8, message: &str) -> Result<(), BackendError> {
        let body = json!({ "status": status, "message": message });
        match self.api.call(
            "POST",
            &format!("/incidents/{incident}/updates"),
            &[],
            Some(body),
        ) {
            Err(e) if e.is_not_found() => {
                match self
                    .api
                    .call("GET", &format!("/incidents/{incident}"), &[], None)
                {
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
        let v = self
            .api
            .call("GET", &format!("/components/{id}"), &[], None)?;
        v.pointer("/data/status")
            .and_then(Value::as_i64)
            .ok_or_else(|| BackendError::Protocol(format!("GET /components/{id}: no data.status")))
    }
}

impl OverHttp for Cachet {
    fn api_mut(&mut self) -> &mut Api {
        &mut self.api
    }
}

impl Backend for Cachet {
    fn identity(&self) -> String {
        format!("cachet {}", self.base)
    }

    fn resolve(&mut self, component: &ComponentRef) -> Result<String, BackendError> {
        if let Some(id) = &component.id {
            return Ok(id.clone());
        }
        let v = self.api.call(
            "GET",
            "/components",
            &[("name", component.name.as_str())],
            None,
        )?;
        let list = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| BackendError::Protocol("GET /components: no data array".into()))?;
        let ids = list
            .iter()
            .filter(|c| c.get("name").and_then(Value::as_str) == Some(component.name.as_str()))
            .filter_map(|c| c.get("id").and_then(Value::as_i64))
            .map(|id| id.to_string())
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

    fn read_back(&mut self, remote_id: &str, state: State) -> Result<ReadBack, BackendError> {
        let code = self.current_status(remote_id)?;
        Ok(if code == i64::from(status_code(state)) {
            ReadBack::Shows
        } else {
            ReadBack::Differs(
                state_of(code).map_or_else(|| format!("status {code}"), |s| s.to_string()),
            )
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
        let body = json!({
            "name": name, "message": message, "status": INVESTIGATING, "visible": 1, "stickied": 0,
            "notify": notify, "component_id": remote_id, "component_status": status_code(state),
        });
        let v = self.api.call("POST", "/incidents", &[], Some(body))?;
        v.pointer("/data/id")
            .and_then(Value::as_i64)
            .map(|id| id.to_string())
            .ok_or_else(|| {
                BackendError::Protocol("POST /incidents: no data.id in the answer".into())
            })
    }

    fn open_incidents(&mut self, remote_id: &str) -> Result<Vec<PageIncident>, BackendError> {
        // A filter without `page`, as for components; newest first.
        let v = self.api.call(
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
                    text: text(i, "message"),
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
            let v = self.api.call(
                "GET",
                "/schedules",
                &[("per_page", "100"), ("page", &p)],
                None,
            )?;
            let list = v
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| BackendError::Protocol("GET /schedules: no data array".into()))?;
            out.extend(
                list.iter()
                    .filter(|s| schedule_in_progress(s))
                    .map(|s| PageMaintenance {
                        name: text(s, "name"),
                        message: text(s, "message"),
                        components: component_keys(s.get("components")),
                    }),
            );
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
        match self.api.call("GET", "/ping", &[], None) {
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
                line(false, crate::probe_failure(&self.base, &e));
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
        out.push(write_proof(&self.api, "PUT", first_id));
        out
    }
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
    fn debug_never_shows_the_token() {
        let c = Cachet::new(
            "http://127.0.0.1:9",
            "s3cret-token".into(),
            Duration::from_secs(1),
        );
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
