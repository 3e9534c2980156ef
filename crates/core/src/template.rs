//! `{name}` templates for incident names and messages.
//!
//! Invariant: a template is checked when the config loads, so an unknown variable is a config
//! error naming it, never a literal `{typo}` on a public status page.

use std::collections::BTreeMap;

/// The variables a template may use.
pub const VARIABLES: &[&str] = &[
    "component",
    "state",
    "state_label",
    "service",
    "host",
    "description",
    "time",
    "duration",
];

/// Check that every `{...}` names a known variable and braces balance.
pub fn validate(t: &str) -> Result<(), String> {
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed {{ in {t:?}"))?;
        let name = &after[..close];
        if !VARIABLES.contains(&name) {
            return Err(format!(
                "unknown variable {{{name}}} in {t:?}: use {}",
                VARIABLES
                    .iter()
                    .map(|v| format!("{{{v}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("stray }} in {t:?}"));
    }
    Ok(())
}

/// Fill a validated template. Unknown or missing variables render as empty text.
pub fn render(t: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(t.len() + 32);
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                out.push_str(vars.get(&after[..close]).map(String::as_str).unwrap_or(""));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_variables_and_rejects_unknown_ones() {
        let vars = BTreeMap::from([
            ("component", "db".to_string()),
            ("state_label", "Major outage".to_string()),
        ]);
        assert_eq!(
            render("{component}: {state_label}", &vars),
            "db: Major outage"
        );
        assert_eq!(render("{host}!", &vars), "!");
        assert!(validate("{component} is {state}").is_ok());
        assert!(
            validate("{compnent}")
                .unwrap_err()
                .contains("unknown variable {compnent}")
        );
        assert!(validate("{component").is_err());
        assert!(validate("a } b").is_err());
    }
}
