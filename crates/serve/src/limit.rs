//! Per-node rate limit for `serve`: a token bucket per node, so one node's runaway (a loop, a
//! flood of retries) cannot starve the others or the page. Counted after authentication: the
//! node is known, and a stranger's requests never spend a node's budget.
//!
//! Invariants: a node may send `burst` requests at once and `rate` a second after that; a
//! refused request spends nothing and is told when to come back (`Retry-After`, seconds). The
//! time is the injected clock's.

use std::collections::HashMap;
use std::sync::Mutex;

/// Buckets of every node heard from.
pub struct RateLimit {
    rate: f64,
    burst: f64,
    /// node: (tokens, when counted, refusing since the last accepted request).
    buckets: Mutex<HashMap<String, (f64, i64, bool)>>,
}

impl RateLimit {
    pub fn new(rate: u32, burst: u32) -> RateLimit {
        RateLimit {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one request from `node`'s bucket at `now_ms`; when it is empty, Err with the
    /// seconds to wait and whether this is the first refusal since a request was accepted
    /// (the one worth a warning).
    pub fn take(&self, node: &str, now_ms: i64) -> Result<(), (u64, bool)> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, at, refusing) = b
            .entry(node.to_string())
            .or_insert((self.burst, now_ms, false));
        let elapsed = (now_ms - *at).max(0) as f64 / 1000.0;
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *at = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            *refusing = false;
            Ok(())
        } else {
            let first = !*refusing;
            *refusing = true;
            Err((((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64, first))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_and_each_node_alone() {
        let l = RateLimit::new(2, 3);
        for _ in 0..3 {
            assert!(l.take("db1", 0).is_ok());
        }
        assert_eq!(l.take("db1", 0), Err((1, true)));
        assert_eq!(l.take("db1", 0), Err((1, false)), "warned once");
        assert!(l.take("db2", 0).is_ok(), "db2 has its own bucket");
        // Half a second at 2/s: one more.
        assert!(l.take("db1", 500).is_ok());
        assert!(l.take("db1", 500).is_err());
        // A long pause refills to the burst, not beyond.
        for _ in 0..3 {
            assert!(l.take("db1", 60_000).is_ok());
        }
        assert!(l.take("db1", 60_000).is_err());
    }
}
