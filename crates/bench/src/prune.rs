//! `--prune N`: how long retention holds the spool's write lock with N expired events, the
//! batched prune the flusher runs against the baseline of deleting them all in one transaction
//! (what the flusher did before issue 13), both on copies of the same file.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use statusrelay_core::time::{Clock, SystemClock};
use statusrelay_spool::{PRUNE_BATCH, Spool};

pub fn prune(dir: &Path, n: usize) {
    let src = dir.join("prune.db");
    drop(Spool::open(&src, Arc::new(SystemClock)).unwrap());
    crate::prefill(&src, n);
    let copy = |name: &str| {
        let p = dir.join(name);
        std::fs::copy(&src, &p).unwrap();
        p
    };
    let one = copy("prune-one.db");
    let batched = copy("prune-batched.db");
    let keep = Duration::from_secs(3600);

    // Baseline: the same rows deleted in one transaction.
    let c = rusqlite::Connection::open(&one).unwrap();
    let t = Instant::now();
    let cutoff = SystemClock.now_ms() - keep.as_millis() as i64;
    let removed = c
        .execute("DELETE FROM events WHERE received_at < ?1", [cutoff])
        .unwrap();
    let whole = t.elapsed();
    assert_eq!(removed, n);

    let mut s = Spool::open(&batched, Arc::new(SystemClock)).unwrap();
    let (mut longest, mut batches, mut total) = (Duration::ZERO, 0, 0);
    let t = Instant::now();
    loop {
        let p = s.prune_batch(keep, u64::MAX, PRUNE_BATCH).unwrap();
        longest = longest.max(p.held);
        batches += 1;
        total += p.events;
        if !p.more {
            break;
        }
    }
    let elapsed = t.elapsed();
    assert_eq!(total, n);
    println!("prune of {n} expired events ({PRUNE_BATCH} rows a batch):");
    println!(
        "  baseline, one transaction: lock held {:.0} ms",
        whole.as_secs_f64() * 1000.0
    );
    println!(
        "  batched: {batches} transactions, longest lock hold {:.1} ms ({:.4}x the baseline), {:.0} ms of work in all",
        longest.as_secs_f64() * 1000.0,
        longest.as_secs_f64() / whole.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0
    );
}
