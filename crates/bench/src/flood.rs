//! `--flood N` (with `--ingest`): N unauthenticated requests with 1 MiB bodies from 32
//! clients while a genuine node reports at its rate; its acknowledgement times against the
//! same reports with no flood, measured in the same run, and the aggregator's peak RSS.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::fleet::{base64, cpu_and_peak, post};
use super::jobs::batch;
use super::{ms, pct};

/// A genuine node's acknowledgement times for `n` reports, 20 a second (its rate limit),
/// each a new connection.
fn genuine(port: u16, auth: &str, n: usize, first: i64, poll: u64) -> Vec<Duration> {
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n {
        let at = t0 + Duration::from_millis(50 * i as u64);
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let body = batch(3, first + i as i64, 2, true, poll * 1000, |_| false);
        let (code, took) = post(port, "/v1/reports", auth, &body);
        if code == 200 {
            lat.push(took);
        }
    }
    lat.sort();
    lat
}

/// `--flood N`: N unauthenticated requests with 1 MiB bodies from 32 clients, while a genuine
/// node reports; its latency against the same reports with no flood, in the same run.
pub(crate) fn flood_run(port: u16, pid: u32, auth: &str, n: usize, poll: u64) {
    let alone = genuine(port, auth, 100, 1, poll);
    let (_, before) = cpu_and_peak(pid);
    let sent = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let flooders: Vec<_> = (0..32)
        .map(|_| {
            let sent = sent.clone();
            std::thread::spawn(move || {
                let body = vec![b'x'; 1 << 20];
                let stranger = base64(b"nobody:wrong");
                while sent.fetch_add(1, Ordering::SeqCst) < n {
                    let _ = post(port, "/v1/reports", &stranger, &body);
                }
            })
        })
        .collect();
    let during = genuine(port, auth, 100, 1_000, poll);
    for f in flooders {
        f.join().unwrap();
    }
    let took = t.elapsed();
    let (_, peak) = cpu_and_peak(pid);
    println!(
        "  flood: {n} unauthenticated 1 MiB requests from 32 clients in {:.1} s ({:.0}/s); peak RSS {:.1} MB (before {:.1} MB)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        peak as f64 / 1024.0,
        before as f64 / 1024.0
    );
    println!(
        "  flood: a genuine node's ack p50 {} ms, p99 {} ms during it ({} of 100 taken); alone, same run: p50 {} ms, p99 {} ms; p99 ratio {:.2}x",
        ms(pct(&during, 0.5)),
        ms(pct(&during, 0.99)),
        during.len(),
        ms(pct(&alone, 0.5)),
        ms(pct(&alone, 0.99)),
        pct(&during, 0.99).as_secs_f64() / pct(&alone, 0.99).as_secs_f64().max(1e-9)
    );
}
