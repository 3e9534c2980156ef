//! The handler: `statusrelay monit` and `statusrelay event`, in a crate of its own so that what
//! Monit execs per event links no runtime, no HTTP and no TLS (only core and the spool).
//!
//! Invariants:
//! - Never touches the network and never reads stdin; one spool transaction, then exit.
//! - The raw event is recorded whatever happens after it was read: an event that cannot be
//!   mapped or routed (or arrives while the config is broken) is kept as 'rejected' and can be
//!   re-applied with `replay --rejected` once the cause is fixed.
//! - [`plan`] is pure (config + raw event in, spool writes out), shared with replay.

pub mod alloc;
mod error;

use std::path::Path;
use std::sync::Arc;

use statusrelay_core::mapping::{self, Mapped, TESTS};
use statusrelay_core::source::{EventSource, MaintenanceChange, ManualEvent};
use statusrelay_core::time::Clock;
use statusrelay_core::{Config, CoreError, Effect, RawEvent, State, words};
use statusrelay_spool::{Apply, MAINTENANCE_SOURCE, NewEvent, Spool, SpoolCause, TestChange};

pub use error::HandlerError;
use statusrelay_core::log::{debug, warn};

/// What the spool should record for an event.
#[derive(Debug, Clone)]
pub struct Plan {
    pub event: NewEvent,
    pub applies: Vec<Apply>,
}

/// An event that cannot be applied, and the event as it is to be recorded (rejected).
#[derive(Debug)]
pub struct Rejection {
    pub event: NewEvent,
    pub reason: CoreError,
}

/// What planning an event gives: spool writes, or the rejection to record.
pub type Planned = Result<Plan, Box<Rejection>>;

fn reject(event: NewEvent, reason: CoreError) -> Planned {
    Err(Box::new(Rejection { event, reason }))
}

fn one_shot_families() -> Vec<String> {
    TESTS
        .iter()
        .filter(|t| t.one_shot)
        .map(|t| t.key.to_string())
        .collect()
}

/// Turn a raw Monit event into spool writes. On error, the returned [`NewEvent`] is what to
/// record as rejected.
pub fn plan(config: &Config, raw: &RawEvent, component: Option<&str>) -> Planned {
    let mut event = NewEvent {
        host: raw.get("MONIT_HOST").map(str::to_string),
        service: raw.get("MONIT_SERVICE").map(str::to_string),
        event: raw.get("MONIT_EVENT").map(str::to_string),
        description: raw.env.get("MONIT_DESCRIPTION").cloned(),
        monit_date: raw.get("MONIT_DATE").map(str::to_string),
        raw: EventSource::Monit {
            monit: raw.clone(),
            component: component.map(str::to_string),
        },
        test: None,
        effect: None,
    };
    let ev = match raw.validate() {
        Ok(ev) => ev,
        Err(e) => return reject(event, e),
    };
    let Some(class) = mapping::classify(&ev.event, &ev.description) else {
        return reject(event, CoreError::UnknownEvent(ev.event));
    };
    event.test = Some(class.test.clone());
    event.effect = Some(class.effect);
    let targets = match component {
        Some(name) => match config.component(name) {
            Ok(c) => vec![c],
            Err(e) => return reject(event, e),
        },
        None => config.route(&ev.service),
    };
    if targets.is_empty() {
        return reject(
            event,
            CoreError::Unrouted {
                service: ev.service,
            },
        );
    }
    let host = ev.host.clone().unwrap_or_else(|| config.node_name());
    let mut applies = Vec::new();
    for c in &targets {
        let change = match class.effect {
            Effect::Info => continue,
            Effect::Recover => TestChange::Recover {
                one_shot_families: one_shot_families(),
            },
            Effect::Fail => {
                match mapping::state_for(class.family(), &c.mapping.0, &config.mapping.0) {
                    Mapped::Ignore => continue,
                    Mapped::State(s) => TestChange::Fail(s),
                }
            }
        };
        applies.push(Apply {
            component: c.name.clone(),
            rule: c.nodes,
            host: host.clone(),
            service: ev.service.clone(),
            test: class.test.clone(),
            change,
            description: words::said(&ev.description),
        });
    }
    Ok(Plan { event, applies })
}

/// Plan for `statusrelay event`: the source is the "host" (as `@source`, a local source no
/// node can speak for), the test is "manual".
pub fn plan_manual(
    config: &Config,
    component: &str,
    state: State,
    message: Option<&str>,
    source: &str,
) -> Planned {
    // A local source: its own namespace ('@'), which no node's name can enter.
    let host = statusrelay_spool::local_source(source);
    let event = NewEvent {
        host: Some(host.clone()),
        service: None,
        event: Some(format!("set {state}")),
        description: message.map(str::to_string),
        monit_date: None,
        raw: EventSource::Manual {
            event: ManualEvent {
                component: component.to_string(),
                status: state,
                message: message.map(str::to_string),
                source: source.to_string(),
            },
        },
        test: Some("manual".into()),
        effect: Some(if state == State::Operational {
            Effect::Recover
        } else {
            Effect::Fail
        }),
    };
    let c = match config.component(component) {
        Ok(c) => c,
        Err(e) => return reject(event, e),
    };
    let change = if state == State::Operational {
        TestChange::Recover {
            one_shot_families: vec![],
        }
    } else {
        TestChange::Fail(state)
    };
    let applies = vec![Apply {
        rule: c.nodes,
        component: c.name,
        host,
        service: "-".into(),
        test: "manual".into(),
        change,
        description: message.and_then(words::said),
    }];
    Ok(Plan { event, applies })
}

/// The event and the test change of a shown maintenance window starting (`on`) or ending,
/// for whichever store records it: `under_maintenance` from a source of its own
/// ("maintenance"), so it never clears Monit's failures and vice versa.
pub fn maintenance_event(
    config: &Config,
    component: &str,
    on: bool,
    why: &str,
) -> (NewEvent, Apply) {
    let change = if on {
        TestChange::Fail(State::UnderMaintenance)
    } else {
        TestChange::Recover {
            one_shot_families: vec![],
        }
    };
    let ev = NewEvent {
        host: Some(MAINTENANCE_SOURCE.into()),
        service: None,
        event: Some(
            if on {
                "maintenance start"
            } else {
                "maintenance end"
            }
            .into(),
        ),
        description: Some(why.to_string()),
        monit_date: None,
        raw: EventSource::Maintenance {
            maintenance: MaintenanceChange {
                component: component.to_string(),
                on,
                why: why.to_string(),
            },
        },
        test: Some("maintenance".into()),
        effect: Some(if on { Effect::Fail } else { Effect::Recover }),
    };
    let apply = Apply {
        component: component.to_string(),
        rule: config.node_rule(component),
        host: MAINTENANCE_SOURCE.into(),
        service: "-".into(),
        test: "maintenance".into(),
        change,
        description: words::said(why),
    };
    (ev, apply)
}

/// What a recording did, in one line: the event's id and each state change it queued.
pub fn said(r: &statusrelay_spool::Recorded) -> String {
    let mut out = format!("recorded event e{}", r.event_id);
    for c in &r.changes {
        out.push_str(&format!(
            "; {}: {} -> {} (delivery {})",
            c.component,
            c.from.map(|s| s.as_str()).unwrap_or("none"),
            c.to,
            c.outbox_id
        ));
    }
    if r.changes.is_empty() {
        out.push_str("; no state change");
    }
    out
}

/// Record a plan (or its rejection) and report the outcome.
fn record(spool: &mut Spool, planned: Planned) -> Result<String, HandlerError> {
    match planned {
        Ok(p) => {
            let r = spool.record(&p.event, &p.applies, None)?;
            let out = said(&r);
            debug!("{out}");
            Ok(out)
        }
        Err(r) => {
            let event_id = spool.record_rejected(&r.event, &r.reason.to_string())?;
            Err(HandlerError::Rejected {
                event_id,
                reason: r.reason,
            })
        }
    }
}

/// `statusrelay monit`: record the event Monit passed (`raw`, captured from its MONIT_* variables).
pub fn monit(
    config_path: Option<&Path>,
    raw: RawEvent,
    component: Option<&str>,
    stray: &[String],
    clock: Arc<dyn Clock>,
) -> Result<String, HandlerError> {
    if raw.env.is_empty() {
        return Err(CoreError::NotFromMonit.into());
    }
    // Words split off by Monit are most likely the rest of a component name: keep the name
    // whole in the recorded event, so `replay --rejected` can apply it once the config or the
    // exec line is fixed.
    let whole = (!stray.is_empty()).then(|| {
        let mut words: Vec<&str> = component.into_iter().collect();
        words.extend(stray.iter().map(String::as_str));
        words.join(" ")
    });
    let component = whole.as_deref().or(component);
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(reason) => {
            // Keep the event even though the config is broken: it is the one thing Monit will not resend.
            let spool_path = Config::spool_hint(config_path);
            let ev = match plan(&Config::default(), &raw, component) {
                Ok(p) => p.event,
                Err(r) => r.event,
            };
            let event_id = with_busy_retry(&*clock, || {
                let mut spool = statusrelay_spool::Spool::open(&spool_path, clock.clone())?;
                Ok(spool.record_rejected(&ev, &format!("config error: {reason}"))?)
            })?;
            return Err(HandlerError::RejectedByConfig {
                event_id,
                spool: spool_path,
                reason,
            });
        }
    };
    // Planning is pure and cheap: each attempt plans again.
    with_busy_retry(&*clock, || {
        let mut spool = statusrelay_spool::Spool::open(&config.spool, clock.clone())?;
        let planned = match plan(&config, &raw, component) {
            // The rejoined words name a configured component: that is what the line meant.
            Ok(p) if !stray.is_empty() => {
                warn!(
                    "Monit split the component name {:?} on whitespace; applied it whole, but regenerate the exec lines (`statusrelay monit-config`), which name it by its slug",
                    component.unwrap_or_default()
                );
                Ok(p)
            }
            Err(r) if !stray.is_empty() => {
                reject(r.event, CoreError::StrayArguments(stray.to_vec()))
            }
            other => other,
        };
        record(&mut spool, planned)
    })
}

/// Run a spool write again while it fails for lock contention, up to the busy timeout in all.
/// SQLite's busy handler covers most waits, but some BUSY answers (a WAL-index rebuild, a
/// checkpoint resetting the WAL) skip it; Monit sends an event once, so the handler waits them out.
/// A spool SQLite finds corrupt mid-write is moved aside and the event recorded in a fresh one.
fn with_busy_retry<T>(
    clock: &dyn Clock,
    mut op: impl FnMut() -> Result<T, HandlerError>,
) -> Result<T, HandlerError> {
    let deadline = std::time::Instant::now() + statusrelay_spool::BUSY_TIMEOUT;
    statusrelay_spool::retry_corrupt(clock, || {
        loop {
            match op() {
                Err(e) if e.is_spool_busy() && std::time::Instant::now() < deadline => {
                    debug!("spool busy ({e}); trying again");
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                other => return other,
            }
        }
    })
}

/// `statusrelay event`.
pub fn event(
    config: &Config,
    component: &str,
    state: State,
    message: Option<&str>,
    source: &str,
    clock: Arc<dyn Clock>,
) -> Result<String, HandlerError> {
    with_busy_retry(&*clock, || {
        let mut spool = statusrelay_spool::Spool::open(&config.spool, clock.clone())?;
        record(
            &mut spool,
            plan_manual(config, component, state, message, source),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn raw(pairs: &[(&str, &str)]) -> RawEvent {
        RawEvent::from_env(
            pairs
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        )
    }

    fn cfg(text: &str) -> Config {
        Config::parse(text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn a_component_override_changes_the_state() {
        let c = cfg(
            "[[component]]\nname = \"db\"\nservices = [\"mysql*\"]\n[component.mapping]\nconnection = \"partial_outage\"\n",
        );
        let p = plan(
            &c,
            &raw(&[
                ("MONIT_SERVICE", "mysql"),
                ("MONIT_EVENT", "Connection failed"),
                ("MONIT_HOST", "n1"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(p.applies.len(), 1);
        assert_eq!(p.applies[0].change, TestChange::Fail(State::PartialOutage));
        assert_eq!(p.applies[0].host, "n1");
    }

    #[test]
    fn ignored_and_informational_events_apply_nothing() {
        let c = cfg("[mapping]\nresource = \"ignore\"\n");
        let p = plan(
            &c,
            &raw(&[
                ("MONIT_SERVICE", "web"),
                ("MONIT_EVENT", "Resource limit matched"),
            ]),
            None,
        )
        .unwrap();
        assert!(p.applies.is_empty());
        let p = plan(
            &c,
            &raw(&[("MONIT_SERVICE", "web"), ("MONIT_EVENT", "PID changed")]),
            None,
        )
        .unwrap();
        assert!(p.applies.is_empty());
        assert_eq!(p.event.effect, Some(Effect::Info));
    }

    #[test]
    fn unroutable_and_unknown_events_are_rejected_with_the_raw_event() {
        let c = cfg("[[component]]\nname = \"db\"\n");
        let r = plan(
            &c,
            &raw(&[("MONIT_SERVICE", "nginx"), ("MONIT_EVENT", "Exists")]),
            None,
        )
        .unwrap_err();
        assert!(matches!(r.reason, CoreError::Unrouted { .. }));
        assert!(r.event.raw.to_json().contains("nginx"));
        let r2 = plan(
            &c,
            &raw(&[("MONIT_SERVICE", "db"), ("MONIT_EVENT", "Gremlins")]),
            None,
        )
        .unwrap_err();
        assert!(matches!(r2.reason, CoreError::UnknownEvent(_)));
    }

    #[test]
    fn a_service_feeding_two_components_updates_both() {
        let c = cfg(
            "[[component]]\nname = \"a\"\nservices = [\"x*\"]\n[[component]]\nname = \"b\"\nservices = [\"*y\"]\n",
        );
        let p = plan(
            &c,
            &raw(&[("MONIT_SERVICE", "xy"), ("MONIT_EVENT", "Does not exist")]),
            None,
        )
        .unwrap();
        assert_eq!(
            p.applies
                .iter()
                .map(|a| a.component.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
