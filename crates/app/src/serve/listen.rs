//! The aggregator's listener: accepts connections, TLS or plain, and hands each to hyper.
//!
//! Invariants:
//! - Bounded: at most `max_connections` connections are served at once (the next waits in the
//!   kernel's backlog); a TLS handshake must finish within `request_timeout`, and so must each
//!   request's headers (hyper's header-read timeout), so a slow client holds one connection
//!   for a bounded time and never a worker.
//! - No HTTP is parsed here: hyper does it, the router (`super::router`) answers.
//! - Shutdown: no new connection is accepted; those open finish the request they are
//!   answering (a graceful close), within `request_timeout`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::tls::Tls;
use crate::{debug, warn};

/// What bounds the listener.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub request_timeout: Duration,
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
    let mut warned_full = false;
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stopped(&stop) => break,
        };
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
        if slots.available_permits() == 0 && !warned_full {
            warn!(
                "{} connections open, the most [serve] max_connections allows: new ones wait",
                limits.max_connections
            );
        }
        warned_full = slots.available_permits() == 0;
        let _ = stream.set_nodelay(true);
        let app = app.clone().layer(axum::Extension(ConnectInfo(peer)));
        let (tls, stop, open) = (tls.clone(), stop.clone(), open.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(tls) => {
                    let acceptor = tls.acceptor();
                    match tokio::time::timeout(limits.request_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => connection(s, app, peer, limits, &stop).await,
                        Ok(Err(e)) => debug!("{peer}: TLS handshake failed: {e}"),
                        Err(_) => debug!("{peer}: TLS handshake took too long; closed"),
                    }
                }
                None => connection(stream, app, peer, limits, &stop).await,
            }
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

async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One connection: HTTP/1.1 with keep-alive, headers bounded in time, closed gracefully at
/// shutdown.
async fn connection<S>(io: S, app: Router, peer: SocketAddr, limits: Limits, stop: &AtomicBool)
where
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
        }
    }
}
