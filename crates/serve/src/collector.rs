//! `POST /collector`: a node's Monit pushing its status document, as it would to M/Monit.
//!
//! Invariants:
//! - [`plan`] is pure: from the config, the authenticated node and the document to a
//!   [`Plan`], or the refusal that says why not. No HTTP, no spool, no clock.
//! - A document is the node's whole truth at the time Monit collected it, where Monit has a
//!   word (`ServiceStatus::speaks`: a service initialising or not monitored keeps its rows).
//! - Documents are ordered by that time within one Monit incarnation, never by arrival, so a
//!   queued older one re-sent after an outage changes nothing; a new incarnation (Monit
//!   restarted, its clock maybe set back) starts anew.
//! - The document's Monit credentials are never stored, logged or echoed: only what it says
//!   of each service is kept.

use std::net::SocketAddr;

use statusrelay_core::monit_status;
use statusrelay_core::nodes::Via;
use statusrelay_core::relay::MAX_FAILING_PER_REQUEST;
use statusrelay_core::source::{CollectorDocument, EventSource, MonitObservation};
use statusrelay_core::{Config, words};
use statusrelay_spool::{Apply, NewEvent, Node, Reported, TestChange};

use crate::Ingest;
use crate::http::Refusal;
use crate::ingest::{Ahead, Plan, Planned, Scope};

/// What a node's Monit document asks the aggregator to record, or why it is refused.
pub fn plan(config: &Config, node: &Node, body: &[u8]) -> Result<Plan, Refusal> {
    let status = monit_status::parse(body).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let Some(seq) = status.collected_us() else {
        return Err(Refusal::Malformed(
            "no <collected_sec> in the document: it cannot be ordered".into(),
        ));
    };
    let mut applies = Vec::new();
    let mut seen = Vec::new();
    let mut feeds: Vec<String> = Vec::new();
    let mut keep: Vec<String> = Vec::new();
    let mut unrouted: Vec<(String, String)> = Vec::new();
    for svc in &status.services {
        let seen_as = monit_status::observe(config, svc, |c| {
            node.components
                .as_ref()
                .is_none_or(|only| only.iter().any(|o| o == c))
        });
        // What the node feeds does not depend on Monit's word now: a service initialising
        // still feeds its components, so they are not dropped from the node.
        for comp in &seen_as.routes {
            if !feeds.contains(&comp.name) {
                feeds.push(comp.name.clone());
            }
        }
        if !svc.speaks() {
            keep.push(svc.name.clone());
            continue;
        }
        seen.push(MonitObservation {
            service: svc.name.clone(),
            kind: svc.kind,
            status: svc.status,
            host: node.name.clone(),
        });
        if seen_as.routes.is_empty() && !seen_as.families.is_empty() {
            unrouted.push((svc.name.clone(), seen_as.families.join(",")));
        }
        for f in seen_as.failing {
            applies.push(Apply {
                rule: f.rule,
                host: node.name.clone(),
                service: svc.name.clone(),
                test: f.family.into(),
                change: TestChange::Fail(f.state),
                // Monit's words come with the event that reported the failure; later
                // documents have none, and the row keeps the first ones.
                description: status
                    .failure_said(&svc.name, f.family)
                    .and_then(words::said),
                component: f.component,
            });
        }
    }
    if applies.len() > MAX_FAILING_PER_REQUEST {
        return Err(Refusal::Unprocessable(format!(
            "the document has {} failing tests, more than {MAX_FAILING_PER_REQUEST}: check the node's monitrc and the aggregator's components",
            applies.len()
        )));
    }
    let event = NewEvent {
        host: Some(node.name.clone()),
        description: Some(format!(
            "{}'s Monit reports {} failing test(s)",
            node.name,
            applies.len()
        )),
        ..NewEvent::new(EventSource::Collector {
            collector: CollectorDocument {
                node: node.name.clone(),
                collected_us: seq,
                services: seen,
            },
        })
    };
    Ok(Plan {
        via: Via::Collector,
        // Monit's collected time orders documents; no epoch: the reporter (Monit's id and
        // incarnation) is the sequence.
        epoch: 0,
        ahead: Some(Ahead {
            mark_ms: seq / 1000,
            what: "Monit clock (the document's collected time)",
            fix: "set the node's clock right (NTP); its documents are taken again from the next one collected in time",
        }),
        reporter: Some(format!(
            "monit:{}:{}",
            status.id.as_deref().unwrap_or("-"),
            status.incarnation.as_deref().unwrap_or("-")
        )),
        period_ms: status.poll_secs.map(|p| i64::from(p) * 1000),
        keep,
        unrouted: Some(unrouted),
        each: 1,
        reports: vec![Planned {
            seq,
            scope: Scope::Node(feeds),
            event,
            applies,
        }],
    })
}

impl Ingest {
    /// A status document a node's Monit pushed (see the module's invariants).
    pub(crate) fn collect(&self, name: &str, body: &[u8], peer: SocketAddr) -> Result<(), Refusal> {
        let (mut seq, mut failing, mut kept) = (0, 0, String::new());
        let (node, done, _) = self.report(name, peer, |node| {
            let plan = plan(&self.config, node, body).inspect_err(|r| {
                if let Refusal::Malformed(e) = r {
                    crate::warn!(
                        "{peer}: node {}: a collector document refused (400): {e}",
                        node.name
                    );
                }
            })?;
            (seq, failing) = (plan.reports[0].seq, plan.reports[0].applies.len());
            if !plan.keep.is_empty() {
                kept = format!(", no word on {} (kept)", plan.keep.join(", "));
            }
            Ok(plan)
        })?;
        crate::debug!(
            "{peer}: node {node}: status document of {seq} µs, {failing} failing test(s){kept}: {}",
            if matches!(done.first(), Some(Reported::Outdated { .. })) {
                "outdated"
            } else {
                "applied"
            }
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Monit 5.33's own push, captured (tests/data/mmonit): `backend`'s port test failing.
    const CAPTURED: &str =
        include_str!("../../../tests/data/mmonit/04-status-port-and-program-failed.http");

    fn document() -> String {
        CAPTURED
            .split_once("\r\n\r\n")
            .or_else(|| CAPTURED.split_once("\n\n"))
            .expect("a request with a body")
            .1
            .to_string()
    }

    fn config() -> Config {
        Config::parse(
            "[serve]\n\
             [[component]]\nname = \"payments\"\nservices = [\"payments-api\"]\n\
             [[component]]\nname = \"web\"\nservices = [\"nginx\"]\n",
            std::path::Path::new("aggregator.toml"),
        )
        .unwrap()
    }

    #[test]
    fn a_document_is_one_report_of_the_whole_node_ordered_by_monits_time() {
        let p = plan(&config(), &Node::default(), document().as_bytes()).unwrap();
        assert_eq!(p.reports.len(), 1);
        let r = &p.reports[0];
        // The newest service's collected time, in microseconds.
        assert_eq!(r.seq, 1_796_078_450_365_624);
        assert_eq!(r.scope, Scope::Node(vec!["payments".into()]));
        assert!(r.applies.is_empty(), "{:?}", r.applies);
        assert_eq!(
            p.unrouted,
            Some(vec![("backend".into(), "connection".into())]),
            "a failing service no component takes is said, not dropped"
        );
        assert_eq!(
            p.reporter.as_deref(),
            Some("monit:eeb0bd2e5fd54d48e1e92775db77eb30:1796078444")
        );
        assert_eq!(p.period_ms, Some(2_000));
        assert_eq!(p.ahead.as_ref().map(|a| a.mark_ms), Some(1_796_078_450_365));
    }

    #[test]
    fn a_failing_routed_service_is_a_failing_test_of_its_component() {
        let config = Config::parse(
            "[serve]\n[[component]]\nname = \"api\"\nservices = [\"backend\"]\n",
            std::path::Path::new("aggregator.toml"),
        )
        .unwrap();
        let node = Node {
            name: "alpha".into(),
            ..Node::default()
        };
        let p = plan(&config, &node, document().as_bytes()).unwrap();
        let a = &p.reports[0].applies;
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(
            (a[0].component.as_str(), a[0].service.as_str()),
            ("api", "backend")
        );
        assert_eq!(a[0].test, "connection");
        assert_eq!(a[0].host, "alpha", "the credential names the node");
        assert_eq!(p.unrouted, Some(vec![]));
    }

    #[test]
    fn a_service_monit_has_no_word_on_is_kept_and_still_fed() {
        // `backend` not monitored: its rows stay as they are, its component still fed.
        let doc = document().replacen(
            "<status>32</status><status_hint>0</status_hint><monitor>1</monitor>",
            "<status>32</status><status_hint>0</status_hint><monitor>0</monitor>",
            1,
        );
        let config = Config::parse(
            "[serve]\n[[component]]\nname = \"api\"\nservices = [\"backend\"]\n",
            std::path::Path::new("aggregator.toml"),
        )
        .unwrap();
        let p = plan(&config, &Node::default(), doc.as_bytes()).unwrap();
        assert_eq!(p.keep, vec!["backend".to_string()]);
        assert_eq!(p.reports[0].scope, Scope::Node(vec!["api".into()]));
        assert!(p.reports[0].applies.is_empty());
    }

    #[test]
    fn a_node_limited_to_components_feeds_only_those() {
        let node = Node {
            components: Some(vec!["web".into()]),
            ..Node::default()
        };
        let p = plan(&config(), &node, document().as_bytes()).unwrap();
        assert_eq!(p.reports[0].scope, Scope::Node(vec![]));
    }

    #[test]
    fn a_document_that_cannot_be_read_or_ordered_is_refused_saying_why() {
        let e = plan(&config(), &Node::default(), b"<monit>").unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        let untimed = regex_free_strip(&document(), "<collected_sec>", "</collected_sec>");
        let e = plan(&config(), &Node::default(), untimed.as_bytes()).unwrap_err();
        assert!(e.error().contains("<collected_sec>"), "{e:?}");
    }

    /// `text` without any `open...close` element.
    fn regex_free_strip(text: &str, open: &str, close: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(open) {
            out.push_str(&rest[..i]);
            let j = rest[i..].find(close).expect("closed") + i + close.len();
            rest = &rest[j..];
        }
        out + rest
    }
}
