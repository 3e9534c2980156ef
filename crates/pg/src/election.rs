//! An instance's part in the election, kept by a thread of its own: the lease asked for
//! every fifth of its duration on a connection of its own, what it answered shared with the
//! flusher, every change said once, and the lease given up at a clean stop.
//!
//! Invariants:
//! - The flusher writes only under the term [`Election::may_send`] gives it, checked on the
//!   monotonic clock immediately before each page request; a renewal that fails keeps the
//!   last answer, which runs out on its own (`Held::may_send`), so a writer that loses the
//!   database stops writing within its lease.
//! - A change of who writes is said once (this instance writes, under which term; another
//!   does; the database cannot be reached), never at every renewal.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::{Held, PgError, Target, Term};

/// What this instance last learnt of the lease.
pub struct Election {
    pub target: Target,
    held: Mutex<Held>,
}

/// A change worth saying, from one answer to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Turn {
    /// This instance writes the page now, under this term.
    Writes(Term),
    /// Another instance writes (its name), or none does.
    Follows(Option<String>),
    /// The database could not be asked: the last answer holds until it runs out.
    Unreachable(String),
}

impl Election {
    pub fn new(target: Target) -> Election {
        Election {
            target,
            held: Mutex::new(Held::Follower { writer: None }),
        }
    }

    /// How often the lease is asked for: a fifth of its duration.
    pub fn renew_every(&self) -> Duration {
        self.target.lease.duration / 5
    }

    /// The term to send a page request under, if one that may take `takes` may start now.
    pub fn may_send(&self, takes: Duration) -> Option<Term> {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .may_send(Instant::now(), takes)
    }

    /// The term this instance writes under now, if it does.
    pub fn writes(&self) -> Option<Term> {
        self.may_send(Duration::ZERO)
    }

    /// Ask once on `client` and keep the answer; the change from the last one, if any.
    pub fn ask(
        &self,
        client: &mut postgres::Client,
        last: &Option<Turn>,
    ) -> Result<Option<Turn>, PgError> {
        let held = self.target.lease.acquire(client)?;
        let turn = match &held {
            Held::Writer { term, .. } => Turn::Writes(*term),
            Held::Follower { writer } => Turn::Follows(
                writer
                    .as_ref()
                    .filter(|w| w.expires_in_s > 0.0)
                    .map(|w| w.holder.clone()),
            ),
        };
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = held;
        Ok((last.as_ref() != Some(&turn)).then_some(turn))
    }

    /// Keep asking until `stop`, saying each change through `said`; then give the lease up.
    pub fn run(&self, stop: &AtomicBool, said: &mut dyn FnMut(&Turn)) {
        let mut client: Option<postgres::Client> = None;
        let mut last: Option<Turn> = None;
        while !stop.load(Ordering::SeqCst) {
            let asked = Instant::now();
            let r = match client.as_mut() {
                Some(c) => self.ask(c, &last),
                // The schema first, as every connection of an instance has it: the election
                // may start before the store is opened.
                None => self.target.connect().and_then(|mut c| {
                    crate::migrate(&mut c)?;
                    let r = self.ask(&mut c, &last);
                    client = Some(c);
                    r
                }),
            };
            match r {
                Ok(Some(turn)) => {
                    said(&turn);
                    last = Some(turn);
                }
                Ok(None) => {}
                Err(e) => {
                    client = None;
                    let turn = Turn::Unreachable(e.to_string());
                    if !matches!(last, Some(Turn::Unreachable(_))) {
                        said(&turn);
                    }
                    last = Some(turn);
                }
            }
            // The next renewal a fifth of the lease after this one began, in short steps so a
            // stop is seen at once.
            let next = asked + self.renew_every();
            while Instant::now() < next && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20).min(next - Instant::now().min(next)));
            }
        }
        if let Some(c) = client.as_mut() {
            let _ = self.target.lease.release(c);
        }
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Held::Follower { writer: None };
    }
}
