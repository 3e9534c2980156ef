//! Every API backend against a server that answers anything: random status codes with random
//! bodies, JSON of plausible shapes with wrong types, truncated JSON, HTML. The backends must
//! return (an answer or an error), never panic and never hang. The server is a raw socket on
//! 127.0.0.1, so nothing here depends on a fake following the API contract.
//!
//! About 10 ms a case (some 40 requests); `scripts/fuzz` runs more cases than the suite's 256.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use statusrelay_backend::http::OverHttp;
use statusrelay_backend::{
    Backend, ComponentRef, cachet::Cachet, cachet3::Cachet3, statusio::Statusio,
    statuspage::Statuspage,
};
use statusrelay_core::State;

/// A loopback server answering every request with the current (status, body).
struct Anything {
    url: String,
    answer: Arc<Mutex<(u16, String)>>,
}

impl Anything {
    fn start() -> Anything {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new((200, String::new())));
        let shared = answer.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let (status, text) = shared.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        Anything { url, answer }
    }
}

/// One server for all cases (the property test runs one case at a time).
fn shared() -> &'static Anything {
    static SERVER: std::sync::OnceLock<Anything> = std::sync::OnceLock::new();
    SERVER.get_or_init(Anything::start)
}

/// The keys the four APIs use, so random JSON reaches the parsers' inner branches.
const KEYS: &[&str] = &[
    "data",
    "id",
    "name",
    "status",
    "attributes",
    "meta",
    "links",
    "next",
    "pagination",
    "result",
    "error",
    "message",
    "errors",
    "detail",
    "status_code",
    "components",
    "containers",
    "incidents",
    "component_id",
    "value",
    "human",
    "group",
    "scheduled_at",
    "completed_at",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (0i64..8).prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(KEYS).prop_map(|k| json!(k)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => json_value().prop_map(|v| v.to_string()),
        1 => json_value().prop_map(|v| {
            let s = v.to_string();
            let mut cut = s.len() / 2;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s[..cut].to_string()
        }),
        1 => "\\PC{0,80}",
        1 => Just("<html><body>502 Bad Gateway</body></html>".to_string()),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => Just(200u16),
        1 => Just(201u16),
        1 => prop::sample::select(vec![204u16, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503]),
    ]
}

fn backends(url: &str) -> Vec<Box<dyn Backend>> {
    let t = Duration::from_secs(2);
    // Unpaced: pacing is the rate limiter's business, tested elsewhere; here it would only wait.
    let none = Duration::ZERO;
    vec![
        Box::new(Cachet::new(url, "token".into(), t).paced(none)),
        Box::new(Cachet3::new(url, "/status/api", "token".into(), t).paced(none)),
        Box::new(Statuspage::new(url, "page1", "key".into(), t).paced(none)),
        Box::new(Statusio::new(url, "page1", "id1", "key".into(), t).paced(none)),
    ]
}

/// Every call a flusher makes, each against whatever the server says.
fn drive(b: &mut dyn Backend) {
    let by_name = ComponentRef {
        name: "db".into(),
        id: None,
        container: None,
    };
    let by_id = ComponentRef {
        name: "db".into(),
        id: Some("7".into()),
        container: Some("c1".into()),
    };
    let _ = b.resolve(&by_name);
    let _ = b.resolve(&by_id);
    let _ = b.set_state("7", &by_id, State::MajorOutage, Some("down"));
    let _ = b.set_state("7-c1", &by_id, State::Operational, None);
    let _ = b.check(std::slice::from_ref(&by_name));
    if b.supports_incidents() {
        let _ = b.open_incident("7", State::PartialOutage, "db is down", "down", true);
        let _ = b.open_incidents("7");
        let _ = b.update_incident("5", "7", State::MajorOutage, "worse");
        let _ = b.resolve_incident("5", "7", "back", false);
    }
    let _ = b.active_maintenance();
}

proptest! {
    #[test]
    fn any_answer_is_an_answer_or_an_error_never_a_panic_or_a_hang(status in status(), body in body()) {
        let server = shared();
        *server.answer.lock().unwrap() = (status, body);
        for mut b in backends(&server.url) {
            let started = Instant::now();
            drive(b.as_mut());
            // A page that answers at once must never make a backend wait (no retry loops inside).
            prop_assert!(started.elapsed() < Duration::from_secs(5), "{} took {:?}", b.identity(), started.elapsed());
        }
    }
}

#[test]
fn a_plausible_but_wrong_answer_is_an_error_naming_the_problem() {
    let server = Anything::start();
    // A component list whose entries have no id: resolving by name cannot succeed.
    *server.answer.lock().unwrap() = (200, json!({"data": [{"name": "db"}]}).to_string());
    for mut b in backends(&server.url) {
        let by_name = ComponentRef {
            name: "db".into(),
            id: None,
            container: None,
        };
        let err = b
            .resolve(&by_name)
            .expect_err("a component without an id cannot resolve");
        assert!(!err.to_string().is_empty(), "{}: empty error", b.identity());
    }
}
