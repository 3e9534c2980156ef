//! The aggregator's listener: accepts connections, TLS or plain, and hands each to hyper.
//!
//! Invariants:
//! - Bounded: at most `max_connections` connections are served at once, and at most
//!   `max_connections_per_peer` from one address (an IPv6 /64; its next ones are closed at
//!   once). When every slot is taken, the oldest connection that no node has used (no request
//!   on it passed the gate) and that is not answering a request is closed to make room; only
//!   then does a new one wait in the kernel's backlog. A TLS handshake must finish within
//!   `request_timeout`, and so must each request's headers (hyper's header-read timeout), so
//!   a slow client holds one connection for a bounded time and never a worker.
//! - No HTTP is parsed here: hyper does it, the router (`http::router`) answers.
//! - Shutdown: no new connection is accepted; those open finish the request they are
//!   answering (a graceful close), within `request_timeout`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use crate::tls::Tls;
use crate::{debug, warn};

/// What bounds the listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    pub request_timeout: Duration,
}

/// One connection as the listener tracks it: whose it is, whether a request on it was let in
/// by the gate (then it is a node's), whether it is answering one now, and how to close it.
pub struct Conn {
    peer: IpAddr,
    opened: Instant,
    /// A request on it passed authentication (set by the gate).
    pub authenticated: AtomicBool,
    /// Requests on it being answered now.
    pub busy: AtomicUsize,
    close: Notify,
}

impl Conn {
    /// Mark the connection a node's (the gate let a request on it in).
    pub fn authenticated(&self) {
        self.authenticated.store(true, Ordering::Relaxed);
    }
}

/// The connections open, by id.
#[derive(Default)]
struct Table {
    next: u64,
    open: HashMap<u64, Arc<Conn>>,
    per_peer: HashMap<IpAddr, usize>,
}

impl Table {
    fn add(&mut self, peer: IpAddr) -> (u64, Arc<Conn>) {
        let id = self.next;
        self.next += 1;
        let c = Arc::new(Conn {
            peer,
            opened: Instant::now(),
            authenticated: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            close: Notify::new(),
        });
        self.open.insert(id, c.clone());
        *self.per_peer.entry(peer).or_default() += 1;
        (id, c)
    }

    fn remove(&mut self, id: u64) {
        if let Some(c) = self.open.remove(&id)
            && let Some(n) = self.per_peer.get_mut(&c.peer)
        {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&c.peer);
            }
        }
    }

    /// The oldest connection no node has used and that is not answering a request: the one
    /// to close when every slot is taken.
    fn idle_stranger(&self) -> Option<Arc<Conn>> {
        self.open
            .values()
            .filter(|c| {
                !c.authenticated.load(Ordering::Relaxed) && c.busy.load(Ordering::Relaxed) == 0
            })
            .min_by_key(|c| c.opened)
            .cloned()
    }
}

/// Serve `app` on `listener` until `stop` is set.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<Tls>>,
    limits: Limits,
    stop: Arc<AtomicBool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(tokio::sync::Notify::new());
    let table = Arc::new(Mutex::new(Table::default()));
    let mut warned_full = false;
    let mut capped: HashMap<IpAddr, Instant> = HashMap::new();
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, a connection reset before accept: keep serving.
                    warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&stop) => break,
        };
        let key = crate::auth::peer_key(peer.ip());
        let held = table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .per_peer
            .get(&key)
            .copied()
            .unwrap_or(0);
        if held >= limits.max_connections_per_peer {
            // Said once a minute per peer; the connection is closed unanswered.
            say_capped(&mut capped, key, held);
            continue;
        }
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => {
                warned_full = false;
                p
            }
            Err(_) => {
                if !warned_full {
                    warn!(
                        "{} connections open, the most [serve] max_connections allows: idle ones no node has used are closed first, then new ones wait",
                        limits.max_connections
                    );
                    warned_full = true;
                }
                let victim = table
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .idle_stranger();
                if let Some(v) = victim {
                    debug!("{}: an idle connection closed to make room", v.peer);
                    v.close.notify_one();
                }
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                    _ = stopped(&stop) => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let (id, conn) = table.lock().unwrap_or_else(|p| p.into_inner()).add(key);
        let app = with_conn(&app, peer, conn.clone());
        let (tls, stop, open, table) = (tls.clone(), stop.clone(), open.clone(), table.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(tls) => {
                    let acceptor = tls.acceptor();
                    tokio::select! {
                        r = tokio::time::timeout(limits.request_timeout, acceptor.accept(stream)) => match r {
                            Ok(Ok(s)) => connection(s, app, peer, limits, &stop, &conn).await,
                            Ok(Err(e)) => debug!("{peer}: TLS handshake failed: {e}"),
                            Err(_) => debug!("{peer}: TLS handshake took too long; closed"),
                        },
                        _ = conn.close.notified() => {}
                    }
                }
                None => connection(stream, app, peer, limits, &stop, &conn).await,
            }
            table.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            open.notify_waiters();
        });
    }
    // Let the connections being answered finish, for at most one request's time.
    let deadline = tokio::time::Instant::now() + limits.request_timeout;
    while slots.available_permits() < limits.max_connections
        && tokio::time::Instant::now() < deadline
    {
        let _ = tokio::time::timeout(Duration::from_millis(100), open.notified()).await;
    }
}

/// The router for one connection: the peer and the connection for the handlers, and the mark
/// that it is answering a request (then it is never closed to make room).
fn with_conn(app: &Router, peer: SocketAddr, conn: Arc<Conn>) -> Router {
    app.clone().layer(axum::middleware::from_fn(
        move |mut req: axum::extract::Request, next: axum::middleware::Next| {
            let c = conn.clone();
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut().insert(c.clone());
            async move {
                c.busy.fetch_add(1, Ordering::Relaxed);
                let r = next.run(req).await;
                c.busy.fetch_sub(1, Ordering::Relaxed);
                r
            }
        },
    ))
}

/// Say, once a minute per peer, that a peer holds the most connections it may.
fn say_capped(capped: &mut HashMap<IpAddr, Instant>, key: IpAddr, held: usize) {
    let now = Instant::now();
    if capped
        .get(&key)
        .is_none_or(|t| now.saturating_duration_since(*t) >= Duration::from_secs(60))
    {
        if capped.len() > 4096 {
            capped.clear();
        }
        capped.insert(key, now);
        warn!(
            "{key} holds {held} connections, the most [serve] max_connections_per_peer allows: its next ones are closed"
        );
    }
}

/// Until `stop` is set (looked at every 100 ms).
pub(crate) async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One connection: HTTP/1.1 with keep-alive, headers bounded in time, closed gracefully at
/// shutdown.
async fn connection<S>(
    io: S,
    app: Router,
    peer: SocketAddr,
    limits: Limits,
    stop: &AtomicBool,
    conn_state: &Conn,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!("{peer}: connection ended: {e}");
                }
                return;
            }
            _ = stopped(stop), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            // Closed to make room: idle, and no node's (see `Table::idle_stranger`).
            _ = conn_state.close.notified() => return,
        }
    }
}
