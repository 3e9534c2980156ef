//! What a public page says about a component: the failing tests' own words.
//!
//! Invariants:
//! - A page speaks the operator's words only: Monit's descriptions ("process is not running"),
//!   the operator's messages, Monit's own event names where a failure came without words
//!   ("Connection failed"), and the service names of the monitrc. Nothing statusrelay made up
//!   about its own workings ("reports 1 failing test(s)") ever reaches it.
//! - Node names appear only where the operator asked for them (`[backend] show_nodes`).
//! - The text is one line, bounded: at most [`MAX_CLAUSES`] clauses, each at most
//!   [`MAX_SAID`] characters; what is left out is counted ("and 3 more").

use crate::State;
use crate::mapping::{EVENT_TABLE, Effect, family};
use crate::nodes::StalePolicy;

/// The longest description kept, in characters (the rest is cut, marked with "…").
pub const MAX_SAID: usize = 300;

/// The most clauses (a service and what is wrong with it) one text names.
pub const MAX_CLAUSES: usize = 4;

/// Words as a page may show them: the first non-empty line, without control characters,
/// at most [`MAX_SAID`] characters. `None` when nothing is left.
pub fn said(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let clean: String = line.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    if clean.is_empty() {
        return None;
    }
    let mut out: String = clean.chars().take(MAX_SAID).collect();
    if clean.chars().count() > MAX_SAID {
        out.push('…');
    }
    Some(out)
}

/// Monit's own name for a failure of `test` (`connection` -> "Connection failed"), for a
/// failure that came without a description (first seen in a status document).
pub fn failure_name(test: &str) -> String {
    monit_name(test, Effect::Fail).unwrap_or_else(|| format!("{} failed", family(test)))
}

/// Monit's own name for a recovery of `test` (`connection` -> "Connection succeeded").
pub fn recovery_name(test: &str) -> String {
    monit_name(test, Effect::Recover).unwrap_or_else(|| format!("{} succeeded", family(test)))
}

fn monit_name(test: &str, effect: Effect) -> Option<String> {
    EVENT_TABLE
        .iter()
        .find(|(_, f, e)| *f == family(test) && *e == effect)
        .map(|(name, _, _)| name.to_string())
}

/// One failing test, as the words are made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failing<'a> {
    /// The monitrc's service name; ignored for a local source.
    pub service: &'a str,
    /// The node it fails on, or a local source (maintenance, an operator's event).
    pub host: &'a str,
    /// A local source: its words stand alone, with no service and no node.
    pub local: bool,
    pub test: &'a str,
    pub state: State,
    pub description: Option<&'a str>,
}

/// What an aggregator's page says of a component in `state`: the words of the failing tests
/// that make that state (of the nodes still heard, and of local sources), and the silent
/// nodes where their silence counts (their stale policy, or nobody left to hear). A state no
/// single test makes (a counting rule) is explained by every failing test heard. `nodes` are
/// the component's nodes with whether each is stale. `None` for `operational`.
pub fn for_page(
    state: State,
    failing: &[Failing<'_>],
    nodes: &[(&str, bool)],
    stale: StalePolicy,
    show_nodes: bool,
) -> Option<String> {
    if state == State::Operational {
        return None;
    }
    let silent: Vec<&str> = nodes.iter().filter(|n| n.1).map(|n| n.0).collect();
    let live = nodes.iter().any(|n| !n.1);
    let quiet: std::collections::HashSet<&str> = silent.iter().copied().collect();
    let heard: Vec<Failing<'_>> = failing
        .iter()
        .filter(|f| f.local || !quiet.contains(f.host))
        .copied()
        .collect();
    let mut why: Vec<Failing<'_>> = heard.iter().filter(|f| f.state == state).copied().collect();
    if why.is_empty() {
        why = heard;
    }
    // Maintenance speaks for itself; otherwise silence is said where it weighs on the state.
    let silence_counts = state != State::UnderMaintenance && (stale.state().is_some() || !live);
    fleet(&why, if silence_counts { &silent } else { &[] }, show_nodes)
}

/// The public text for a component of an aggregator: one clause per service and what is
/// wrong with it, the nodes it is wrong on where `show_nodes`, and a clause for the nodes
/// that went silent. `None` when there is nothing to say (every test passes).
///
/// `mysql: process is not running; nginx: Connection failed`, or with nodes
/// `mysql on db1, db2: process is not running; no recent report from db3`.
pub fn fleet(failing: &[Failing<'_>], silent: &[&str], show_nodes: bool) -> Option<String> {
    // (service, words) -> nodes, in the order first met; local sources have no service.
    let mut clauses: Vec<(Option<&str>, String, Vec<&str>)> = Vec::new();
    for f in failing {
        let words = f
            .description
            .and_then(said)
            .unwrap_or_else(|| failure_name(f.test));
        let service = (!f.local).then_some(f.service);
        match clauses
            .iter_mut()
            .find(|(s, w, _)| *s == service && *w == words)
        {
            // Deduplicated once, below: a thousand nodes failing alike stay linear.
            Some((_, _, hosts)) => {
                if !f.local {
                    hosts.push(f.host)
                }
            }
            None => clauses.push((service, words, if f.local { vec![] } else { vec![f.host] })),
        }
    }
    // Services in name order, a service's words in the order met: the same failures give
    // the same text whatever order the nodes reported in.
    clauses.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<String> = clauses
        .iter()
        .map(|(service, words, hosts)| match service {
            None => words.clone(),
            Some(s) if show_nodes && !hosts.is_empty() => {
                let mut hosts = hosts.clone();
                hosts.sort_unstable();
                hosts.dedup();
                format!("{s} on {}: {words}", hosts.join(", "))
            }
            Some(s) => format!("{s}: {words}"),
        })
        .collect();
    if !silent.is_empty() {
        out.push(if show_nodes {
            let mut nodes = silent.to_vec();
            nodes.sort_unstable();
            format!("no recent report from {}", nodes.join(", "))
        } else {
            "no recent report from the monitoring".to_string()
        });
    }
    if out.is_empty() {
        return None;
    }
    let more = out.len().saturating_sub(MAX_CLAUSES);
    out.truncate(MAX_CLAUSES);
    let mut text = out.join("; ");
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f<'a>(service: &'a str, host: &'a str, d: Option<&'a str>) -> Failing<'a> {
        Failing {
            service,
            host,
            local: false,
            test: "existence",
            state: State::MajorOutage,
            description: d,
        }
    }

    #[test]
    fn the_page_says_what_makes_its_state() {
        let partial = Failing {
            state: State::PartialOutage,
            test: "connection",
            ..f("nginx", "web1", None)
        };
        let failing = [
            f("mysql", "db1", Some("process is not running")),
            f("mysql", "db3", Some("said by a silent node")),
            partial,
        ];
        let nodes = [("db1", false), ("db3", true), ("web1", false)];
        let page = |state, stale| for_page(state, &failing, &nodes, stale, false);
        // The major outage is mysql's; the silent node's old words are not repeated.
        assert_eq!(
            page(State::MajorOutage, StalePolicy::Unknown).as_deref(),
            Some("mysql: process is not running; no recent report from the monitoring")
        );
        // Silence left out by the policy is not said while someone is heard.
        assert_eq!(
            page(State::MajorOutage, StalePolicy::Ignore).as_deref(),
            Some("mysql: process is not running")
        );
        // A state no test makes (a counting rule): every failing test heard.
        assert_eq!(
            page(State::PerformanceIssues, StalePolicy::Ignore).as_deref(),
            Some("mysql: process is not running; nginx: Connection failed")
        );
        assert_eq!(page(State::Operational, StalePolicy::Unknown), None);
        // Nobody heard: silence is said whatever the policy.
        let all_silent = [("db1", true), ("db3", true), ("web1", true)];
        assert_eq!(
            for_page(
                State::Unknown,
                &failing,
                &all_silent,
                StalePolicy::Ignore,
                true
            )
            .as_deref(),
            Some("no recent report from db1, db3, web1")
        );
    }

    #[test]
    fn monit_words_grouped_by_service_without_nodes() {
        let t = fleet(
            &[
                f("mysql", "db2", Some("process is not running")),
                f("mysql", "db1", Some("process is not running")),
                f("nginx", "web1", None),
            ],
            &[],
            false,
        );
        assert_eq!(
            t.as_deref(),
            Some("mysql: process is not running; nginx: Does not exist")
        );
    }

    #[test]
    fn nodes_only_where_asked() {
        let t = fleet(
            &[
                f("mysql", "db2", Some("process is not running")),
                f("mysql", "db1", Some("process is not running")),
                f("mysql", "db3", Some("failed to start")),
            ],
            &["db9", "db4"],
            true,
        );
        assert_eq!(
            t.as_deref(),
            Some(
                "mysql on db1, db2: process is not running; mysql on db3: failed to start; no recent report from db4, db9"
            )
        );
        let t = fleet(&[], &["db9"], false).unwrap();
        assert_eq!(t, "no recent report from the monitoring");
        assert!(!t.contains("db9"));
    }

    #[test]
    fn local_sources_speak_alone_and_nothing_failing_says_nothing() {
        let local = Failing {
            service: "-",
            host: "@manual",
            local: true,
            test: "manual",
            state: State::MajorOutage,
            description: Some("Planned database upgrade\nsecond line"),
        };
        assert_eq!(
            fleet(&[local], &[], true).as_deref(),
            Some("Planned database upgrade")
        );
        assert_eq!(fleet(&[], &[], true), None);
    }

    #[test]
    fn bounded_one_line() {
        let many: Vec<String> = (0..7).map(|i| format!("svc{i}")).collect();
        let failing: Vec<Failing<'_>> = many.iter().map(|s| f(s, "n", Some("down"))).collect();
        let t = fleet(&failing, &[], false).unwrap();
        assert_eq!(
            t,
            "svc0: down; svc1: down; svc2: down; svc3: down; and 3 more"
        );
        let long = "x".repeat(1000);
        let s = said(&format!("\n  {long}\u{7}\nnext")).unwrap();
        assert_eq!(s.chars().count(), MAX_SAID + 1);
        assert!(s.ends_with('…'));
        assert_eq!(said(" \n\t\n"), None);
    }

    #[test]
    fn a_failure_without_words_has_monits_name() {
        assert_eq!(failure_name("connection"), "Connection failed");
        assert_eq!(failure_name("status"), "Status failed");
        assert_eq!(failure_name("no_such_family"), "no_such_family failed");
        assert_eq!(recovery_name("existence"), "Exists");
    }
}
