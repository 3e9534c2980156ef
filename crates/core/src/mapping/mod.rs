//! From a Monit event string to (test, effect), and from a test to a component state.
//!
//! Invariants:
//! - Monit keeps state per *test*, so an event is classified to a test key, and a recovery only
//!   ever clears failures of its own test (or, for tests Monit never recovers, see
//!   [`TestSpec::one_shot`], any recovery of the same service).
//! - Where the event stem is shared by several tests of one service (resource limits: cpu, memory,
//!   load; connection: several ports), the description's leading words or its `[host]:port` pick
//!   the sub-test, because Monit formats them identically for failure and recovery. When the
//!   description gives nothing usable, the stem alone is the key and a recovery clears every
//!   sub-test of that stem: erring towards a stale failure would pin an outage forever.
//! - Every string in [`EVENT_TABLE`] is documented in README.md (a test holds the two together).
//!
//! The tables themselves (every test family with its default, every event string Monit sends)
//! are data, in `table.rs`; the rules that read them are here.

use std::collections::BTreeMap;

use crate::State;

mod table;
pub use table::{EVENT_TABLE, TESTS, TestSpec};

/// What an event does to its test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The test failed: the component takes the mapped state while it stays failed.
    Fail,
    /// The test recovered: its failure is cleared.
    Recover,
    /// Informational (a change notice, a start/stop program run): recorded, no state change.
    Info,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Fail => "fail",
            Effect::Recover => "recover",
            Effect::Info => "info",
        }
    }
}

/// What the mapping configuration says a failed test means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapped {
    /// The component shows this state while the test is failed.
    State(State),
    /// Failures of this test do not change the component (recorded only).
    Ignore,
}

impl<'de> serde::Deserialize<'de> for Mapped {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Mapped, D::Error> {
        let s = String::deserialize(d)?;
        if s.eq_ignore_ascii_case("ignore") {
            return Ok(Mapped::Ignore);
        }
        s.parse::<State>().map(Mapped::State).map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown mapping {s:?}: expected a state (operational, performance_issues, partial_outage, major_outage, under_maintenance, unknown) or \"ignore\""
            ))
        })
    }
}

/// The family of a test key: the part before `:` (`resource:cpu` is a `resource` test). The
/// one place a key is taken apart.
pub fn family(test: &str) -> &str {
    test.split(':').next().unwrap_or(test)
}

/// A test's key as the spool records it: its family, then, after a `:`, what tells tests of one
/// family apart (`resource:cpu usage`); the family alone for most. It is stored and sent as
/// its text; [`TestKey::family`] is how it is taken apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TestKey(String);

impl TestKey {
    /// The key from its text (`existence`, `resource:cpu usage`).
    pub fn new(key: impl Into<String>) -> TestKey {
        TestKey(key.into())
    }

    /// The test family (the part before `:`).
    pub fn family(&self) -> &str {
        family(&self.0)
    }

    /// The key's text, as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TestKey {
    fn from(key: &str) -> TestKey {
        TestKey::new(key)
    }
}

impl PartialEq<&str> for TestKey {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Look up a test family by key.
pub fn test_spec(key: &str) -> Option<&'static TestSpec> {
    let base = family(key);
    TESTS.iter().find(|t| t.key == base)
}

/// An event classified to a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// `family` or `family:sub-test`.
    pub test: TestKey,
    pub effect: Effect,
    /// `table` or `pairing rule`: how the event was recognised, for the audit trail.
    pub rule: &'static str,
}

impl Classified {
    /// The test family (the part before `:`).
    pub fn family(&self) -> &str {
        self.test.family()
    }
}

const FAIL_SUFFIXES: &[&str] = &[" failed", " error", " exceeded", " matched", " down"];
const RECOVER_SUFFIXES: &[&str] = &[" succeeded", " ok", " up", " recovery"];
const INFO_SUFFIXES: &[&str] = &[" not changed", " changed"];

/// Classify a MONIT_EVENT. Returns None for strings neither in the table nor matched by the
/// pairing rule (the stem stays, the suffix flips).
pub fn classify(event: &str, description: &str) -> Option<Classified> {
    let ev = event.trim();
    let (family, effect, rule) = if let Some((_, fam, eff)) = EVENT_TABLE
        .iter()
        .find(|(e, _, _)| e.eq_ignore_ascii_case(ev))
    {
        (*fam, *eff, "table")
    } else {
        let lower = ev.to_ascii_lowercase();
        let pick = |suffixes: &[&str]| {
            suffixes
                .iter()
                .any(|s| lower.ends_with(s) && lower.len() > s.len())
        };
        let effect = if pick(INFO_SUFFIXES) {
            Effect::Info
        } else if pick(FAIL_SUFFIXES) {
            Effect::Fail
        } else if pick(RECOVER_SUFFIXES) {
            Effect::Recover
        } else {
            return None;
        };
        ("other", effect, "pairing rule")
    };
    let test = match sub_test(family, description) {
        Some(sub) => format!("{family}:{sub}"),
        None if family == "other" => format!("other:{}", stem(ev)),
        None => family.to_string(),
    };
    Some(Classified {
        test: TestKey(test),
        effect,
        rule,
    })
}

/// The event string less its failure/recovery suffix, lowercased: `Foo bar failed` -> `foo bar`.
fn stem(event: &str) -> String {
    let lower = event.trim().to_ascii_lowercase();
    for s in INFO_SUFFIXES
        .iter()
        .chain(FAIL_SUFFIXES)
        .chain(RECOVER_SUFFIXES)
    {
        if let Some(st) = lower.strip_suffix(s) {
            return st.trim().to_string();
        }
    }
    lower
}

/// The sub-test a description names, for families that share one event string across tests.
fn sub_test(family: &str, description: &str) -> Option<String> {
    match family {
        // "cpu usage of 56.6% matches resource limit [...]" / "cpu usage check succeeded [...]"
        // "space usage 70.0% matches ..." / "space usage test succeeded [...]"
        "resource" => {
            // Only Monit's own phrasing is trusted: a sub-test read from free text that is not
            // Monit's would give a failure and its recovery different keys, pinning the outage.
            let monit_shaped = description.contains(" matches resource limit")
                || description.contains(" check succeeded")
                || description.contains(" test succeeded");
            if !monit_shaped {
                return None;
            }
            let words: Vec<&str> = description
                .split_whitespace()
                .take_while(|w| {
                    !matches!(*w, "of" | "check" | "test" | "matches")
                        && !w.starts_with(|c: char| c.is_ascii_digit() || c == '[')
                })
                .collect();
            (!words.is_empty() && words.len() <= 4).then(|| words.join(" ").to_ascii_lowercase())
        }
        // "failed protocol test [HTTP] at [127.0.0.1]:8081/index.html [TCP/IP] -- ..."
        // "connection succeeded to [127.0.0.1]:8081/index.html [TCP/IP]"
        "connection" => description
            .split_whitespace()
            .find(|w| w.starts_with('[') && w.contains("]:"))
            .map(str::to_string),
        _ => None,
    }
}

/// Resolve the state for a failed test: component override, then global override, then default.
pub fn state_for(
    test_family: &str,
    component: &BTreeMap<String, Mapped>,
    global: &BTreeMap<String, Mapped>,
) -> Mapped {
    component
        .get(test_family)
        .or_else(|| global.get(test_family))
        .copied()
        .unwrap_or_else(|| {
            test_spec(test_family)
                .map(|t| t.default)
                .unwrap_or(Mapped::State(State::PartialOutage))
        })
}

/// The documented tables (README.md holds them verbatim; a test keeps the two equal).
pub fn markdown() -> String {
    let mut out = String::from("| test | default while failed | why |\n|---|---|---|\n");
    for t in TESTS {
        let state = match t.default {
            Mapped::State(s) => s.as_str(),
            Mapped::Ignore => "ignore",
        };
        let note = if t.one_shot {
            " (Monit sends no recovery: cleared by any recovery of the same service)"
        } else {
            ""
        };
        out.push_str(&format!("| `{}` | {state} | {}{note} |\n", t.key, t.why));
    }
    out.push_str("\n| MONIT_EVENT | test | effect |\n|---|---|---|\n");
    for (ev, test, effect) in EVENT_TABLE {
        out.push_str(&format!("| `{ev}` | `{test}` | {} |\n", effect.as_str()));
    }
    out
}

/// The per-event reference for docs/monit-mapping.md: every event string, its default state
/// and why (a test keeps the file equal to this).
pub fn markdown_reference() -> String {
    let mut out = String::from(
        "| MONIT_EVENT | test | effect | default state | why |\n|---|---|---|---|---|\n",
    );
    for (ev, test, effect) in EVENT_TABLE {
        let spec = test_spec(test).expect("table names known tests");
        let (state, why) = match effect {
            Effect::Fail => (
                match spec.default {
                    Mapped::State(s) => s.as_str().to_string(),
                    Mapped::Ignore => "no change (ignored)".into(),
                },
                spec.why.to_string(),
            ),
            Effect::Recover => (
                "clears the failure of this test".into(),
                "the test passes again".into(),
            ),
            Effect::Info => ("no change".into(), "a notice, not a failure".into()),
        };
        out.push_str(&format!(
            "| `{ev}` | `{test}` | {} | {state} | {why} |\n",
            effect.as_str()
        ));
    }
    out
}

/// Replace the text between `begin` and `end` markers in a doc file with `want`, or fail.
#[cfg(test)]
fn check_generated(path: &str, begin: &str, end: &str, want: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (Some(b), Some(e)) = (text.find(begin), text.find(end)) else {
        panic!("{path} lacks the generated-table markers");
    };
    if &text[b + begin.len()..e] != want {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(path, format!("{}{begin}{want}{}", &text[..b], &text[e..])).unwrap();
        } else {
            panic!(
                "{path}'s generated table is out of date: run `UPDATE_DOCS=1 cargo test -p statusrelay-core`"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Mapped::{Ignore, State as S};
    use State::{MajorOutage, PartialOutage};

    const BEGIN: &str =
        "<!-- mapping-table:begin (generated by statusrelay_core::mapping::markdown) -->\n";
    const END: &str = "<!-- mapping-table:end -->";

    #[test]
    fn readme_documents_the_mapping_table_verbatim() {
        check_generated(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"),
            BEGIN,
            END,
            &markdown(),
        );
    }

    #[test]
    fn the_mapping_reference_documents_every_event() {
        let begin = "<!-- mapping-reference:begin (generated by statusrelay_core::mapping::markdown_reference) -->\n";
        let end = "<!-- mapping-reference:end -->";
        check_generated(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/monit-mapping.md"),
            begin,
            end,
            &markdown_reference(),
        );
    }

    #[test]
    fn table_entries_name_known_tests() {
        for (ev, fam, _) in EVENT_TABLE {
            assert!(test_spec(fam).is_some(), "{ev} names unknown test {fam}");
        }
    }

    #[test]
    fn resource_sub_tests_pair_failure_with_recovery() {
        let pairs = [
            (
                "cpu usage of 56.6% matches resource limit [cpu usage > 40.0%]",
                "cpu usage check succeeded [current cpu usage = 1.5%]",
            ),
            (
                "mem usage of 12.6% matches resource limit [mem usage > 12.0%]",
                "mem usage check succeeded [current mem usage = 7.7%]",
            ),
            (
                "space usage 70.0% matches resource limit [space usage > 50.0%]",
                "space usage test succeeded [current space usage = 0.0%]",
            ),
            (
                "loadavg (1min) of 2.2 matches resource limit [loadavg (1min) > 2.2]",
                "loadavg (1min) check succeeded [current loadavg (1min) = 2.2]",
            ),
        ];
        let mut seen = std::collections::HashSet::new();
        for (fail, ok) in pairs {
            let f = classify("Resource limit matched", fail).unwrap();
            let r = classify("Resource limit succeeded", ok).unwrap();
            assert_eq!(f.effect, Effect::Fail);
            assert_eq!(r.effect, Effect::Recover);
            assert_eq!(f.test, r.test, "{fail} vs {ok}");
            assert!(
                seen.insert(f.test.clone()),
                "sub-tests must differ: {}",
                f.test
            );
        }
    }

    #[test]
    fn descriptions_not_in_monits_shape_fall_back_to_the_family() {
        // Otherwise "x matched" and "x succeeded" would become two different sub-tests.
        let f = classify("Resource limit matched", "Resource limit matched (test)").unwrap();
        let r = classify(
            "Resource limit succeeded",
            "Resource limit succeeded (test)",
        )
        .unwrap();
        assert_eq!((f.test.as_str(), r.test.as_str()), ("resource", "resource"));
        assert_eq!(
            classify("Resource limit matched", "").unwrap().test,
            "resource"
        );
    }

    #[test]
    fn connection_sub_tests_are_per_address() {
        let a = classify(
            "Connection failed",
            "failed protocol test [HTTP] at [127.0.0.1]:8081 [TCP/IP] -- Connection refused",
        )
        .unwrap();
        let b = classify("Connection failed", "failed protocol test [HTTP] at [127.0.0.1]:8081/index.html [TCP/IP] -- Connection refused").unwrap();
        let a_ok = classify(
            "Connection succeeded",
            "connection succeeded to [127.0.0.1]:8081 [TCP/IP]",
        )
        .unwrap();
        assert_ne!(a.test, b.test);
        assert_eq!(a.test, a_ok.test);
        let bare = classify("Connection failed", "(null)").unwrap();
        assert_eq!(bare.test, "connection");
    }

    #[test]
    fn pairing_rule_covers_unlisted_strings_and_rejects_noise() {
        let c = classify("Frobnication failed", "").unwrap();
        assert_eq!(
            (c.test.as_str(), c.effect, c.rule),
            ("other:frobnication", Effect::Fail, "pairing rule")
        );
        let r = classify("Frobnication succeeded", "").unwrap();
        assert_eq!(r.test, c.test);
        assert_eq!(
            classify("Frobnication not changed", "").unwrap().effect,
            Effect::Info
        );
        assert!(classify("hello world", "").is_none());
        assert!(classify("", "").is_none());
        assert!(classify(" failed", "").is_none());
    }

    #[test]
    fn overrides_take_precedence() {
        let mut comp = BTreeMap::new();
        let mut global = BTreeMap::new();
        assert_eq!(state_for("connection", &comp, &global), S(MajorOutage));
        global.insert("connection".to_string(), S(PartialOutage));
        assert_eq!(state_for("connection", &comp, &global), S(PartialOutage));
        comp.insert("connection".to_string(), Ignore);
        assert_eq!(state_for("connection", &comp, &global), Ignore);
    }

    #[test]
    fn a_test_key_owns_its_family_and_travels_as_its_text() {
        let k = TestKey::new("resource:cpu usage");
        assert_eq!(k.family(), "resource");
        assert_eq!(TestKey::from("existence").family(), "existence");
        assert_eq!(k.to_string(), "resource:cpu usage");
        // On the wire (the relay format) and in the spool it is its text, unchanged.
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"resource:cpu usage\"");
        let back: TestKey = serde_json::from_str("\"connection\"").unwrap();
        assert!(back == "connection");
    }
}
