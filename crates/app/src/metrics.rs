//! Prometheus text format for node_exporter's textfile collector (`flush --metrics-file`).
//!
//! Invariant: the file is replaced atomically, so the collector never reads half of it; counters
//! count since the flusher started (Prometheus handles the reset at a restart).

use std::fmt::Write as _;

use statusrelay_spool::Stats;

/// What a flush run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushReport {
    pub sent: usize,
    pub skipped: usize,
    pub superseded: usize,
    pub retried: usize,
    pub dead: usize,
    /// Time spent on deliveries that reached the page, for the latency metric.
    pub sent_micros: u128,
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(
        out,
        "# HELP statusrelay_{name} {help}\n# TYPE statusrelay_{name} {kind}"
    );
    for (labels, v) in samples {
        let _ = writeln!(out, "statusrelay_{name}{labels} {v}");
    }
}

/// On PostgreSQL: whether this instance writes the page, and under which term (0: none).
pub fn writer(instance: &str, term: Option<i64>) -> String {
    let mut out = String::new();
    let label = format!(
        "{{instance=\"{}\"}}",
        instance.replace(['"', '\\', '\n'], "_")
    );
    metric(
        &mut out,
        "writer",
        "gauge",
        "1 while this instance writes the page (it holds the lease), else 0.",
        &[(&label, if term.is_some() { 1.0 } else { 0.0 })],
    );
    metric(
        &mut out,
        "writer_term",
        "gauge",
        "The term this instance writes under; 0 while it follows.",
        &[(&label, term.unwrap_or(0) as f64)],
    );
    out
}

/// The metrics text for the spool's stats and this run's report.
pub fn render(s: &Stats, r: &FlushReport, up: bool, now_ms: i64) -> String {
    let mut out = String::new();
    metric(
        &mut out,
        "flusher_up",
        "gauge",
        "1 while the flusher runs, 0 after a clean stop.",
        &[("", if up { 1.0 } else { 0.0 })],
    );
    metric(
        &mut out,
        "queue_pending",
        "gauge",
        "Deliveries waiting, held ones included.",
        &[("", (s.pending + s.sending) as f64)],
    );
    metric(
        &mut out,
        "queue_held",
        "gauge",
        "Deliveries held back by maintenance or a human's incident.",
        &[("", s.held as f64)],
    );
    metric(
        &mut out,
        "queue_dead",
        "gauge",
        "Dead-lettered deliveries waiting for replay.",
        &[("", s.dead as f64)],
    );
    metric(
        &mut out,
        "rejected_events",
        "gauge",
        "Events that could not be mapped, waiting for replay --rejected.",
        &[("", s.rejected_events as f64)],
    );
    let age = s
        .oldest_pending_at
        .map(|t| ((now_ms - t).max(0) as f64) / 1000.0)
        .unwrap_or(0.0);
    metric(
        &mut out,
        "oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest waiting delivery.",
        &[("", age)],
    );
    metric(
        &mut out,
        "deliveries_total",
        "counter",
        "Decisions of this flusher since it started, by outcome.",
        &[
            ("{outcome=\"sent\"}", r.sent as f64),
            ("{outcome=\"skipped\"}", r.skipped as f64),
            ("{outcome=\"coalesced\"}", r.superseded as f64),
            ("{outcome=\"retried\"}", r.retried as f64),
            ("{outcome=\"dead\"}", r.dead as f64),
        ],
    );
    let _ = writeln!(
        out,
        "# HELP statusrelay_delivery_duration_seconds Time to deliver a state the page accepted.\n# TYPE statusrelay_delivery_duration_seconds summary"
    );
    let _ = writeln!(
        out,
        "statusrelay_delivery_duration_seconds_sum {}",
        r.sent_micros as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "statusrelay_delivery_duration_seconds_count {}",
        r.sent
    );
    if let Some(t) = s.last_success_at {
        metric(
            &mut out,
            "last_success_timestamp_seconds",
            "gauge",
            "When the page last accepted a delivery.",
            &[("", t as f64 / 1000.0)],
        );
    }
    out
}
