//! A doorbell between a producer of deliveries and the flusher that sends them, in one
//! process: the aggregator's ingest rings it after a commit that changed a component, and the
//! flusher, pausing between steps, wakes at once instead of at its next poll.
//!
//! Invariants:
//! - A ring is never missed: rings are counted, and a waiter compares the count it last saw.
//! - Waiting is bounded by the caller's timeout: the poll stays the fallback (another process
//!   committing, a timer due), so a doorbell only ever makes the flusher earlier.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Rings counted, and a condition variable to wait on them.
#[derive(Default)]
pub struct Doorbell {
    rings: Mutex<u64>,
    rung: Condvar,
}

impl Doorbell {
    /// Ring: every waiter wakes.
    pub fn ring(&self) {
        let mut n = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.wrapping_add(1);
        self.rung.notify_all();
    }

    /// The rings so far.
    pub fn count(&self) -> u64 {
        *self.rings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait at most `d` for a ring after `seen` rings; the count then (a new one: rung).
    pub fn wait(&self, seen: u64, d: Duration) -> u64 {
        let n = self.rings.lock().unwrap_or_else(|p| p.into_inner());
        let (n, _) = self
            .rung
            .wait_timeout_while(n, d, |n| *n == seen)
            .unwrap_or_else(|p| p.into_inner());
        *n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn a_ring_wakes_the_waiter_and_none_is_missed() {
        let d = Arc::new(Doorbell::default());
        // Rung before the wait: seen at once.
        let seen = d.count();
        d.ring();
        assert_eq!(d.wait(seen, Duration::from_secs(10)), seen + 1);
        // Rung while waiting: woken well before the timeout.
        let seen = d.count();
        let ringer = {
            let d = d.clone();
            std::thread::spawn(move || d.ring())
        };
        let t = Instant::now();
        assert_eq!(d.wait(seen, Duration::from_secs(10)), seen + 1);
        assert!(t.elapsed() < Duration::from_secs(5));
        ringer.join().unwrap();
        // Not rung: back at the timeout with the same count.
        let seen = d.count();
        assert_eq!(d.wait(seen, Duration::from_millis(20)), seen);
    }
}
