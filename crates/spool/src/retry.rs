//! When to try a failed delivery again: capped exponential backoff with full jitter.
//!
//! Whether to retry at all is the backend error's decision (`is_retryable()` with a reason);
//! this module only answers "when", plus the give-up limits of the policy. Pure functions: the
//! clock and the random draw are arguments, so tests pin every branch.

use std::time::Duration;

/// Retry limits, from `[delivery]` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// 0 means no limit.
    pub max_attempts: u32,
    pub max_age: Duration,
}

/// The decision after a retryable failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Try again at this unix-ms instant.
    RetryAt(i64),
    /// Stop: the reason is stored as the dead letter's error.
    GiveUp(String),
}

/// Shortest delay ever scheduled, so a zero jitter draw cannot make a tight loop.
pub const MIN_DELAY: Duration = Duration::from_millis(100);

/// Full-jitter delay before attempt `attempts + 1`: uniform in [MIN_DELAY, min(cap, base * 2^(attempts-1))].
/// `random` is any u64 (uniformly drawn by the caller).
pub fn backoff(policy: &RetryPolicy, attempts: u32, random: u64) -> Duration {
    let exp = attempts.saturating_sub(1).min(32);
    let ceiling = policy
        .base
        .checked_mul(1u32 << exp.min(31))
        .unwrap_or(policy.cap)
        .min(policy.cap)
        .max(MIN_DELAY);
    let span = (ceiling - MIN_DELAY).as_millis() as u64;
    MIN_DELAY + Duration::from_millis(if span == 0 { 0 } else { random % (span + 1) })
}

/// After `attempts` failed attempts (this one included) of an item queued at `queued_at`:
/// retry when, or give up why. A server's Retry-After is honoured as a floor.
pub fn next_attempt(
    policy: &RetryPolicy,
    attempts: u32,
    queued_at: i64,
    now: i64,
    retry_after: Option<Duration>,
    random: u64,
) -> Verdict {
    if policy.max_attempts > 0 && attempts >= policy.max_attempts {
        return Verdict::GiveUp(format!(
            "gave up after {attempts} attempts (delivery.max_attempts)"
        ));
    }
    let age = Duration::from_millis(now.saturating_sub(queued_at).max(0) as u64);
    if age >= policy.max_age {
        return Verdict::GiveUp(format!(
            "gave up after {attempts} attempts over {}s (delivery.max_age)",
            age.as_secs()
        ));
    }
    let mut delay = backoff(policy, attempts, random);
    if let Some(ra) = retry_after {
        delay = delay.max(ra);
    }
    Verdict::RetryAt(now + delay.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            max_attempts: 0,
            max_age: Duration::from_secs(3600),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = policy();
        // With the largest draw the delay sits on the ceiling.
        let top = |n| backoff(&p, n, u64::MAX - (u64::MAX % 1_000_000_007));
        let ceil = |n: u32| {
            (0..2000u64)
                .map(|r| backoff(&p, n, r * 7919))
                .max()
                .unwrap()
        };
        assert!(ceil(1) <= Duration::from_secs(1));
        assert!(ceil(2) <= Duration::from_secs(2) && ceil(2) > Duration::from_secs(1));
        assert!(ceil(5) <= Duration::from_secs(16) && ceil(5) > Duration::from_secs(8));
        assert!(ceil(30) <= Duration::from_secs(60) && ceil(30) > Duration::from_secs(30));
        assert!(top(100) <= Duration::from_secs(60));
    }

    #[test]
    fn jitter_spreads_and_never_goes_below_floor() {
        let p = policy();
        let draws: std::collections::HashSet<_> =
            (0..50u64).map(|r| backoff(&p, 6, r * 104_729)).collect();
        assert!(draws.len() > 40, "full jitter must spread retries");
        assert!(draws.iter().all(|d| *d >= MIN_DELAY));
        assert_eq!(backoff(&p, 0, 0), MIN_DELAY);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = policy();
        match next_attempt(&p, 1, 0, 1000, Some(Duration::from_secs(30)), 0) {
            Verdict::RetryAt(t) => assert!(t >= 31_000),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn gives_up_on_attempts_and_age_with_reason() {
        let mut p = policy();
        p.max_attempts = 3;
        assert!(matches!(
            next_attempt(&p, 2, 0, 10, None, 1),
            Verdict::RetryAt(_)
        ));
        match next_attempt(&p, 3, 0, 10, None, 1) {
            Verdict::GiveUp(r) => assert!(r.contains("max_attempts"), "{r}"),
            v => panic!("{v:?}"),
        }
        p.max_attempts = 0;
        match next_attempt(&p, 9, 0, 3_600_000, None, 1) {
            Verdict::GiveUp(r) => assert!(r.contains("max_age"), "{r}"),
            v => panic!("{v:?}"),
        }
    }
}
