//! The aggregator's HTTP side: its routes, the gate's middleware, and every refusal as a
//! typed answer.
//!
//! Invariants:
//! - Routes: `POST /v1/reports` (a node's statusrelay), `POST /collector` (a node's Monit),
//!   `GET /ready` (load balancers); anything else is a JSON 404 or 405 naming them.
//! - Every refusal is a [`Refusal`]: its status, what is wrong (`error`) and what to do
//!   (`fix`) as JSON, and `Retry-After` from its own field, never read back out of a message.
//! - The gate (`auth`) runs on the headers, before any body is read or the spool is taken; a
//!   request it admits holds its share of the body budget until it is answered.
//! - A whole request (headers and body) is bounded by `request_timeout` (408).
//! - The spool's work runs on the worker that took the request, marked blocking (see
//!   `Ingest::with_spool_within`); only its answer is built here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::{Ingest, auth, listen};

/// Why a request was not taken: one variant per kind of answer, each with what the node's
/// operator needs to act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the body is not what the endpoint takes (not the relay format, a Monit document
    /// without its collected time, a failing test said to be operational).
    Malformed(String),
    /// 401: no credential, an unknown node or a wrong secret (one answer for all three).
    Unauthenticated { error: String, fix: &'static str },
    /// 403: the node's credential does not allow it to feed the component.
    Forbidden { node: String, component: String },
    /// 404: no such endpoint (the path as a log line may carry it).
    NotFound { path: String },
    /// 405: the endpoint exists, not with this method.
    WrongMethod { method: String, path: String },
    /// 408: the request (headers and body) took longer than `[serve] request_timeout`.
    Timeout,
    /// 409: two reporters use one node's credential; said with both peers.
    Conflict(String),
    /// 413: the body is over `[serve] max_body` (as declared, when it was).
    TooLarge {
        declared: Option<u64>,
        max_body: usize,
    },
    /// The body could not be read (broken off): the status hyper gave it.
    Unreadable { status: StatusCode, error: String },
    /// 422: well formed, and refused for what it says (an unknown component, too many failing
    /// tests, a mark far ahead of the aggregator's clock); the message says what to do.
    Unprocessable(String),
    /// 429: too many failed authentications from the address, or the node over its rate.
    TooMany {
        error: String,
        fix: &'static str,
        retry_after: u64,
    },
    /// 503: the aggregator is busy (the spool held by other requests, the body budget spent);
    /// nothing is wrong with the request, which comes back after `retry_after` seconds.
    Busy {
        error: String,
        fix: &'static str,
        retry_after: u64,
    },
    /// 503: the spool failed; its connection is dropped, and the next request opens it
    /// afresh.
    SpoolFailed(String),
}

/// The endpoints, as a wrong URL's answer names them.
const ENDPOINTS: &str = "POST /v1/reports (a node's statusrelay, [backend] kind = \"relay\" with url = the aggregator's base URL) or POST /collector (Monit: set mmonit https://NODE:SECRET@HOST:PORT/collector)";

impl Refusal {
    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
            Refusal::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden { .. } => StatusCode::FORBIDDEN,
            Refusal::NotFound { .. } => StatusCode::NOT_FOUND,
            Refusal::WrongMethod { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::Timeout => StatusCode::REQUEST_TIMEOUT,
            Refusal::Conflict(_) => StatusCode::CONFLICT,
            Refusal::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Unreadable { status, .. } => *status,
            Refusal::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::Busy { .. } | Refusal::SpoolFailed(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Seconds after which the request may come back (`Retry-After`), where it may.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Refusal::TooMany { retry_after, .. } | Refusal::Busy { retry_after, .. } => {
                Some(*retry_after)
            }
            Refusal::SpoolFailed(_) => Some(1),
            _ => None,
        }
    }

    /// Does this refusal mean the spool's connection is broken (it is dropped and reopened)?
    pub fn drops_spool(&self) -> bool {
        matches!(self, Refusal::SpoolFailed(_))
    }

    /// The spool's turn did not come within the request's time (other reports held it): the
    /// same answer whether the request waited for the lock or for the group's commit.
    pub fn busy() -> Refusal {
        Refusal::Busy {
            error: "the aggregator is busy with other reports".into(),
            fix: "retry after the time given",
            retry_after: 1,
        }
    }

    /// A spool error met while answering a request: said as such to the node, whose
    /// operator can do nothing but send again (the aggregator's log has the error).
    pub fn spool(what: &str) -> Refusal {
        Refusal::SpoolFailed(what.to_string())
    }

    /// What is wrong.
    pub fn error(&self) -> String {
        match self {
            Refusal::Malformed(m)
            | Refusal::Conflict(m)
            | Refusal::Unprocessable(m)
            | Refusal::SpoolFailed(m) => m.clone(),
            Refusal::Unauthenticated { error, .. }
            | Refusal::Unreadable { error, .. }
            | Refusal::TooMany { error, .. }
            | Refusal::Busy { error, .. } => error.clone(),
            Refusal::Forbidden { node, component } => {
                format!("node {node} may not feed {component:?}")
            }
            Refusal::NotFound { path } => format!("no such endpoint: {}", auth::shown(path)),
            Refusal::WrongMethod { method, path } => {
                format!("{method} is not accepted at {}", auth::shown(path))
            }
            Refusal::Timeout => "the request took longer than [serve] request_timeout".into(),
            Refusal::TooLarge {
                declared: Some(len),
                max_body,
            } => format!("the body is {len} bytes, over [serve] max_body = {max_body} bytes"),
            Refusal::TooLarge { max_body, .. } => {
                format!("the body is over [serve] max_body = {max_body} bytes")
            }
        }
    }

    /// What to do, where the error does not already say it.
    pub fn fix(&self) -> Option<&'static str> {
        match self {
            Refusal::Unauthenticated { fix, .. }
            | Refusal::TooMany { fix, .. }
            | Refusal::Busy { fix, .. } => Some(fix),
            Refusal::Malformed(_) => Some(
                "send what the endpoint takes: the relay format (docs/fleet.md) at /v1/reports, Monit's status document at /collector",
            ),
            Refusal::Forbidden { .. } => Some(
                "give the node the component on the aggregator (`statusrelay nodes add NAME --component ...`), or take it off the node's config",
            ),
            Refusal::NotFound { .. } | Refusal::WrongMethod { .. } => Some(ENDPOINTS),
            Refusal::Timeout => Some(
                "send the whole request at once; a slow link needs a longer request_timeout on the aggregator",
            ),
            Refusal::TooLarge { .. } => {
                Some("send smaller batches, or raise [serve] max_body on the aggregator")
            }
            Refusal::Unreadable { .. } => Some("send the whole body with its Content-Length"),
            Refusal::SpoolFailed(_) => Some("retry; if it lasts, see the aggregator's log"),
            Refusal::Conflict(_) | Refusal::Unprocessable(_) => None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = match self.fix() {
            Some(fix) => json!({ "error": self.error(), "fix": fix }),
            None => json!({ "error": self.error() }),
        };
        let mut r = (
            self.status(),
            [(header::CONTENT_TYPE, "application/json")],
            format!("{body}\n"),
        )
            .into_response();
        if let Some(secs) = self.retry_after() {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// The aggregator's routes (see the module's invariants).
pub fn router(ingest: Arc<Ingest>) -> Router {
    let serve = ingest.serve.clone();
    let timeout = serve.request_timeout;
    Router::new()
        .route("/v1/reports", post(reports))
        .route("/collector", post(collector))
        .route_layer(middleware::from_fn_with_state(ingest.clone(), admit))
        .route("/ready", get(ready))
        .fallback(|req: Request| async move {
            Refusal::NotFound {
                path: req.uri().path().to_string(),
            }
        })
        .method_not_allowed_fallback(|req: Request| async move {
            Refusal::WrongMethod {
                method: req.method().to_string(),
                path: req.uri().path().to_string(),
            }
        })
        .layer(DefaultBodyLimit::max(serve.max_body))
        .layer(middleware::from_fn(
            move |req: Request, next: Next| async move {
                // The body is read inside `next`: a client that trickles it is cut off too.
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(r) => r,
                    Err(_) => Refusal::Timeout.into_response(),
                }
            },
        ))
        .with_state(ingest)
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
    let admitted = st
        .gate
        .admit(
            req.headers(),
            peer.ip(),
            st.clock.now_ms(),
            st.serve.request_timeout / 2,
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
        Err(refusal) => refusal.into_response(),
    }
}

/// A body that could not be read: over `max_body` (a body sent without a declared length),
/// or broken off.
fn unread(st: &Ingest, e: axum::extract::rejection::BytesRejection) -> Refusal {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Refusal::TooLarge {
            declared: None,
            max_body: st.serve.max_body,
        }
    } else {
        Refusal::Unreadable {
            status: e.status(),
            error: format!("the body could not be read: {e}"),
        }
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
        Refusal::SpoolFailed("the spool cannot be opened".into()).into_response()
    }
}

async fn reports(
    State(st): State<Arc<Ingest>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(AdmittedNode(name)): axum::Extension<AdmittedNode>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Refusal> {
    let body = body.map_err(|e| unread(&st, e))?;
    let ack = st.relay(&name, &body, peer)?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(&ack).unwrap_or_default(),
    )
        .into_response())
}

async fn collector(
    State(st): State<Arc<Ingest>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(AdmittedNode(name)): axum::Extension<AdmittedNode>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<StatusCode, Refusal> {
    let body = body.map_err(|e| unread(&st, e))?;
    st.collect(&name, &body, peer)?;
    // Monit wants a 2xx and nothing else.
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_comes_from_the_refusal_never_from_its_words() {
        let busy = Refusal::Busy {
            error: "retry after 1 s".into(),
            fix: "retry",
            retry_after: 7,
        };
        let r = busy.clone().into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        assert!(!busy.drops_spool(), "a busy aggregator keeps its spool");
        assert!(Refusal::spool("x").drops_spool());
        assert_eq!(Refusal::spool("x").retry_after(), Some(1));
        let conflict = Refusal::Conflict("two reporters".into()).into_response();
        assert_eq!(conflict.status(), StatusCode::CONFLICT);
        assert!(conflict.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn every_kind_of_refusal_says_what_to_do() {
        let all = [
            Refusal::Malformed("x".into()),
            Refusal::Forbidden {
                node: "db1".into(),
                component: "web".into(),
            },
            Refusal::NotFound { path: "/x".into() },
            Refusal::WrongMethod {
                method: "GET".into(),
                path: "/collector".into(),
            },
            Refusal::Timeout,
            Refusal::TooLarge {
                declared: None,
                max_body: 10,
            },
            Refusal::spool("the spool is unavailable"),
        ];
        for r in all {
            assert!(r.fix().is_some_and(|f| !f.is_empty()), "{r:?}");
            assert!(!r.error().is_empty(), "{r:?}");
        }
        assert_eq!(
            Refusal::Forbidden {
                node: "db1".into(),
                component: "web".into()
            }
            .error(),
            "node db1 may not feed \"web\""
        );
    }
}
