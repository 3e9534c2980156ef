//! A mutex whose lock can be waited for with a deadline: the spool connection's, taken by
//! requests on threads marked blocking (`block_in_place`), as a plain mutex was, so a release
//! wakes the next waiter directly (an async mutex woke a task that then had to be scheduled
//! and hand its worker over again: a third more CPU in the partition burst).
//!
//! Invariants:
//! - A release is never missed: a waiter checks the lock and starts waiting while holding the
//!   condition's mutex, and a release notifies while holding it.
//! - A waiter gives up at its deadline (`None`), never later.

use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

/// A mutex with `lock_for`.
pub struct TimedMutex<T> {
    inner: Mutex<T>,
    /// Guards the check-then-wait of waiters against a release in between.
    turn: Mutex<()>,
    released: Condvar,
}

/// The lock, held; released (and a waiter woken) when dropped.
pub struct TimedGuard<'a, T> {
    guard: Option<MutexGuard<'a, T>>,
    owner: &'a TimedMutex<T>,
}

impl<T> TimedMutex<T> {
    pub fn new(value: T) -> TimedMutex<T> {
        TimedMutex {
            inner: Mutex::new(value),
            turn: Mutex::new(()),
            released: Condvar::new(),
        }
    }

    /// The lock now, or None when someone holds it.
    pub fn try_lock(&self) -> Option<TimedGuard<'_, T>> {
        match self.inner.try_lock() {
            Ok(g) => Some(self.guard(g)),
            Err(TryLockError::Poisoned(p)) => Some(self.guard(p.into_inner())),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// The lock, waiting as long as it takes.
    pub fn lock(&self) -> TimedGuard<'_, T> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        self.guard(g)
    }

    /// The lock, waiting at most `wait`.
    pub fn lock_for(&self, wait: Duration) -> Option<TimedGuard<'_, T>> {
        let deadline = Instant::now() + wait;
        let mut turn = self.turn.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(g) = self.try_lock() {
                return Some(g);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            turn = self
                .released
                .wait_timeout(turn, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn guard<'a>(&'a self, g: MutexGuard<'a, T>) -> TimedGuard<'a, T> {
        TimedGuard {
            guard: Some(g),
            owner: self,
        }
    }
}

impl<T> std::ops::Deref for TimedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.guard.as_ref().expect("held until dropped")
    }
}

impl<T> std::ops::DerefMut for TimedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.guard.as_mut().expect("held until dropped")
    }
}

impl<T> Drop for TimedGuard<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let _turn = self.owner.turn.lock().unwrap_or_else(|p| p.into_inner());
        self.owner.released.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_waiter_gets_the_lock_when_released_and_gives_up_at_its_deadline() {
        let m = Arc::new(TimedMutex::new(0u32));
        let held = m.lock();
        assert!(m.try_lock().is_none());
        let t = Instant::now();
        assert!(m.lock_for(Duration::from_millis(50)).is_none());
        assert!(t.elapsed() >= Duration::from_millis(50));
        let waiter = {
            let m = m.clone();
            std::thread::spawn(move || {
                let mut g = m
                    .lock_for(Duration::from_secs(10))
                    .expect("released in time");
                *g += 1;
            })
        };
        drop(held);
        waiter.join().unwrap();
        assert_eq!(*m.lock(), 1);
    }

    #[test]
    fn many_waiters_each_get_a_turn() {
        let m = Arc::new(TimedMutex::new(0u32));
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let m = m.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        *m.lock_for(Duration::from_secs(10)).expect("a turn") += 1;
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.lock(), 1600);
    }
}
