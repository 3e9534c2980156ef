//! The flusher's decisions, in milliseconds: an in-memory page that fails as scripted, a real
//! SQLite spool in a temp dir, and a clock the test moves. No server, no sleeping: a retry is
//! "due" because the test moved the clock past it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use statusrelay_backend::memory::{Failure, MemoryPage, Op, PageHandle};
use statusrelay_core::time::Clock;
use statusrelay_core::{Config, State};
use statusrelay_spool::Spool;

use super::{FlushOptions, FlushReport, flush};
use crate::AppError;

struct TestClock(AtomicI64);
impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A spool in a temp dir, a config naming the component "db" (id 2 on the page), a clock.
struct Fixture {
    dir: std::path::PathBuf,
    config: Config,
    clock: Arc<TestClock>,
}

const DAY: i64 = 86_400_000;

impl Fixture {
    fn new(name: &str, extra: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("sr-flusher-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "spool = \"{}\"\n[backend]\nkind = \"cachet\"\nurl = \"http://127.0.0.1:9\"\ntoken_file = \"t\"\n\
             [delivery]\nbackoff_base = \"1s\"\nbackoff_cap = \"10s\"\n{extra}\
             [[component]]\nname = \"db\"\nid = 2\nservices = [\"mysql\"]\n",
            dir.join("spool.db").display()
        );
        let config = Config::parse(&text, std::path::Path::new("test.toml")).unwrap();
        Fixture {
            dir,
            config,
            clock: Arc::new(TestClock(AtomicI64::new(20 * DAY))),
        }
    }

    fn with_incidents(name: &str) -> Fixture {
        let mut f = Fixture::new(name, "");
        f.config.components[0].incidents = true;
        f
    }

    fn advance(&self, ms: i64) {
        self.clock.0.fetch_add(ms, Ordering::SeqCst);
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Record that the component is now `state` (as `statusrelay event` does).
    fn say(&self, state: State) {
        crate::handler::event(
            &self.config,
            "db",
            state,
            Some("test"),
            "mysql",
            self.clock(),
        )
        .unwrap();
    }

    /// One `flush --once` against `page`.
    fn flush(&self, page: MemoryPage) -> Result<FlushReport, AppError> {
        flush(
            &self.config,
            statusrelay_backend::Sink::Page(Box::new(page)),
            FlushOptions {
                once: true,
                poll: Duration::from_millis(1),
                shutdown: Arc::new(AtomicBool::new(false)),
                clock: self.clock(),
                metrics_file: None,
                doorbell: None,
                postgres: None,
            },
        )
    }

    fn spool(&self) -> Spool {
        Spool::open(&self.config.spool, self.clock()).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn page() -> (MemoryPage, PageHandle) {
    MemoryPage::new(&[("2", "db")])
}

/// The page is reusable across runs: each flush gets a new MemoryPage on the same state.
fn again(h: &PageHandle) -> MemoryPage {
    MemoryPage::from_handle(h.clone())
}

#[test]
fn only_the_newest_state_is_sent() {
    let f = Fixture::new("coalesce", "");
    let (p, h) = page();
    f.say(State::MajorOutage);
    f.say(State::Operational);
    f.say(State::PartialOutage);
    let r = f.flush(p).unwrap();
    assert_eq!((r.sent, r.superseded), (1, 2));
    assert_eq!(h.sets(), ["set db partial_outage"]);
}

#[test]
fn a_state_the_page_already_shows_is_not_sent_again() {
    let f = Fixture::new("skip", "");
    let (p, h) = page();
    f.say(State::MajorOutage);
    f.flush(p).unwrap();
    // Down, up and down again before the next run: the page shows the newest already.
    f.say(State::Operational);
    f.say(State::MajorOutage);
    let r = f.flush(again(&h)).unwrap();
    assert_eq!((r.sent, r.skipped, r.superseded), (0, 1, 1));
    assert_eq!(h.sets(), ["set db major_outage"]);
}

#[test]
fn a_server_error_is_retried_when_due_and_a_rejection_is_dead_lettered_at_once() {
    let f = Fixture::new("retry", "");
    let (p, h) = page();
    h.fail_next(Op::SetState, Failure::Http(503, None));
    f.say(State::MajorOutage);
    let e = f.flush(p).unwrap_err();
    assert!(matches!(e, AppError::StillPending { count: 1, .. }), "{e}");
    // Not due yet: nothing is sent.
    let e = f.flush(again(&h)).unwrap_err();
    assert!(matches!(e, AppError::StillPending { .. }), "{e}");
    assert_eq!(h.sets().len(), 1);
    // Past the first backoff ceiling (1 s): sent.
    f.advance(1_001);
    let r = f.flush(again(&h)).unwrap();
    assert_eq!(r.sent, 1);
    assert_eq!(h.shows("db"), Some(State::MajorOutage));
    // A 4xx is the API rejecting the request: dead at once, with the reason.
    h.fail_next(Op::SetState, Failure::Http(422, None));
    f.say(State::Operational);
    let r = f.flush(again(&h)).unwrap();
    assert_eq!(r.dead, 1);
    let dead = f.spool().open_items().unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].last_error.as_deref().unwrap().contains("HTTP 422"),
        "{dead:?}"
    );
}

#[test]
fn max_attempts_dead_letters_after_that_many_tries() {
    let f = Fixture::new("maxattempts", "max_attempts = 2\n");
    let (p, h) = page();
    h.fail_next(Op::SetState, Failure::Http(500, None));
    h.fail_next(Op::SetState, Failure::Http(500, None));
    f.say(State::MajorOutage);
    assert!(f.flush(p).is_err());
    f.advance(10_001);
    let r = f.flush(again(&h)).unwrap();
    assert_eq!((r.sent, r.dead), (0, 1));
    let dead = f.spool().open_items().unwrap();
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("2 attempts"),
        "{dead:?}"
    );
}

#[test]
fn retry_after_is_a_floor_under_the_backoff() {
    let f = Fixture::new("retryafter", "");
    let (p, h) = page();
    h.fail_next(
        Op::SetState,
        Failure::Http(429, Some(Duration::from_secs(30))),
    );
    f.say(State::MajorOutage);
    assert!(f.flush(p).is_err());
    let now = f.clock.now_ms();
    let item = &f.spool().open_items().unwrap()[0];
    assert!(
        item.next_attempt_at >= now + 30_000,
        "due {} ms from now",
        item.next_attempt_at - now
    );
    f.advance(29_000);
    assert!(f.flush(again(&h)).is_err(), "not before Retry-After");
    f.advance(1_001);
    assert_eq!(f.flush(again(&h)).unwrap().sent, 1);
}

#[test]
fn one_incident_per_outage_when_the_answer_to_its_post_is_lost() {
    let f = Fixture::with_incidents("incambig");
    let (p, h) = page();
    // The page opens the incident, but the answer never comes back.
    h.fail_next(Op::OpenIncident, Failure::Timeout { applied: true });
    f.say(State::MajorOutage);
    assert!(f.flush(p).is_err());
    assert_eq!(h.open().len(), 1);
    f.advance(1_001);
    f.flush(again(&h)).unwrap();
    assert_eq!(
        h.open().len(),
        1,
        "the retry found its incident by the marker"
    );
    f.say(State::Operational);
    f.flush(again(&h)).unwrap();
    assert!(h.open().is_empty());
    assert_eq!(h.shows("db"), Some(State::Operational));
}

#[test]
fn a_late_duplicate_incident_is_statusrelays_own_and_resolved_with_it() {
    let f = Fixture::with_incidents("incdup");
    let (p, h) = page();
    // The POST times out and is not on the page yet when the retry looks: the retry opens a
    // second. Then the first lands, late.
    h.fail_next(Op::OpenIncident, Failure::Timeout { applied: false });
    f.say(State::MajorOutage);
    assert!(f.flush(p).is_err());
    f.advance(1_001);
    f.flush(again(&h)).unwrap();
    let ours = h.open();
    assert_eq!(ours.len(), 1);
    {
        let mut s = h.state();
        let mut late = ours[0].clone();
        late.id = "99".into();
        s.incidents.push(late);
    }
    f.say(State::Operational);
    let r = f.flush(again(&h)).unwrap();
    assert_eq!(r.sent, 1, "not held as if a human had opened it");
    assert!(h.open().is_empty(), "{:?}", h.open());
}

#[test]
fn a_humans_incident_pins_the_component_until_it_is_closed() {
    let f = Fixture::with_incidents("human");
    let (p, h) = page();
    f.say(State::MajorOutage);
    f.flush(p).unwrap();
    let ours = h.open()[0].id.clone();
    h.human_incident("2", "Database maintenance by Alice");
    f.say(State::Operational);
    let e = f.flush(again(&h)).unwrap_err();
    assert!(matches!(e, AppError::StillPending { .. }), "{e}");
    assert_eq!(h.shows("db"), Some(State::MajorOutage), "pinned");
    let held = &f.spool().open_items().unwrap()[0];
    assert!(
        held.held.as_deref().unwrap().contains("manual incident"),
        "{held:?}"
    );
    // Alice closes hers; the recheck (30 s) delivers, and resolves only ours.
    {
        let mut s = h.state();
        let alice = s.incidents.iter_mut().find(|i| i.id != ours).unwrap();
        alice.resolved = true;
    }
    f.advance(30_001);
    f.flush(again(&h)).unwrap();
    assert_eq!(h.shows("db"), Some(State::Operational));
    assert!(
        h.state()
            .calls
            .contains(&format!("resolve incident #{ours}"))
    );
}

#[test]
fn a_maintenance_window_holds_and_its_end_delivers_only_the_newest_state() {
    let f = Fixture::new("hold", "");
    let (p, h) = page();
    f.spool()
        .maintenance_start("db", f.clock.now_ms() + 60_000, Some("deploy"), false)
        .unwrap();
    f.say(State::MajorOutage);
    assert!(f.flush(p).is_err());
    f.say(State::Operational);
    f.say(State::PartialOutage);
    assert!(f.flush(again(&h)).is_err());
    assert!(h.sets().is_empty(), "held: {:?}", h.sets());
    // The window ends by itself.
    f.advance(60_001);
    let r = f.flush(again(&h)).unwrap();
    assert_eq!(r.sent, 1);
    assert_eq!(h.sets(), ["set db partial_outage"]);
}

#[test]
fn a_late_write_is_read_back_and_repaired() {
    let f = Fixture::new("readback", "verify_after = \"5s\"\n");
    let (p, h) = page();
    // The outage's PUT times out but lands; the recovery is then sent and shown.
    h.fail_next(Op::SetState, Failure::Timeout { applied: false });
    f.say(State::MajorOutage);
    assert!(f.flush(p).is_err());
    f.say(State::Operational);
    f.advance(1_001);
    f.flush(again(&h)).unwrap();
    assert_eq!(h.shows("db"), Some(State::Operational));
    // The late PUT lands now, over the recovery.
    h.state().components[0].2 = State::MajorOutage;
    f.advance(5_000);
    let r = f.flush(again(&h));
    assert!(r.is_err(), "the repair is queued on the read-back");
    f.flush(again(&h)).unwrap();
    assert_eq!(h.shows("db"), Some(State::Operational));
    assert_eq!(
        h.sets(),
        [
            "set db major_outage -> Timeout { applied: false }",
            "set db operational",
            "set db operational"
        ]
    );
}
