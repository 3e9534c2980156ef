//! `statusrelay resync`: record Monit's current view of every mapped service as if Monit had just
//! reported it, so a lost exec event (full disk, crashed handler, a reboot mid-event) cannot
//! leave the page wrong forever.
//!
//! Invariants:
//! - Only real differences are written: a test Monit reports failing that the spool has as
//!   passing (or missing), or one the spool has failing that Monit reports passing. No
//!   difference, no event, no delivery.
//! - Writes are guarded by the snapshot sequence taken before Monit was asked, so an exec event
//!   that lands meanwhile is never overridden by the older snapshot.
//! - A service Monit has no word on (unmonitored, or initialising after a start or `monit
//!   reload`: `ServiceStatus::speaks`) is skipped: its tests keep what they were. The collector
//!   on the aggregator follows the same rule, so one Monit state gives one page either way in.
//! - Services routed to no component are skipped, not errors.
//! - A service is mapped by `monit_status::observe`, as the collector maps it.

use std::collections::BTreeSet;
use std::sync::Arc;

use statusrelay_core::monit_status::{self, MonitStatus};
use statusrelay_core::source::{EventSource, MonitObservation};
use statusrelay_core::time::Clock;
use statusrelay_core::{Config, CoreError, words};
use statusrelay_spool::{Apply, NewEvent, Spool, TestChange};

use crate::{AppError, monit_http};

/// One difference resync found (and, unless a dry run, recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub component: String,
    pub service: String,
    pub test: String,
    /// Some(state): now failing; None: now passing.
    pub now: Option<statusrelay_core::State>,
}

/// Work out the differences between Monit's status and the spool, and record them.
pub fn apply(
    config: &Config,
    spool: &mut Spool,
    status: &MonitStatus,
    snapshot: i64,
    dry_run: bool,
) -> Result<Vec<Difference>, AppError> {
    let host = status.system.clone().unwrap_or_else(|| config.node_name());
    let mut out = Vec::new();
    for svc in status.services.iter().filter(|s| s.speaks()) {
        let seen_as = monit_status::observe(config, svc, |_| true);
        let failing: BTreeSet<&str> = seen_as.families.iter().copied().collect();
        let mut applies = Vec::new();
        for comp in &seen_as.routes {
            let rows: Vec<_> = spool
                .failing_tests(&comp.name)?
                .into_iter()
                .filter(|t| t.host == host && t.service == svc.name)
                .collect();
            let mut fails: Vec<_> = seen_as
                .failing
                .iter()
                .filter(|f| f.component == comp.name)
                .collect();
            fails.sort_by_key(|f| f.family);
            for f in fails {
                if rows.iter().any(|r| r.test.family() == f.family) {
                    continue;
                }
                applies.push(Apply {
                    rule: f.rule,
                    component: comp.name.clone(),
                    host: host.clone(),
                    service: svc.name.clone(),
                    test: f.family.into(),
                    change: TestChange::Fail(f.state),
                    // A status document has no words: the page falls back to Monit's name.
                    description: None,
                });
                out.push(Difference {
                    component: comp.name.clone(),
                    service: svc.name.clone(),
                    test: f.family.to_string(),
                    now: Some(f.state),
                });
            }
            let mut cleared = BTreeSet::new();
            for r in &rows {
                let fam = r.test.family().to_string();
                if !failing.contains(fam.as_str()) && cleared.insert(fam.clone()) {
                    applies.push(Apply {
                        rule: comp.nodes,
                        component: comp.name.clone(),
                        host: host.clone(),
                        service: svc.name.clone(),
                        test: fam.as_str().into(),
                        change: TestChange::Recover {
                            one_shot_families: vec![],
                        },
                        description: None,
                    });
                    out.push(Difference {
                        component: comp.name.clone(),
                        service: svc.name.clone(),
                        test: fam,
                        now: None,
                    });
                }
            }
        }
        if applies.is_empty() || dry_run {
            continue;
        }
        let ev = NewEvent {
            host: Some(host.clone()),
            service: Some(svc.name.clone()),
            event: Some("resync".into()),
            // Public words (the page may show them): Monit's own names for what changed,
            // as its events would have said them.
            description: Some(resync_words(&applies)),
            monit_date: None,
            raw: EventSource::Resync {
                resync: MonitObservation {
                    service: svc.name.clone(),
                    kind: svc.kind,
                    status: svc.status,
                    host: host.clone(),
                },
            },
            test: None,
            effect: None,
        };
        spool.record_resync(&ev, &applies, snapshot)?;
    }
    Ok(out)
}

/// Monit's names for the changes a resync found (`Does not exist, Connection succeeded`).
fn resync_words(applies: &[Apply]) -> String {
    let mut words: Vec<String> = Vec::new();
    for a in applies {
        let w = match a.change {
            TestChange::Fail(_) => words::failure_name(a.test.as_str()),
            TestChange::Recover { .. } => words::recovery_name(a.test.as_str()),
        };
        if !words.contains(&w) {
            words.push(w);
        }
    }
    words.join(", ")
}

/// Fetch Monit's status and apply it. Used by `statusrelay resync` and the flusher.
pub fn run(config: &Config, spool: &mut Spool, dry_run: bool) -> Result<Vec<Difference>, AppError> {
    let m = config.monit.as_ref().ok_or_else(|| {
        AppError::Core(CoreError::ConfigInvalid {
            path: config.source.as_ref().map(|s| s.to_string()).unwrap_or_default().into(),
            key: "monit".into(),
            message: "resync needs a [monit] section: url (or socket), user and password_file as in the monitrc's `set httpd`".into(),
        })
    })?;
    let snapshot = spool.max_event_id()?;
    let body = monit_http::fetch_status(m)?;
    let status = monit_status::parse(&body)?;
    apply(config, spool, &status, snapshot, dry_run)
}

/// `statusrelay resync [--dry-run]`.
pub fn command(config: &Config, dry_run: bool, clock: Arc<dyn Clock>) -> Result<String, AppError> {
    let mut spool = statusrelay_spool::Spool::open(&config.spool, clock)?;
    let diffs = run(config, &mut spool, dry_run)?;
    if !dry_run && config.backend.kind() == statusrelay_core::config::BackendKind::Relay {
        // The aggregator gets the node's whole state again, not only what changed.
        spool.request_snapshot()?;
    }
    if diffs.is_empty() {
        return Ok("in step with Monit: nothing to change\n".into());
    }
    let mut out = String::new();
    for d in &diffs {
        let what = match d.now {
            Some(s) => format!("failing ({s})"),
            None => "passing".into(),
        };
        out.push_str(&format!(
            "{}: {} {} is {what}{}\n",
            d.component,
            d.service,
            d.test,
            if dry_run { " (dry run)" } else { "" }
        ));
    }
    Ok(out)
}
