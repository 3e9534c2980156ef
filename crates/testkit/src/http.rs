//! The loopback HTTP server under every fake status page.
//!
//! A fake is an [`Api`]: it routes one request against its own state. This module owns what
//! all fakes share: listening on 127.0.0.1 only, one thread per request (a hung request must not
//! block the next client), injected faults, the record of what arrived, and stop/resume on the
//! same port.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use tiny_http::{Header, Request, Response, Server};

/// One injected fault, consumed by one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// No fault for this request (to aim a later fault at the n-th request).
    Pass,
    /// Answer with this status and the API's error body.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    RateLimit(u64),
    /// Hold the request this long, then answer normally.
    Slow(Duration),
    /// Close the connection without any answer.
    Drop,
}

/// A request as the fake saw it (the token is recorded only as valid or not).
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub url: String,
    pub token_ok: bool,
    pub body: String,
    pub at: Instant,
    pub answered: u16,
    /// Who sent it, as its User-Agent says (`statusrelay/VERSION (instance NAME)`).
    pub agent: Option<String>,
}

/// A request handed to an [`Api`].
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    /// Path and query, as sent.
    pub url: String,
    /// Path without the query, percent-decoded.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    pub body: String,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// Path segments after `prefix` (None when the path is not under it).
    pub fn under<'a>(&'a self, prefix: &str) -> Option<Vec<&'a str>> {
        let rest = self.path.strip_prefix(prefix)?;
        if !rest.is_empty() && !rest.starts_with('/') {
            return None;
        }
        Some(rest.split('/').filter(|s| !s.is_empty()).collect())
    }
}

/// An answer from an [`Api`].
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// One fake status page API.
pub trait Api: Send + 'static {
    /// Answer one request, changing the fake page as the real server would.
    fn route(&mut self, req: &Req) -> Reply;
    /// An error body in this API's own shape, for injected faults.
    fn fault_body(&self, status: u16, text: &str) -> Value;
    /// Does the request carry valid credentials?
    fn token_ok(&self, req: &Req) -> bool;
}

pub struct Core<A> {
    api: A,
    faults: VecDeque<Fault>,
    /// Faults aimed at one route: (method, path without query, fault), used once each.
    route_faults: Vec<(String, String, Fault)>,
    seen: Vec<Seen>,
    /// (method, path) of every request, in order of arrival (before any injected delay).
    arrived: Vec<(String, String)>,
}

/// The fake page, locked.
pub struct ApiGuard<'a, A>(std::sync::MutexGuard<'a, Core<A>>);

impl<A> std::ops::Deref for ApiGuard<'_, A> {
    type Target = A;
    fn deref(&self) -> &A {
        &self.0.api
    }
}

impl<A> std::ops::DerefMut for ApiGuard<'_, A> {
    fn deref_mut(&mut self) -> &mut A {
        &mut self.0.api
    }
}

type Shared<A> = Arc<(Mutex<Core<A>>, Condvar)>;

/// A fake API served on a free loopback port.
pub struct FakeServer<A: Api> {
    port: u16,
    shared: Shared<A>,
    running: Option<(Arc<Server>, JoinHandle<()>)>,
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header")
}

/// Decode %XX and '+' in a URL component.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| {
            b.get(j..j + 2)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        };
        match (b[i], hex(i + 1)) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(v)) => {
                out.push(v);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn handle<A: Api>(shared: &(Mutex<Core<A>>, Condvar), mut req: Request) {
    let mut body = String::new();
    let _ = req.as_reader().read_to_string(&mut body);
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let r = Req {
        method: req.method().as_str().to_string(),
        path: percent_decode(path),
        query: query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect(),
        headers: req
            .headers()
            .iter()
            .map(|h| (h.field.to_string(), h.value.to_string()))
            .collect(),
        url: url.clone(),
        body,
    };
    let fault = {
        let mut s = shared.0.lock().unwrap();
        s.arrived.push((r.method.clone(), path.to_string()));
        shared.1.notify_all();
        match s
            .route_faults
            .iter()
            .position(|(m, p, _)| *m == r.method && *p == path)
        {
            Some(i) => Some(s.route_faults.remove(i).2),
            None => s.faults.pop_front(),
        }
    };
    if fault == Some(Fault::Drop) {
        drop(req.into_writer());
        return;
    }
    if let Some(Fault::Slow(d)) = fault {
        std::thread::sleep(d);
    }
    let reply = {
        let mut s = shared.0.lock().unwrap();
        let reply = match fault {
            Some(Fault::Status(st)) => Reply::json(st, s.api.fault_body(st, "injected fault")),
            Some(Fault::RateLimit(secs)) => {
                Reply::json(429, s.api.fault_body(429, "injected rate limit"))
                    .with_header("Retry-After", &secs.to_string())
            }
            _ => s.api.route(&r),
        };
        let token_ok = s.api.token_ok(&r);
        let agent = r.header("User-Agent").map(str::to_string);
        s.seen.push(Seen {
            method: r.method,
            url: r.url,
            token_ok,
            body: r.body,
            at: Instant::now(),
            answered: reply.status,
            agent,
        });
        shared.1.notify_all();
        reply
    };
    let mut resp = Response::from_string(reply.body)
        .with_status_code(reply.status)
        .with_header(header("Content-Type", "application/json"));
    for (k, v) in &reply.headers {
        resp = resp.with_header(header(k, v));
    }
    let _ = req.respond(resp);
}

impl<A: Api> FakeServer<A> {
    /// Serve `api` on a free loopback port.
    pub fn start(api: A) -> FakeServer<A> {
        let core = Core {
            api,
            faults: VecDeque::new(),
            route_faults: Vec::new(),
            seen: Vec::new(),
            arrived: Vec::new(),
        };
        let mut f = FakeServer {
            port: 0,
            shared: Arc::new((Mutex::new(core), Condvar::new())),
            running: None,
        };
        f.listen();
        f
    }

    fn listen(&mut self) {
        let server =
            Arc::new(Server::http(("127.0.0.1", self.port)).expect("bind a fake on loopback"));
        self.port = server.server_addr().to_ip().expect("ip listener").port();
        let (srv, shared) = (server.clone(), self.shared.clone());
        let thread = std::thread::spawn(move || {
            for req in srv.incoming_requests() {
                let shared = shared.clone();
                std::thread::spawn(move || handle(&shared, req));
            }
        });
        self.running = Some((server, thread));
    }

    /// The base URL to put in the config.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Take the server down: the port refuses connections until [`FakeServer::resume`].
    pub fn stop(&mut self) {
        if let Some((server, thread)) = self.running.take() {
            server.unblock();
            drop(server);
            let _ = thread.join();
        }
    }

    /// Bring the server back on the same port.
    pub fn resume(&mut self) {
        if self.running.is_none() {
            self.listen();
        }
    }

    /// Read or change the fake page (the server waits meanwhile).
    pub fn api(&self) -> ApiGuard<'_, A> {
        ApiGuard(self.shared.0.lock().unwrap())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drop every queued fault.
    pub fn clear_faults(&self) {
        let mut s = self.shared.0.lock().unwrap();
        s.faults.clear();
        s.route_faults.clear();
    }

    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.0.lock().unwrap().faults.extend(faults);
    }

    /// Aim one fault at the next request to `method path` (path without the query string).
    pub fn push_fault_on(&self, method: &str, path: &str, fault: Fault) {
        self.shared
            .0
            .lock()
            .unwrap()
            .route_faults
            .push((method.into(), path.into(), fault));
    }

    /// How many requests to `method path` have arrived (counted before any injected delay).
    pub fn arrived(&self, method: &str, path: &str) -> usize {
        self.shared
            .0
            .lock()
            .unwrap()
            .arrived
            .iter()
            .filter(|(m, p)| m == method && p == path)
            .count()
    }

    /// Requests that arrived so far (counted before any injected delay).
    pub fn arrivals(&self) -> usize {
        self.shared.0.lock().unwrap().arrived.len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.0.lock().unwrap().seen.clone()
    }

    /// Wait until `pred` holds over the requests seen, or the deadline passes.
    pub fn wait_for(&self, deadline: Duration, pred: impl Fn(&[Seen]) -> bool) -> bool {
        let end = Instant::now() + deadline;
        let mut s = self.shared.0.lock().unwrap();
        loop {
            if pred(&s.seen) {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            s = self.shared.1.wait_timeout(s, end - now).unwrap().0;
        }
    }
}

impl<A: Api> Drop for FakeServer<A> {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%2Fd"), "a b c/d");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
