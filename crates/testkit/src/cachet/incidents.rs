//! The fake Cachet's incidents (and, on 2.4, their updates), as strict as its components:
//! a field of the wrong type, a missing token or an unknown incident is refused with the
//! real server's error, and every incident PUT is recorded.

use serde_json::{Value, json};

use super::{
    CachetApi, Call, FakeIncident, as_bool, as_int, bad_request, error_body, list_json, not_found,
    parse_body, unauthorized,
};

fn incident_json(i: &FakeIncident) -> Value {
    json!({
        "id": i.id, "name": i.name, "message": i.message, "status": i.status, "component_id": i.component_id.unwrap_or(0),
        "visible": i.visible as i64, "stickied": i.stickied, "created_at": "2026-11-22 00:00:00",
        "updated_at": "2026-11-22 00:00:00", "deleted_at": null, "human_status": ""
    })
}

impl CachetApi {
    /// `/incidents` and, on 2.4, their updates.
    pub(super) fn incidents(&mut self, call: &Call<'_>) -> (u16, String) {
        let s = self;
        match (call.method, call.rest) {
            ("GET", "/incidents") => {
                let has_filter = call
                    .params
                    .iter()
                    .any(|(k, _)| matches!(k.as_str(), "component_id" | "name" | "status" | "id"));
                // Pinned assumption, as for components: a filter combined with `page` fails.
                if has_filter && call.params.iter().any(|(k, _)| k == "page") {
                    return (
                        500,
                        error_body(500, "Internal Server Error", "filter with page", &[]),
                    );
                }
                let get = |k: &str| {
                    call.params
                        .iter()
                        .find(|(pk, _)| pk == k)
                        .map(|(_, v)| v.clone())
                };
                let mut list: Vec<&FakeIncident> = s
                    .incidents
                    .iter()
                    .filter(|i| call.token_ok || i.visible)
                    .filter(|i| {
                        get("component_id")
                            .is_none_or(|v| i.component_id.map(|c| c.to_string()) == Some(v))
                    })
                    .filter(|i| get("name").is_none_or(|v| i.name == v))
                    .filter(|i| get("status").is_none_or(|v| i.status.to_string() == v))
                    .collect();
                if get("sort").as_deref() == Some("id") && get("order").as_deref() == Some("desc") {
                    list.reverse();
                }
                (
                    200,
                    list_json(list.into_iter().map(incident_json).collect()),
                )
            }
            ("GET", p) if p.starts_with("/incidents/") && !p.contains("/updates") => {
                let id = p.trim_start_matches("/incidents/").parse::<u64>().ok();
                match s.incidents.iter().find(|i| Some(i.id) == id) {
                    Some(i) => (200, json!({"data": incident_json(i)}).to_string()),
                    None => not_found(),
                }
            }
            ("POST", "/incidents") => {
                if !call.token_ok {
                    return unauthorized();
                }
                let Some(f) = parse_body(call.body, call.content_type) else {
                    return bad_request("The body is not valid JSON.");
                };
                let is_23 = s.version.starts_with("2.3");
                let name = f
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if name.is_empty() {
                    return bad_request("The name field is required.");
                }
                let status = match f.get("status").and_then(as_int) {
                    Some(v) if (if is_23 { 0..=4 } else { 1..=4 }).contains(&v) => v,
                    Some(_) => return bad_request("The status format is invalid."),
                    None => return bad_request("The status field is required."),
                };
                let comp = f.get("component_id").and_then(as_int).filter(|c| *c != 0);
                let comp_status = f.get("component_status").and_then(as_int);
                match (comp, comp_status) {
                    (Some(_), None) => {
                        return bad_request(
                            "The component status field is required when component id is present.",
                        );
                    }
                    (None, Some(_)) => {
                        return bad_request(
                            "The component id field is required when component status is present.",
                        );
                    }
                    (_, Some(cs)) if !(0..=4).contains(&cs) => {
                        return bad_request("The component status format is invalid.");
                    }
                    _ => {}
                }
                for k in ["visible", "stickied", "notify"] {
                    if f.get(k).is_some_and(|v| as_bool(v).is_none()) {
                        return bad_request(&format!("The {k} field must be true or false."));
                    }
                }
                if let (Some(c), Some(cs)) = (comp, comp_status) {
                    match s.components.iter_mut().find(|x| x.id as i64 == c) {
                        Some(x) => x.status = cs,
                        None => return bad_request("The selected component id is invalid."),
                    }
                    s.puts.push((c as u64, cs));
                }
                let id = s.incidents.iter().map(|i| i.id).max().unwrap_or(0) + 1;
                let inc = FakeIncident {
                    id,
                    name,
                    message: f
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    status,
                    component_id: comp.map(|c| c as u64),
                    visible: f.get("visible").and_then(as_bool).unwrap_or(true),
                    stickied: f.get("stickied").and_then(as_bool).unwrap_or(false),
                };
                s.incidents.push(inc.clone());
                (200, json!({"data": incident_json(&inc)}).to_string())
            }
            ("POST", p) if p.starts_with("/incidents/") && p.ends_with("/updates") => {
                if s.version.starts_with("2.3") {
                    return not_found();
                }
                if !call.token_ok {
                    return unauthorized();
                }
                let id = p
                    .trim_start_matches("/incidents/")
                    .trim_end_matches("/updates")
                    .parse::<u64>()
                    .ok();
                let Some(idx) = s.incidents.iter().position(|i| Some(i.id) == id) else {
                    return not_found();
                };
                let Some(f) = parse_body(call.body, call.content_type) else {
                    return bad_request("The body is not valid JSON.");
                };
                let status = match f.get("status").and_then(as_int) {
                    Some(v) if (1..=4).contains(&v) => v,
                    _ => return bad_request("The status format is invalid."),
                };
                let message = f
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                if message.is_empty() {
                    return bad_request("The message field is required.");
                }
                // Sets the parent incident's status; component fields are NOT applied (spec §1).
                s.incidents[idx].status = status;
                let iid = s.incidents[idx].id;
                s.updates.push((iid, status, message.clone()));
                (200, json!({"data": {"id": s.updates.len(), "incident_id": iid, "status": status, "message": message}}).to_string())
            }
            ("PUT", p) if p.starts_with("/incidents/") => {
                if !call.token_ok {
                    return unauthorized();
                }
                let id = p.trim_start_matches("/incidents/").parse::<u64>().ok();
                let Some(idx) = s.incidents.iter().position(|i| Some(i.id) == id) else {
                    return not_found();
                };
                let Some(f) = parse_body(call.body, call.content_type) else {
                    return bad_request("The body is not valid JSON.");
                };
                if ["visible", "stickied", "notify"]
                    .iter()
                    .any(|k| f.get(*k).is_none())
                {
                    s.lax_incident_puts += 1;
                }
                let is_23 = s.version.starts_with("2.3");
                let mut inc = s.incidents[idx].clone();
                if let Some(st) = f.get("status") {
                    match as_int(st) {
                        Some(v) if (if is_23 { 0..=4 } else { 1..=4 }).contains(&v) => {
                            inc.status = v
                        }
                        _ => return bad_request("The status format is invalid."),
                    }
                }
                if let Some(m) = f.get("message").and_then(Value::as_str) {
                    inc.message = m.to_string();
                }
                // Omitted flags are reset, as Cachet does.
                inc.visible = f.get("visible").and_then(as_bool).unwrap_or(true);
                inc.stickied = f.get("stickied").and_then(as_bool).unwrap_or(false);
                if let (Some(c), Some(cs)) = (
                    f.get("component_id").and_then(as_int),
                    f.get("component_status").and_then(as_int),
                ) && let Some(x) = s.components.iter_mut().find(|x| x.id as i64 == c)
                {
                    x.status = cs;
                    s.puts.push((c as u64, cs));
                }
                s.incidents[idx] = inc.clone();
                (200, json!({"data": incident_json(&inc)}).to_string())
            }
            _ => not_found(),
        }
    }
}
