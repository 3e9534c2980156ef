//! The aggregator benchmarks' loads: what each simulated node sends (Monit status documents
//! of the real captured shape, tests/data/mmonit, and relayed batches), the steady load and
//! the burst as jobs, and the clients that send them, node by node, each request on a new
//! connection (`drive`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::fleet::post;

const OK_DOC: &str = include_str!("../../../tests/data/mmonit/02-status-all-ok.http");
const FAILING_DOC: &str =
    include_str!("../../../tests/data/mmonit/04-status-port-and-program-failed.http");

/// The XML body of a captured request, its collection times moved to `sec`, its poll cycle
/// set to `poll` seconds (how often the simulated node reports).
fn document(capture: &str, sec: i64, poll: u64) -> Vec<u8> {
    let body = &capture[capture.find("<?xml").expect("a captured document")..];
    let body = body.replace("<poll>2</poll>", &format!("<poll>{poll}</poll>"));
    let body = body.as_str();
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(i) = rest.find("<collected_sec>") {
        out.push_str(&rest[..i]);
        out.push_str(&format!("<collected_sec>{sec}</collected_sec>"));
        let end = rest[i..].find("</collected_sec>").expect("closed") + i;
        rest = &rest[end + "</collected_sec>".len()..];
    }
    out.push_str(rest);
    out.into_bytes()
}

/// A relay batch of `n` reports from seq `first`; `failing` decides per report (by its seq)
/// whether backend's connection test fails.
pub(crate) fn batch(
    epoch: i64,
    first: i64,
    n: usize,
    snapshot: bool,
    period_ms: u64,
    failing: impl Fn(i64) -> bool,
) -> Vec<u8> {
    let reports: Vec<String> = (0..n as i64)
        .map(|k| {
            let seq = if snapshot { first } else { first + k };
            let comp = if snapshot && k == 1 || !snapshot && k % 2 == 1 {
                "payments"
            } else {
                "backend"
            };
            let failing = if failing(first + k) {
                r#"[{"service":"backend","test":"connection","state":"major_outage"}]"#
            } else {
                "[]"
            };
            format!(r#"{{"seq":{seq},"component":"{comp}","failing":{failing}}}"#)
        })
        .collect();
    // One reporter id per node, as a node's spool sends it (ids are per node, so one will do).
    format!(
        r#"{{"epoch":{epoch},"period_ms":{period_ms},"snapshot":{snapshot},"reporter":"bench-spool","reports":[{}]}}"#,
        reports.join(",")
    )
    .into_bytes()
}

/// One node's requests (the node's index first), sent in order (as a node's flusher sends
/// them), not before `at`.
pub(crate) type Job = (usize, String, &'static str, Vec<Vec<u8>>, Option<Instant>);

/// Run `jobs` with `threads` clients, node i's to `ports[i % ports.len()]` (several
/// instances: each node reports to one); the latencies of the acknowledged requests, and
/// failures.
pub(crate) fn drive(ports: &[u16], threads: usize, jobs: Vec<Job>) -> (Vec<Duration>, usize) {
    let ports: Arc<[u16]> = ports.into();
    let jobs = Arc::new(Mutex::new(jobs.into_iter().rev().collect::<Vec<_>>()));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..threads)
        .map(|_| {
            let (jobs, lat, failed) = (jobs.clone(), lat.clone(), failed.clone());
            let ports = ports.clone();
            std::thread::spawn(move || {
                loop {
                    let Some((node, auth, path, bodies, at)) = jobs.lock().unwrap().pop() else {
                        return;
                    };
                    let port = ports[node % ports.len()];
                    if let Some(at) = at {
                        let now = Instant::now();
                        if at > now {
                            std::thread::sleep(at - now);
                        }
                    }
                    for body in bodies {
                        let (code, took) = post(port, path, &auth, &body);
                        if code == 200 {
                            lat.lock().unwrap().push(took);
                        } else {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let mut v = std::mem::take(&mut *lat.lock().unwrap());
    v.sort();
    (v, failed.load(Ordering::SeqCst))
}

/// The steady load: `total` submissions over `window` seconds, node by node in turn, half
/// Monit documents, half relayed snapshots. As in a fleet, a node mostly repeats itself: its
/// state changes one submission in 50.
pub(crate) fn steady_jobs(auths: &[String], total: usize, window: u64, poll: u64) -> Vec<Job> {
    let nodes = auths.len();
    let gap = Duration::from_secs(window).as_secs_f64() / total as f64;
    let start = Instant::now() + Duration::from_millis(200);
    // Collection times from the present, one second a round: a document dated ahead of the
    // aggregator's clock by more than its bound is refused, as a real node's would be.
    let now_sec = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    (0..total)
        .map(|i| {
            let node = i % nodes;
            let round = (i / nodes) as i64;
            let at = start + Duration::from_secs_f64(gap * i as f64);
            let down = ((round + node as i64) / 50) % 2 == 1;
            if node.is_multiple_of(2) {
                let cap = if down { FAILING_DOC } else { OK_DOC };
                (
                    node,
                    auths[node].clone(),
                    "/collector",
                    vec![document(cap, now_sec + round, poll)],
                    Some(at),
                )
            } else {
                (
                    node,
                    auths[node].clone(),
                    "/v1/reports",
                    vec![batch(1, round + 1, 2, true, poll * 1000, |_| down)],
                    Some(at),
                )
            }
        })
        .collect()
}

/// The burst: every node at once, `per_node` events each in requests of 10 (a partition
/// heals).
pub(crate) fn burst_jobs(auths: &[String], per_node: usize, poll: u64) -> Vec<Job> {
    auths
        .iter()
        .enumerate()
        .map(|(node, a)| {
            let bodies = (0..per_node / 10)
                .map(|r| {
                    batch(2, (r * 10 + 1) as i64, 10, false, poll * 1000, |seq| {
                        seq % 3 == 0
                    })
                })
                .collect();
            (node, a.clone(), "/v1/reports", bodies, None)
        })
        .collect()
}
