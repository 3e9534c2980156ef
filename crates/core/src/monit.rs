//! Reading an event from Monit's exec environment.
//!
//! Invariants: the raw event is captured from *every* MONIT_* variable before anything is
//! validated, so an event the handler cannot map is still recorded for `replay`. Text is
//! converted lossily (a description is program output and may be any bytes); the loss is noted.
//! Descriptions are capped at [`MAX_DESCRIPTION`] bytes so a runaway program cannot bloat the
//! spool or the page; the cut is noted in the text itself.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::CoreError;

/// Longest description kept, in bytes. Status pages show a line or two; 16 KiB keeps every
/// stack trace we have seen while bounding a runaway program's output.
pub const MAX_DESCRIPTION: usize = 16 * 1024;

/// Everything Monit passed, as text, plus what was wrong with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RawEvent {
    /// All MONIT_* variables (lossy UTF-8, description capped).
    pub env: BTreeMap<String, String>,
    /// Variables whose bytes were not valid UTF-8.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invalid_utf8: Vec<String>,
    /// Original byte length of a description that was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_from: Option<usize>,
}

/// A validated Monit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitEvent {
    pub service: String,
    pub event: String,
    pub description: String,
    /// MONIT_HOST: the name of Monit's `check system` service (not necessarily the hostname).
    pub host: Option<String>,
    /// MONIT_DATE verbatim (Monit's local time, no zone).
    pub date: Option<String>,
}

fn cap(mut s: String) -> (String, Option<usize>) {
    if s.len() <= MAX_DESCRIPTION {
        return (s, None);
    }
    let orig = s.len();
    let mut cut = MAX_DESCRIPTION;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(&format!(
        "\n[statusrelay: description cut from {orig} bytes]"
    ));
    (s, Some(orig))
}

impl RawEvent {
    /// Capture MONIT_* variables from an environment iterator (pass `std::env::vars_os()`).
    pub fn from_env<I: IntoIterator<Item = (OsString, OsString)>>(vars: I) -> RawEvent {
        let mut raw = RawEvent::default();
        for (k, v) in vars {
            let key = k.to_string_lossy().into_owned();
            if !key.starts_with("MONIT_") {
                continue;
            }
            let mut val = match v.into_string() {
                Ok(s) => s,
                Err(os) => {
                    raw.invalid_utf8.push(key.clone());
                    os.to_string_lossy().into_owned()
                }
            };
            if key == "MONIT_DESCRIPTION" {
                let (s, t) = cap(val);
                val = s;
                raw.truncated_from = t;
            } else if val.len() > MAX_DESCRIPTION {
                val = cap(val).0;
            }
            raw.env.insert(key, val);
        }
        raw
    }

    /// Bytes of the captured variables, names and values: what recording the event costs.
    pub fn bytes(&self) -> usize {
        self.env.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.env
            .get(key)
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
    }

    /// Validate into a [`MonitEvent`]. Service and event must be present and valid UTF-8; a
    /// lossy description is accepted (it is free text).
    pub fn validate(&self) -> Result<MonitEvent, CoreError> {
        if self.env.is_empty() {
            return Err(CoreError::NotFromMonit);
        }
        for key in ["MONIT_SERVICE", "MONIT_EVENT"] {
            if self.invalid_utf8.iter().any(|k| k == key) {
                return Err(CoreError::InvalidUtf8(key.to_string()));
            }
        }
        let service = self
            .get("MONIT_SERVICE")
            .ok_or(CoreError::MissingVar("MONIT_SERVICE"))?;
        let event = self
            .get("MONIT_EVENT")
            .ok_or(CoreError::MissingVar("MONIT_EVENT"))?;
        Ok(MonitEvent {
            service: service.trim().to_string(),
            event: event.trim().to_string(),
            description: self
                .env
                .get("MONIT_DESCRIPTION")
                .cloned()
                .unwrap_or_default(),
            host: self.get("MONIT_HOST").map(str::to_string),
            date: self.get("MONIT_DATE").map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn keeps_only_monit_vars() {
        let raw = RawEvent::from_env(env(&[
            ("PATH", "/bin"),
            ("MONIT_SERVICE", "web"),
            ("MONIT_EVENT", "Exists"),
        ]));
        assert_eq!(raw.env.len(), 2);
        let ev = raw.validate().unwrap();
        assert_eq!((ev.service.as_str(), ev.event.as_str()), ("web", "Exists"));
    }

    #[test]
    fn missing_service_is_named() {
        let raw = RawEvent::from_env(env(&[("MONIT_EVENT", "Exists")]));
        assert!(matches!(
            raw.validate(),
            Err(CoreError::MissingVar("MONIT_SERVICE"))
        ));
        assert!(matches!(
            RawEvent::from_env(env(&[])).validate(),
            Err(CoreError::NotFromMonit)
        ));
    }

    #[test]
    fn invalid_utf8_in_service_is_rejected_but_description_is_kept() {
        let mut vars = env(&[("MONIT_EVENT", "Exists")]);
        vars.push((
            OsString::from("MONIT_DESCRIPTION"),
            OsString::from_vec(vec![b'o', b'k', 0xff]),
        ));
        let raw = RawEvent::from_env(vars.clone());
        assert_eq!(raw.invalid_utf8, vec!["MONIT_DESCRIPTION".to_string()]);
        vars.push((
            OsString::from("MONIT_SERVICE"),
            OsString::from_vec(vec![0xc3, 0x28]),
        ));
        let raw = RawEvent::from_env(vars);
        assert!(matches!(raw.validate(), Err(CoreError::InvalidUtf8(k)) if k == "MONIT_SERVICE"));
        assert!(raw.env["MONIT_DESCRIPTION"].starts_with("ok"));
    }

    #[test]
    fn huge_description_is_cut_on_a_char_boundary_and_noted() {
        let big = "é".repeat(600_000);
        let raw = RawEvent::from_env(env(&[
            ("MONIT_SERVICE", "w"),
            ("MONIT_EVENT", "Exists"),
            ("MONIT_DESCRIPTION", &big),
        ]));
        assert_eq!(raw.truncated_from, Some(1_200_000));
        let d = &raw.env["MONIT_DESCRIPTION"];
        assert!(d.len() < MAX_DESCRIPTION + 100);
        assert!(d.ends_with("[statusrelay: description cut from 1200000 bytes]"));
    }
}
