//! The aggregator's ingest (`statusrelay serve`): the HTTP endpoints nodes report to.
//!
//! Invariants:
//! - Two ways in, one model: `POST /v1/reports` (a node's statusrelay relaying its spool) and
//!   `POST /collector` (a node's Monit pushing its status document, as to M/Monit). Both end in
//!   `Spool::record_reports`, ordered by the node's sequence (a collector document's is the time
//!   Monit collected it, never its arrival).
//! - A node is who its credential says (HTTP basic auth: node name and secret, checked against
//!   the stored hash); nothing in a body names a node. An unknown node or a wrong secret is 401,
//!   logged with the peer's address, never with the secret.
//! - A batch is checked whole before anything is applied (every component known to the
//!   aggregator and allowed to the node, every state a failure), then applied in one
//!   transaction; the answer (200) is sent only after that commit. A report older than the
//!   node's last applied one is acknowledged and changes nothing.
//! - Order within one reporter (a relaying spool's id, a Monit's id and incarnation): a new
//!   reporter starts a new sequence; two live ones alternating on one credential are refused
//!   (409) and logged once with both peers; a mark more than `MAX_AHEAD_MS` ahead of the
//!   aggregator's clock is refused (422). Every refusal is counted for `nodes` and `status`
//!   (see `verdict`).
//! - Silence is judged in memory on the monotonic clock (`statusrelay_core::liveness`), from
//!   this process's start at the earliest; announced periods are clamped, warned once.
//! - Bounded: bodies over `[serve] max_body` are 413, a request (headers and body) taking longer
//!   than `request_timeout` is cut off with 408 (headers alone: the connection is closed, see
//!   `listen`), a node over its rate is 429 with `Retry-After` (see `limit`).
//! - Authentication and every limit run on the headers, before the body is read or the spool
//!   taken (`gate`): a stranger never costs a buffer or the lock.
//! - One connection to the spool serves every request, one at a time, on the worker that took
//!   the request, marked as blocking (`block_in_place`, so the runtime moves its other tasks):
//!   SQLite has one writer anyway, and requests queue on a mutex (`timed`) instead of sleeping
//!   in SQLite's busy handler. A request waits for it, and SQLite for another process's lock, at
//!   most half its `request_timeout`: then 503 with `Retry-After`. `/ready` never waits for it.
//!   It is reopened after a spool error or when the file at the path was replaced.

pub mod gate;
pub mod limit;
pub mod listen;
mod timed;
pub mod tls;
mod verdict;

use verdict::Memory;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use statusrelay_core::liveness::Liveness;
use statusrelay_core::mapping::{self, Mapped};
use statusrelay_core::monit_status;
use statusrelay_core::relay::{
    MAX_FAILING_PER_REPORT, MAX_FAILING_PER_REQUEST, RelayAck, RelayBatch,
};
use statusrelay_core::source::{CollectorDocument, EventSource, MonitObservation, RelayedReport};
use statusrelay_core::time::Clock;
use statusrelay_core::{Config, Effect, State as ComponentState, words};
use statusrelay_spool::{
    Apply, Identity, NewEvent, NodeReport, Reported, Snapshot, TestChange, Touch,
};
use std::time::{Duration, Instant};

use crate::spooling::open_spool;
use crate::{error, warn};

/// What every request needs.
pub struct Ingest {
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    /// Authentication and limits, on the headers (see `gate`).
    pub gate: gate::Gate,
    /// Rung after a commit that changed a component: the flusher sends it at once.
    pub doorbell: Arc<crate::doorbell::Doorbell>,
    /// Taken by one request at a time; a request waits for it at most half its
    /// `request_timeout` (then 503 with `Retry-After`).
    shared: timed::TimedMutex<Shared>,
    /// The monotonic origin silence is measured from (see `statusrelay_core::liveness`).
    started: Instant,
}

/// The one connection, and what the aggregator keeps in memory about its nodes.
#[derive(Default)]
struct Shared {
    spool: Option<statusrelay_spool::Spool>,
    memory: Memory,
}

impl Ingest {
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> Ingest {
        let serve = config.serve.clone().unwrap_or_default();
        Ingest {
            gate: gate::Gate::new(config.spool.clone(), &serve),
            doorbell: Arc::new(crate::doorbell::Doorbell::default()),
            config,
            clock,
            shared: timed::TimedMutex::new(Shared::default()),
            started: Instant::now(),
        }
    }

    /// Milliseconds on the monotonic clock since this aggregator started.
    fn mono_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn stale_after(&self) -> u32 {
        self.config.serve.clone().unwrap_or_default().stale_after
    }

    /// Run `f` on the shared connection from a thread outside the runtime (the sweeper),
    /// waiting as long as it takes.
    fn with_spool<T>(
        &self,
        f: impl FnOnce(&mut statusrelay_spool::Spool, &mut Memory) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let mut guard = self.shared.lock();
        self.on_shared(&mut guard, f)
    }

    /// Run `f` on the shared connection for a request: it waits for the connection at most
    /// `wait` (503 after), and SQLite waits for another process's lock at most as long (the
    /// connection's busy timeout), so a held spool is a prompt 503, never a hung request.
    fn with_spool_within<T>(
        &self,
        wait: std::time::Duration,
        f: impl FnOnce(&mut statusrelay_spool::Spool, &mut Memory) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        // Waited for where it is used, on a thread marked blocking (the runtime moves its
        // other tasks): a release wakes the next request directly.
        tokio::task::block_in_place(|| {
            let Some(mut guard) = self.shared.lock_for(wait) else {
                return Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the aggregator is busy with other reports: retry after the time given".into(),
                ));
            };
            self.on_shared(&mut guard, f)
        })
    }

    /// Is the spool open? Never waits: a request holding the connection proves it is.
    pub fn spool_open(&self) -> bool {
        match self.shared.try_lock() {
            Some(g) => g.spool.is_some(),
            None => true,
        }
    }

    /// Ring the flusher's doorbell when a recording changed a component's state.
    fn ring_if_changed(&self, done: &[Reported]) {
        if done
            .iter()
            .any(|r| matches!(r, Reported::Applied(x) if !x.changes.is_empty()))
        {
            self.doorbell.ring();
        }
    }

    /// Open the spool now (at start, before listening), so `/ready` says so at once; the
    /// spool's own error (locked, corrupt, unwritable) for the caller to judge.
    pub fn open_now(&self) -> Result<(), crate::AppError> {
        let mut g = self.shared.lock();
        if g.spool.is_none() {
            g.spool = Some(self.bounded(open_spool(&self.config.spool, self.clock.clone())?));
        }
        Ok(())
    }

    /// The spool with its busy wait bounded by the request's deadline.
    fn bounded(&self, mut spool: statusrelay_spool::Spool) -> statusrelay_spool::Spool {
        let wait = self
            .config
            .serve
            .clone()
            .unwrap_or_default()
            .request_timeout
            / 2;
        if let Err(e) = spool.set_busy_timeout(wait) {
            warn!("could not bound the spool's busy wait: {e}");
        }
        spool
    }

    /// Run `f` on the shared connection, (re)opened as needed; a 503 (the spool failed) drops
    /// it, so the next request opens it afresh.
    fn on_shared<T>(
        &self,
        shared: &mut Shared,
        f: impl FnOnce(&mut statusrelay_spool::Spool, &mut Memory) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let replaced = shared
            .spool
            .as_ref()
            .is_some_and(|s| statusrelay_spool::file_id(&self.config.spool) != s.file_id());
        if shared.spool.is_none() || replaced {
            let spool = open_spool(&self.config.spool, self.clock.clone()).map_err(|e| {
                error!("cannot open the spool: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the aggregator's spool is unavailable; try again".to_string(),
                )
            })?;
            shared.spool = Some(self.bounded(spool));
        }
        let spool = shared.spool.as_mut().expect("opened above");
        if shared.memory.liveness.is_none() {
            // Every node the spool knows counts as heard now: silence while the aggregator
            // itself was down is not the nodes'.
            let nodes = spool.nodes().map_err(|e| {
                error!("cannot read the nodes: {e}");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the aggregator's spool is unavailable; try again".to_string(),
                )
            })?;
            let mut l = Liveness::new(self.stale_after());
            let now = self.mono_ms();
            for n in nodes.iter().filter(|n| n.last_seen_at.is_some()) {
                l.known(&n.name, n.period_ms, n.stale_since.is_some(), now);
            }
            shared.memory.liveness = Some(l);
        }
        let r = f(spool, &mut shared.memory);
        if matches!(&r, Err((StatusCode::SERVICE_UNAVAILABLE, _))) {
            shared.spool = None;
        }
        r
    }

    /// Write what unchanged reports left (the sweeper does, every second, and at shutdown).
    pub fn flush_touches(&self) -> Result<(), crate::AppError> {
        self.with_spool(write_touches)
            .map_err(|(_, e)| crate::AppError::Usage(e))
    }
}

type Pending = std::collections::BTreeMap<String, Touch>;

fn write_touches(spool: &mut statusrelay_spool::Spool, memory: &mut Memory) -> Result<(), Refusal> {
    let pending = &mut memory.pending;
    let touches: Vec<Touch> = pending.values().cloned().collect();
    spool.touch_nodes(&touches).map_err(|e| {
        error!("could not write when nodes were last seen: {e}");
        (StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    })?;
    pending.clear();
    Ok(())
}

/// Record a node's reports, or, when none of them would change anything (the steady state),
/// only note in memory that the node was seen and how new its word is: no event row and no
/// transaction per status document or heartbeat. What is noted is written about once a
/// second, and before anything else is recorded, so the spool's marks are always checked
/// against the newest word. A report not newer than a noted mark goes the recorded way (and is
/// found outdated there).
fn record_or_touch(
    spool: &mut statusrelay_spool::Spool,
    memory: &mut Memory,
    now: i64,
    reports: &[(&NodeReport<'_>, &NewEvent, &[Apply])],
) -> Result<Vec<Reported>, statusrelay_spool::SpoolError> {
    let Some(node) = reports.first().map(|r| r.0.node) else {
        return Ok(Vec::new());
    };
    let pending = &mut memory.pending;
    let covered = |r: &NodeReport<'_>| {
        pending.get(node).is_some_and(|t| match r.snapshot {
            Snapshot::Node(_) => t.whole.is_some_and(|m| m >= r.order),
            Snapshot::Components(cs) => cs
                .iter()
                .any(|c| t.components.iter().any(|(tc, m)| tc == c && *m >= r.order)),
        })
    };
    let mut noop = true;
    for (r, _, applies) in reports {
        if covered(r) || !spool.report_is_noop(r, applies)? {
            noop = false;
            break;
        }
    }
    if !noop {
        let touches: Vec<Touch> = pending.values().cloned().collect();
        spool.touch_nodes(&touches)?;
        pending.clear();
        return spool.record_reports(reports);
    }
    for (r, _, _) in reports {
        let t = pending.entry(node.to_string()).or_insert_with(|| Touch {
            node: node.to_string(),
            at: now,
            via: r.via,
            period_ms: None,
            whole: None,
            components: Vec::new(),
        });
        t.at = now;
        t.via = r.via;
        t.period_ms = r.period_ms.or(t.period_ms);
        let scope = match r.snapshot {
            Snapshot::Node(cs) => {
                t.whole = Some(t.whole.map_or(r.order, |m| m.max(r.order)));
                cs
            }
            Snapshot::Components(cs) => cs,
        };
        for c in scope {
            match t.components.iter_mut().find(|(tc, _)| tc == c) {
                Some((_, m)) => *m = (*m).max(r.order),
                None => t.components.push((c.clone(), r.order)),
            }
        }
    }
    Ok(reports
        .iter()
        .map(|_| Reported::Applied(statusrelay_spool::Recorded::default()))
        .collect())
}

/// The aggregator's routes: `POST /v1/reports` (nodes), `POST /collector` (Monit), `GET
/// /ready` (load balancers); anything else is a JSON 404 or 405 naming them.
pub fn router(ingest: Arc<Ingest>) -> Router {
    let serve = ingest.config.serve.clone().unwrap_or_default();
    let timeout = serve.request_timeout;
    Router::new()
        .route("/v1/reports", post(reports))
        .route("/collector", post(collector))
        .route_layer(middleware::from_fn_with_state(ingest.clone(), admit))
        .route("/ready", get(ready))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(serve.max_body))
        .layer(middleware::from_fn(
            move |req: Request, next: Next| async move {
                // The body is read inside `next`: a client that trickles it is cut off too.
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(r) => r,
                    Err(_) => answer_with(
                        StatusCode::REQUEST_TIMEOUT,
                        "the request took longer than [serve] request_timeout",
                        "send the whole request at once; a slow link needs a longer request_timeout on the aggregator",
                    ),
                }
            },
        ))
        .with_state(ingest)
}

/// The endpoints, as a wrong URL's answer names them.
const ENDPOINTS: &str = "POST /v1/reports (a node's statusrelay, [backend] kind = \"relay\" with url = the aggregator's base URL) or POST /collector (Monit: set mmonit https://NODE:SECRET@HOST:PORT/collector)";

async fn not_found(req: Request) -> Response {
    answer_with(
        StatusCode::NOT_FOUND,
        &format!("no such endpoint: {}", gate::shown(req.uri().path())),
        ENDPOINTS,
    )
}

async fn wrong_method(req: Request) -> Response {
    answer_with(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!(
            "{} is not accepted at {}",
            req.method(),
            gate::shown(req.uri().path())
        ),
        ENDPOINTS,
    )
}

/// The node a request's credential named, once the gate let it in.
#[derive(Clone)]
struct AdmittedNode(String);

/// The gate, before any body is read: a refusal is answered at once; an admitted request
/// holds its share of the body budget until it is answered.
async fn admit(
    State(st): State<Arc<Ingest>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    conn: Option<axum::Extension<Arc<listen::Conn>>>,
    mut req: Request,
    next: Next,
) -> Response {
    let serve = st.config.serve.clone().unwrap_or_default();
    let admitted = st
        .gate
        .admit(
            req.headers(),
            peer.ip(),
            st.clock.now_ms(),
            serve.request_timeout / 2,
        )
        .await;
    match admitted {
        Ok(a) => {
            if let Some(axum::Extension(c)) = conn {
                c.authenticated();
            }
            req.extensions_mut().insert(AdmittedNode(a.node));
            let response = next.run(req).await;
            drop(a.permit);
            response
        }
        Err(t) => {
            let mut r = answer_with(t.status, &t.error, t.fix);
            if let Some(secs) = t.retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            }
            r
        }
    }
}

/// A JSON answer: what is wrong (`error`) and what to do (`fix`).
fn answer_with(status: StatusCode, error: &str, fix: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{}\n", json!({ "error": error, "fix": fix })),
    )
        .into_response()
}

fn answer(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{}\n", json!({ "error": message })),
    )
        .into_response()
}

/// A body that could not be read: over `max_body` (a body sent without a declared length),
/// or broken off.
fn unread(st: &Ingest, e: axum::extract::rejection::BytesRejection) -> Response {
    let max = st.config.serve.clone().unwrap_or_default().max_body;
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        answer_with(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is over [serve] max_body = {max} bytes"),
            "send smaller batches, or raise [serve] max_body on the aggregator",
        )
    } else {
        answer_with(
            e.status(),
            &format!("the body could not be read: {e}"),
            "send the whole body with its Content-Length",
        )
    }
}

async fn ready(State(st): State<Arc<Ingest>>) -> Response {
    // Never waits on the spool: a request holding it proves it open.
    if st.spool_open() {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{\"ready\":true}\n",
        )
            .into_response()
    } else {
        answer_with(
            StatusCode::SERVICE_UNAVAILABLE,
            "the spool cannot be opened",
            "see the aggregator's log",
        )
    }
}

async fn reports(
    State(st): State<Arc<Ingest>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(AdmittedNode(name)): axum::Extension<AdmittedNode>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return unread(&st, e),
    };
    let wait = st.config.serve.clone().unwrap_or_default().request_timeout / 2;
    let done = st.with_spool_within(wait, |spool, memory| {
        st.ingest(spool, memory, &name, &body, peer)
    });
    answered(done, |ack| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&ack).unwrap_or_default(),
        )
            .into_response()
    })
}

async fn collector(
    State(st): State<Arc<Ingest>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(AdmittedNode(name)): axum::Extension<AdmittedNode>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) => return unread(&st, e),
    };
    // Monit wants a 2xx and nothing else.
    let wait = st.config.serve.clone().unwrap_or_default().request_timeout / 2;
    let done = st.with_spool_within(wait, |spool, memory| {
        st.collect(spool, memory, &name, &body, peer)
    });
    answered(done, |()| StatusCode::OK.into_response())
}

/// The answer to a request's spool work; a refusal becomes its JSON answer (a 503 with
/// `Retry-After`).
fn answered<T>(work: Result<T, Refusal>, done: impl FnOnce(T) -> Response) -> Response {
    match work {
        Ok(t) => done(t),
        Err((status, message)) => {
            let mut r = answer(status, &message);
            if status == StatusCode::SERVICE_UNAVAILABLE {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(1u64));
            }
            r
        }
    }
}

type Refusal = (StatusCode, String);

impl Ingest {
    /// Find the nodes that went silent past `[serve] stale_after` periods, on the monotonic
    /// clock and never before that many periods since the aggregator started; each is logged
    /// once and recomputes the components it feeds (see `Spool::apply_silence`).
    pub fn sweep(&self) -> Result<(), crate::AppError> {
        // Refusals counted in a minute now over are said first (no spool needed).
        self.gate.flush_log();
        let stale_after = self.stale_after();
        let rule_of = |c: &str| self.config.node_rule(c);
        let now = self.mono_ms();
        let swept = self
            .with_spool(|spool, memory| {
                // The nodes' last-seen times first, as `nodes` shows them, and what the gate
                // refused them.
                write_touches(spool, memory)?;
                let refused = self.gate.take_refusals();
                if !refused.is_empty() {
                    spool
                        .note_refusals(&refused)
                        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
                }
                let Some(live) = memory.liveness.as_mut() else {
                    return Ok(Vec::new());
                };
                let due = live.due(now);
                let swept = spool
                    .apply_silence(&due, &rule_of)
                    .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
                // Settled whether or not the spool had the node (one forgotten meanwhile is
                // passed over there), so a verdict is never made twice.
                for d in &due {
                    live.settle(&d.node);
                }
                Ok(swept)
            })
            .map_err(|(_, e)| crate::AppError::Usage(e))?;
        if swept.iter().any(|c| !c.recorded.changes.is_empty()) {
            self.doorbell.ring();
        }
        for c in &swept {
            let changed: Vec<String> = c
                .recorded
                .changes
                .iter()
                .map(|x| format!("{} now {}", x.component, x.to))
                .collect();
            let ms = |v: u64| statusrelay_core::duration::format(Duration::from_millis(v));
            warn!(
                "node {} is stale: not heard from for {}, over {stale_after} periods of {}{}{}",
                c.node,
                ms(c.silent_ms as u64),
                ms(c.period_ms as u64),
                if changed.is_empty() { "" } else { "; " },
                changed.join(", ")
            );
        }
        Ok(())
    }

    /// The node the gate let in (its credential checked there, before the body), as the
    /// spool has it now; 401 if it was forgotten in between. A stale node is back with any
    /// report it makes (the report clears the mark): said here, once for both ways in.
    fn authenticate(
        &self,
        spool: &statusrelay_spool::Spool,
        name: &str,
        peer: SocketAddr,
    ) -> Result<statusrelay_spool::Node, Refusal> {
        let node = spool.node(name).map_err(|e| {
            error!("cannot read the nodes for a report from {peer}: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the aggregator's spool is unavailable; try again".to_string(),
            )
        })?;
        let Some(node) = node else {
            warn!("{peer}: a report as node {name} refused (401): forgotten meanwhile");
            return Err((
                StatusCode::UNAUTHORIZED,
                "unknown node or wrong secret".into(),
            ));
        };
        if node.stale_since.is_some() {
            crate::info!("node {} reports again: no longer stale", node.name);
        }
        Ok(node)
    }

    /// A status document a node's Monit pushed: the node's whole truth at the time Monit
    /// collected it, where Monit has a word (`ServiceStatus::speaks`: a service initialising
    /// or not monitored keeps its rows). Documents are ordered by that time within one Monit
    /// incarnation, never by arrival, so a queued older one re-sent after an outage changes
    /// nothing; a new incarnation (Monit restarted, its clock maybe set back) starts anew. The
    /// document's Monit credentials are never stored, logged or echoed: only what it says of
    /// each service is kept.
    fn collect(
        &self,
        spool: &mut statusrelay_spool::Spool,
        memory: &mut Memory,
        name: &str,
        body: &[u8],
        peer: SocketAddr,
    ) -> Result<(), Refusal> {
        let node = self.authenticate(spool, name, peer)?;
        let status = monit_status::parse(body).map_err(|e| {
            warn!(
                "{peer}: node {}: a collector document refused (400): {e}",
                node.name
            );
            (StatusCode::BAD_REQUEST, e.to_string())
        })?;
        let Some(seq) = status.collected_us() else {
            return Err((
                StatusCode::BAD_REQUEST,
                "no <collected_sec> in the document: it cannot be ordered".into(),
            ));
        };
        self.refuse_ahead(
            spool,
            memory,
            &node.name,
            seq / 1000,
            "Monit clock (the document's collected time)",
            "set the node's clock right (NTP); its documents are taken again from the next one collected in time",
        )?;
        let mut applies = Vec::new();
        let mut seen = Vec::new();
        let mut feeds: Vec<String> = Vec::new();
        let mut keep: Vec<String> = Vec::new();
        let mut unrouted: Vec<(String, String)> = Vec::new();
        for svc in &status.services {
            let routes: Vec<_> = self
                .config
                .route(&svc.name)
                .into_iter()
                .filter(|comp| {
                    node.components
                        .as_ref()
                        .is_none_or(|only| only.contains(&comp.name))
                })
                .collect();
            // What the node feeds does not depend on Monit's word now: a service initialising
            // still feeds its components, so they are not dropped from the node.
            for comp in &routes {
                if !feeds.contains(&comp.name) {
                    feeds.push(comp.name.clone());
                }
            }
            if !svc.speaks() {
                keep.push(svc.name.clone());
                continue;
            }
            seen.push(MonitObservation {
                service: svc.name.clone(),
                kind: svc.kind,
                status: svc.status,
                host: node.name.clone(),
            });
            let failing = svc.failing();
            if routes.is_empty() && !failing.is_empty() {
                unrouted.push((svc.name.clone(), failing.join(",")));
            }
            for comp in routes {
                for fam in &failing {
                    let Mapped::State(state) =
                        mapping::state_for(fam, &comp.mapping.0, &self.config.mapping.0)
                    else {
                        continue;
                    };
                    applies.push(Apply {
                        component: comp.name.clone(),
                        rule: comp.nodes,
                        host: node.name.clone(),
                        service: svc.name.clone(),
                        test: fam.to_string(),
                        change: TestChange::Fail(state),
                        // Monit's words come with the event that reported the failure;
                        // later documents have none, and the row keeps the first ones.
                        description: status.failure_said(&svc.name, fam).and_then(words::said),
                    });
                }
            }
        }
        if applies.len() > MAX_FAILING_PER_REQUEST {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the document has {} failing tests, more than {MAX_FAILING_PER_REQUEST}: check the node's monitrc and the aggregator's components",
                    applies.len()
                ),
            ));
        }
        let ev = NewEvent {
            host: Some(node.name.clone()),
            description: Some(format!(
                "{}'s Monit reports {} failing test(s)",
                node.name,
                applies.len()
            )),
            ..NewEvent::new(
                "collector",
                EventSource::Collector {
                    collector: CollectorDocument {
                        node: node.name.clone(),
                        collected_us: seq,
                        services: seen,
                    },
                },
            )
        };
        let rule_of = |c: &str| self.config.node_rule(c);
        let period_ms = self.period(
            memory,
            &node.name,
            status.poll_secs.map(|p| i64::from(p) * 1000),
        );
        let reporter = format!(
            "monit:{}:{}",
            status.id.as_deref().unwrap_or("-"),
            status.incarnation.as_deref().unwrap_or("-")
        );
        let peer_ip = peer.ip().to_string();
        let report = NodeReport {
            node: &node.name,
            // Monit's collected time orders documents; no epoch: the reporter (Monit's id and
            // incarnation) is the sequence.
            order: (0, seq),
            snapshot: Snapshot::Node(&feeds),
            via: statusrelay_core::nodes::Via::Collector,
            period_ms,
            rule_of: &rule_of,
            keep: &keep,
            identity: Some(Identity {
                reporter: &reporter,
                peer: &peer_ip,
                window_ms: self.window_ms(period_ms),
            }),
        };
        let now = self.clock.now_ms();
        let done =
            record_or_touch(spool, memory, now, &[(&report, &ev, &applies)]).map_err(|e| {
                error!(
                    "a document from node {} ({peer}) was not recorded: {e}",
                    node.name
                );
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not recorded; Monit sends its status again next cycle".into(),
                )
            })?;
        self.ring_if_changed(&done);
        self.settle(spool, memory, &node.name, period_ms, &done)?;
        // Only a document that was taken says what the node's unrouted services are (a
        // conflicting reporter's, refused above, does not).
        self.note_unrouted(spool, memory, &node.name, unrouted);
        crate::debug!(
            "{peer}: node {}: status document of {} µs, {} failing test(s){}: {}",
            node.name,
            seq,
            applies.len(),
            if keep.is_empty() {
                String::new()
            } else {
                format!(", no word on {} (kept)", keep.join(", "))
            },
            if matches!(done.first(), Some(Reported::Outdated { .. })) {
                "outdated"
            } else {
                "applied"
            }
        );
        Ok(())
    }

    /// Check a batch whole, then apply it in one transaction; the answer once it is committed.
    fn ingest(
        &self,
        spool: &mut statusrelay_spool::Spool,
        memory: &mut Memory,
        name: &str,
        body: &[u8],
        peer: SocketAddr,
    ) -> Result<RelayAck, Refusal> {
        let node = self.authenticate(spool, name, peer)?;
        let name = node.name.clone();
        let batch: RelayBatch = serde_json::from_slice(body).map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("not a report batch (see the relay format): {e}"),
            )
        })?;
        let mut items = Vec::new();
        // Bounded before anything is looked up: one request's work under the spool's lock
        // is bounded, whoever sends it.
        let total: usize = batch.reports.iter().map(|r| r.failing.len()).sum();
        if let Some(r) = batch
            .reports
            .iter()
            .find(|r| r.failing.len() > MAX_FAILING_PER_REPORT)
        {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the report on {:?} has {} failing tests, more than {MAX_FAILING_PER_REPORT} (a test per service and test family): check the node's mapping",
                    r.component,
                    r.failing.len()
                ),
            ));
        }
        if total > MAX_FAILING_PER_REQUEST {
            return Err((
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "the batch has {total} failing tests, more than {MAX_FAILING_PER_REQUEST}: send it in smaller batches"
                ),
            ));
        }
        for r in &batch.reports {
            let comp = self.config.component(&r.component).map_err(|_| {
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "no component named {:?} on the aggregator: add it to the aggregator's config",
                        r.component
                    ),
                )
            })?;
            if let Some(allowed) = &node.components
                && !allowed.contains(&comp.name)
            {
                warn!("{peer}: node {name} may not feed {:?} (403)", comp.name);
                return Err((
                    StatusCode::FORBIDDEN,
                    format!("node {name} may not feed {:?}", comp.name),
                ));
            }
            let mut applies = Vec::new();
            for t in &r.failing {
                if t.state == ComponentState::Operational {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        format!(
                            "{} {}: a failing test cannot be operational",
                            t.service, t.test
                        ),
                    ));
                }
                applies.push(Apply {
                    component: comp.name.clone(),
                    rule: comp.nodes,
                    host: name.clone(),
                    service: t.service.clone(),
                    test: t.test.clone(),
                    change: TestChange::Fail(t.state),
                    description: t.description.as_deref().and_then(words::said),
                });
            }
            items.push((comp.name, r, applies));
        }
        if batch.snapshot
            && let Some(first) = batch.reports.first()
            && batch.reports.iter().any(|r| r.seq != first.seq)
        {
            return Err((
                StatusCode::BAD_REQUEST,
                "a snapshot is one instant of the node: every report in it has the same seq".into(),
            ));
        }
        let event = |reports: Vec<statusrelay_core::relay::RelayReport>, failing: usize| {
            let what = match reports.as_slice() {
                [one] if !batch.snapshot => format!("{:?}", one.component),
                _ => format!("{} components (snapshot)", reports.len()),
            };
            NewEvent {
                host: Some(name.clone()),
                description: Some(format!(
                    "{name} reports {failing} failing test(s) of {what}"
                )),
                effect: Some(if failing == 0 {
                    Effect::Recover
                } else {
                    Effect::Fail
                }),
                ..NewEvent::new(
                    "relay",
                    EventSource::Relay {
                        relay: RelayedReport {
                            node: name.clone(),
                            epoch: batch.epoch,
                            snapshot: batch.snapshot,
                            reports,
                        },
                    },
                )
            }
        };
        self.refuse_ahead(
            spool,
            memory,
            &name,
            batch.epoch,
            "relay epoch (its flusher's start time)",
            "set the node's clock right (NTP); its flusher then starts a new sequence by itself",
        )?;
        let rule_of = |c: &str| self.config.node_rule(c);
        let period_ms = self.period(memory, &name, batch.period_ms);
        let reporter = batch.reporter.as_ref().map(|r| format!("relay:{r}"));
        let peer_ip = peer.ip().to_string();
        let identity = reporter.as_deref().map(|reporter| Identity {
            reporter,
            peer: &peer_ip,
            window_ms: self.window_ms(period_ms),
        });
        let report = |seq: i64, snapshot| NodeReport {
            node: &name,
            order: (batch.epoch, seq),
            snapshot,
            via: statusrelay_core::nodes::Via::Relay,
            period_ms,
            rule_of: &rule_of,
            keep: &[],
            identity,
        };
        let now = self.clock.now_ms();
        let done = if batch.snapshot {
            // The node's whole truth: one report, one event, one transaction.
            let feeds: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
            let applies: Vec<Apply> = items.iter().flat_map(|i| i.2.clone()).collect();
            let seq = batch.reports.first().map_or(0, |r| r.seq);
            let ev = event(batch.reports.clone(), applies.len());
            let r = report(seq, Snapshot::Node(&feeds));
            record_or_touch(spool, memory, now, &[(&r, &ev, &applies)])
        } else {
            let scopes: Vec<Vec<String>> = items.iter().map(|i| vec![i.0.clone()]).collect();
            let evs: Vec<NewEvent> = items
                .iter()
                .map(|i| event(vec![i.1.clone()], i.2.len()))
                .collect();
            let reports: Vec<NodeReport<'_>> = items
                .iter()
                .zip(&scopes)
                .map(|(i, scope)| report(i.1.seq, Snapshot::Components(scope)))
                .collect();
            let refs: Vec<_> = reports
                .iter()
                .zip(&evs)
                .zip(&items)
                .map(|((r, ev), i)| (r, ev, i.2.as_slice()))
                .collect();
            record_or_touch(spool, memory, now, &refs)
        }
        .map_err(|e| {
            error!("a report from node {name} ({peer}) was not recorded: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not recorded; send it again".to_string(),
            )
        })?;
        self.ring_if_changed(&done);
        let outdated_why = self.settle(spool, memory, &name, period_ms, &done)?;
        let mut ack = RelayAck {
            applied: 0,
            outdated: 0,
            outdated_why,
        };
        // A snapshot is acknowledged report by report, as the node counts them.
        let each = if batch.snapshot {
            batch.reports.len()
        } else {
            1
        };
        for d in done {
            match d {
                Reported::Applied(_) => ack.applied += each,
                _ => ack.outdated += each,
            }
        }
        crate::debug!(
            "{peer}: node {name}: {} report(s){}: {} applied, {} outdated",
            batch.reports.len(),
            if batch.snapshot { " (snapshot)" } else { "" },
            ack.applied,
            ack.outdated
        );
        Ok(ack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_read_from_the_header() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!(
                "Basic {}",
                statusrelay_backend::http::base64(b"db1:s3cr:et")
            )
            .parse()
            .unwrap(),
        );
        assert_eq!(gate::basic_auth(&h), Some(("db1".into(), "s3cr:et".into())));
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(gate::basic_auth(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(gate::basic_auth(&h), None);
    }
}
