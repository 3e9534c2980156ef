//! `POST /v1/reports`: a node's statusrelay relaying its spool, as a batch of reports.
//!
//! Invariants:
//! - [`plan`] is pure: from the config, the authenticated node and the body to a [`Plan`], or
//!   the refusal that says why not. No HTTP, no spool, no clock: unit-tested from bytes.
//! - A batch is checked whole before anything is applied (bounded first, then every
//!   component known to the aggregator and allowed to the node, every state a failure).
//! - A snapshot is one instant of the node: one report, one event, its reports acknowledged
//!   one by one as the node counts them.

use std::net::SocketAddr;

use statusrelay_core::nodes::Via;
use statusrelay_core::relay::{
    MAX_FAILING_PER_REPORT, MAX_FAILING_PER_REQUEST, RelayAck, RelayBatch, RelayReport,
};
use statusrelay_core::source::{EventSource, RelayedReport};
use statusrelay_core::{Config, Effect, State, words};
use statusrelay_spool::{Apply, NewEvent, Node, Reported, TestChange};

use crate::Ingest;
use crate::http::Refusal;
use crate::ingest::{Ahead, Plan, Planned, Scope};

/// What a node's batch asks the aggregator to record, or why it is refused.
pub fn plan(config: &Config, node: &Node, body: &[u8]) -> Result<Plan, Refusal> {
    let batch: RelayBatch = serde_json::from_slice(body).map_err(|e| {
        Refusal::Malformed(format!("not a report batch (see the relay format): {e}"))
    })?;
    bounded(&batch)?;
    let items = batch
        .reports
        .iter()
        .map(|r| failing_of(config, node, r).map(|(c, applies)| (c, r, applies)))
        .collect::<Result<Vec<_>, Refusal>>()?;
    if batch.snapshot
        && let Some(first) = batch.reports.first()
        && batch.reports.iter().any(|r| r.seq != first.seq)
    {
        return Err(Refusal::Malformed(
            "a snapshot is one instant of the node: every report in it has the same seq".into(),
        ));
    }
    let reports = if batch.snapshot {
        // The node's whole truth: one report, one event, one transaction.
        let feeds: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
        let applies: Vec<Apply> = items.into_iter().flat_map(|i| i.2).collect();
        vec![Planned {
            seq: batch.reports.first().map_or(0, |r| r.seq),
            scope: Scope::Node(feeds),
            event: event(&node.name, &batch, batch.reports.clone(), applies.len()),
            applies,
        }]
    } else {
        items
            .into_iter()
            .map(|(component, r, applies)| Planned {
                seq: r.seq,
                scope: Scope::Components(vec![component]),
                event: event(&node.name, &batch, vec![r.clone()], applies.len()),
                applies,
            })
            .collect()
    };
    Ok(Plan {
        via: Via::Relay,
        epoch: batch.epoch,
        ahead: Some(Ahead {
            mark_ms: batch.epoch,
            what: "relay epoch (its flusher's start time)",
            fix: "set the node's clock right (NTP); its flusher then starts a new sequence by itself",
        }),
        reporter: batch.reporter.as_ref().map(|r| format!("relay:{r}")),
        period_ms: batch.period_ms,
        keep: Vec::new(),
        unrouted: None,
        each: if batch.snapshot {
            batch.reports.len()
        } else {
            1
        },
        reports,
    })
}

/// Bounded before anything is looked up: one request's work under the spool's lock is
/// bounded, whoever sends it.
fn bounded(batch: &RelayBatch) -> Result<(), Refusal> {
    if let Some(r) = batch
        .reports
        .iter()
        .find(|r| r.failing.len() > MAX_FAILING_PER_REPORT)
    {
        return Err(Refusal::Unprocessable(format!(
            "the report on {:?} has {} failing tests, more than {MAX_FAILING_PER_REPORT} (a test per service and test family): check the node's mapping",
            r.component,
            r.failing.len()
        )));
    }
    let total: usize = batch.reports.iter().map(|r| r.failing.len()).sum();
    if total > MAX_FAILING_PER_REQUEST {
        return Err(Refusal::Unprocessable(format!(
            "the batch has {total} failing tests, more than {MAX_FAILING_PER_REQUEST}: send it in smaller batches"
        )));
    }
    Ok(())
}

/// A report's component, as the aggregator names it, and its failing tests; refused when
/// the aggregator has no such component, the node may not feed it, or a failing test is
/// said to be operational.
fn failing_of(
    config: &Config,
    node: &Node,
    r: &RelayReport,
) -> Result<(String, Vec<Apply>), Refusal> {
    let comp = config.component(&r.component).map_err(|_| {
        Refusal::Unprocessable(format!(
            "no component named {:?} on the aggregator: add it to the aggregator's config",
            r.component
        ))
    })?;
    if let Some(allowed) = &node.components
        && !allowed.contains(&comp.name)
    {
        return Err(Refusal::Forbidden {
            node: node.name.clone(),
            component: comp.name,
        });
    }
    let applies = r
        .failing
        .iter()
        .map(|t| {
            if t.state == State::Operational {
                return Err(Refusal::Malformed(format!(
                    "{} {}: a failing test cannot be operational",
                    t.service, t.test
                )));
            }
            Ok(Apply {
                component: comp.name.clone(),
                rule: comp.nodes,
                host: node.name.clone(),
                service: t.service.clone(),
                test: t.test.clone(),
                change: TestChange::Fail(t.state),
                description: t.description.as_deref().and_then(words::said),
            })
        })
        .collect::<Result<Vec<_>, Refusal>>()?;
    Ok((comp.name, applies))
}

/// The event a relayed report is recorded as (what `queue` and `replay` show).
fn event(name: &str, batch: &RelayBatch, reports: Vec<RelayReport>, failing: usize) -> NewEvent {
    let what = match reports.as_slice() {
        [one] if !batch.snapshot => format!("{:?}", one.component),
        _ => format!("{} components (snapshot)", reports.len()),
    };
    NewEvent {
        host: Some(name.to_string()),
        description: Some(format!(
            "{name} reports {failing} failing test(s) of {what}"
        )),
        effect: Some(if failing == 0 {
            Effect::Recover
        } else {
            Effect::Fail
        }),
        ..NewEvent::new(EventSource::Relay {
            relay: RelayedReport {
                node: name.to_string(),
                epoch: batch.epoch,
                snapshot: batch.snapshot,
                reports,
            },
        })
    }
}

impl Ingest {
    /// A node's batch: checked whole (`plan`), then applied in one transaction; the answer
    /// once it is committed.
    pub(crate) fn relay(
        &self,
        name: &str,
        body: &[u8],
        peer: SocketAddr,
    ) -> Result<RelayAck, Refusal> {
        let (mut each, mut count, mut snapshot) = (1, 0, false);
        let (node, done, outdated_why) = self.report(name, peer, |node| {
            let plan = plan(&self.config, node, body).inspect_err(|r| {
                if let Refusal::Forbidden { node, component } = r {
                    crate::warn!("{peer}: node {node} may not feed {component:?} (403)");
                }
            })?;
            each = plan.each;
            count = plan.reports.len();
            snapshot = matches!(plan.reports.first(), Some(p) if matches!(p.scope, Scope::Node(_)));
            Ok(plan)
        })?;
        let mut ack = RelayAck {
            applied: 0,
            outdated: 0,
            outdated_why,
        };
        for d in done {
            match d {
                Reported::Applied(_) => ack.applied += each,
                _ => ack.outdated += each,
            }
        }
        crate::debug!(
            "{peer}: node {node}: {} report(s){}: {} applied, {} outdated",
            if snapshot { each } else { count },
            if snapshot { " (snapshot)" } else { "" },
            ack.applied,
            ack.outdated
        );
        Ok(ack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            "[serve]\n\
             [[component]]\nname = \"web\"\nservices = [\"nginx\"]\n\
             [[component]]\nname = \"db\"\nservices = [\"postgres\"]\n",
            std::path::Path::new("aggregator.toml"),
        )
        .unwrap()
    }

    fn node(components: Option<Vec<String>>) -> Node {
        Node {
            name: "db1".into(),
            components,
            ..Node::default()
        }
    }

    fn batch(body: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&body).unwrap()
    }

    #[test]
    fn a_batch_is_planned_as_one_report_per_component_with_its_failures() {
        let body = batch(serde_json::json!({
            "epoch": 1000, "snapshot": false, "reporter": "r1", "period_ms": 30000,
            "reports": [
                {"component": "web", "seq": 4, "failing": [
                    {"service": "nginx", "test": "connection", "state": "major_outage",
                     "description": "failed protocol test [HTTP] at [localhost]:80"}]},
                {"component": "db", "seq": 5, "failing": []}
            ]
        }));
        let p = plan(&config(), &node(None), &body).unwrap();
        assert_eq!(p.epoch, 1000);
        assert_eq!(p.reporter.as_deref(), Some("relay:r1"));
        assert_eq!(p.each, 1);
        assert_eq!(p.reports.len(), 2);
        assert_eq!(p.reports[0].scope, Scope::Components(vec!["web".into()]));
        assert_eq!(p.reports[0].seq, 4);
        assert_eq!(p.reports[0].applies.len(), 1);
        assert_eq!(
            p.reports[0].applies[0].host, "db1",
            "the credential names the node"
        );
        assert_eq!(p.reports[0].event.effect, Some(Effect::Fail));
        assert_eq!(p.reports[1].event.effect, Some(Effect::Recover));
        assert_eq!(p.ahead.as_ref().map(|a| a.mark_ms), Some(1000));
    }

    #[test]
    fn a_snapshot_is_one_report_of_the_node_acknowledged_report_by_report() {
        let body = batch(serde_json::json!({
            "epoch": 1000, "snapshot": true,
            "reports": [
                {"component": "web", "seq": 9, "failing": []},
                {"component": "db", "seq": 9, "failing": [
                    {"service": "postgres", "test": "exist", "state": "major_outage"}]}
            ]
        }));
        let p = plan(&config(), &node(None), &body).unwrap();
        assert_eq!(p.reports.len(), 1);
        assert_eq!(p.each, 2);
        assert_eq!(
            p.reports[0].scope,
            Scope::Node(vec!["web".into(), "db".into()])
        );
        assert_eq!(p.reports[0].applies.len(), 1);
        // Its reports at two instants are no snapshot.
        let body = batch(serde_json::json!({
            "epoch": 1000, "snapshot": true,
            "reports": [
                {"component": "web", "seq": 9, "failing": []},
                {"component": "db", "seq": 10, "failing": []}
            ]
        }));
        assert!(matches!(
            plan(&config(), &node(None), &body),
            Err(Refusal::Malformed(m)) if m.contains("same seq")
        ));
    }

    #[test]
    fn a_batch_is_refused_whole_saying_why() {
        let cases: [(serde_json::Value, Option<Vec<String>>, &str); 4] = [
            (
                serde_json::json!({"epoch": 1, "reports": [
                    {"component": "web", "seq": 1, "failing": []},
                    {"component": "mail", "seq": 2, "failing": []}]}),
                None,
                "no component named \"mail\"",
            ),
            (
                serde_json::json!({"epoch": 1, "reports": [
                    {"component": "web", "seq": 1, "failing": []}]}),
                Some(vec!["db".into()]),
                "node db1 may not feed \"web\"",
            ),
            (
                serde_json::json!({"epoch": 1, "reports": [
                    {"component": "web", "seq": 1, "failing": [
                        {"service": "nginx", "test": "exist", "state": "operational"}]}]}),
                None,
                "cannot be operational",
            ),
            (
                serde_json::json!({"epoch": 1, "reports": [
                    {"component": "web", "seq": 1, "failing":
                        (0..1001).map(|i| serde_json::json!(
                            {"service": format!("s{i}"), "test": "exist", "state": "major_outage"}
                        )).collect::<Vec<_>>()}]}),
                None,
                "more than 1000",
            ),
        ];
        for (body, allowed, said) in cases {
            let e = plan(&config(), &node(allowed), &batch(body)).unwrap_err();
            assert!(e.error().contains(said), "{said}: {e:?}");
        }
        let e = plan(&config(), &node(None), b"{\"epoch\":").unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(e.error().contains("not a report batch"), "{e:?}");
    }
}
