//! The text of an exchange with a page: the encodings a request needs (base64, percent), the
//! server's own words from an error body, its Retry-After, and every form of a credential
//! redacted from anything shown.
//!
//! Invariant: nothing here touches the network; `http` sends, this reads and writes words.

use std::time::Duration;

use serde_json::Value;

/// `text` with every form of the credentials in `auth` replaced by `<redacted>`: the header
/// value as sent, each word of it (`OAuth KEY`, `Bearer KEY`), percent-encoded, and base64 (as
/// a Basic header carries it).
pub fn redact(text: &str, auth: &[(&'static str, String)]) -> String {
    let mut forms: Vec<String> = Vec::new();
    for (_, value) in auth {
        let mut words: Vec<&str> = value.split_whitespace().filter(|w| w.len() >= 6).collect();
        words.push(value);
        for w in words {
            forms.push(w.to_string());
            forms.push(percent_encode(w));
            forms.push(base64(w.as_bytes()));
        }
    }
    // Longest first, so a value is not half-replaced by one of its own words.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    let mut out = text.to_string();
    for f in forms.iter().filter(|f| f.len() >= 6) {
        if out.contains(f.as_str()) {
            out = out.replace(f.as_str(), "<redacted>");
        }
    }
    out
}

pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648): a Basic header, and a credential's echo to redact.
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The inverse of [`base64`] (padding optional); None for anything that is not base64.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= val(*b)? << (18 - 6 * i);
        }
        let take = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    Some(out)
}

fn first_str(v: &Value, ptrs: &[&str]) -> Option<String> {
    ptrs.iter()
        .find_map(|p| v.pointer(p).and_then(Value::as_str).map(str::to_string))
}

/// The server's own words from an error body, shortened for logs and dead letters. Knows the
/// shapes of every supported API: Cachet 2 (`errors[0].detail` + `meta.details`), Cachet 3 /
/// Laravel (`message` + `errors.{field}[]`), Statuspage (`message` or `error`), status.io
/// (`status.message`).
pub fn error_text(body: &str) -> String {
    let text = match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let mut parts = Vec::new();
            if let Some(t) = first_str(
                &v,
                &[
                    "/errors/0/detail",
                    "/errors/0/title",
                    "/message",
                    "/error",
                    "/status/message",
                ],
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
            if let Some(fields) = v.get("errors").and_then(Value::as_object) {
                for (field, msgs) in fields {
                    for m in msgs
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        parts.push(format!("{field}: {m}"));
                    }
                }
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

pub(crate) fn parse_retry_after(v: Option<&str>) -> Option<Duration> {
    v.and_then(|s| s.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(3600)))
}
