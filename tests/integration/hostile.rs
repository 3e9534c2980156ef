//! Issue 21: the aggregator on a network a fleet shares. What reaches it before
//! authentication costs almost nothing, a stranger cannot shut a node out, and every answer
//! says what is wrong. The real binary on loopback; bounded loops; conditions, not sleeps.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::fleet::{Aggregator, node, relay};
use crate::support::*;

/// Send `bytes`, read the whole answer (the connection closed by `Connection: close`).
fn exchange(port: u16, bytes: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let _ = s.write_all(bytes);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_string();
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, answer)
}

/// POST `body` to /v1/reports as `user` (HTTP basic), on a connection of its own.
fn post_as(port: u16, user: &str, secret: &str, body: &str) -> (u16, String) {
    exchange(
        port,
        format!(
            "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            auth(user, secret),
            body.len()
        )
        .as_bytes(),
    )
}

fn auth(user: &str, secret: &str) -> String {
    statusrelay_backend::http::base64(format!("{user}:{secret}").as_bytes())
}

/// Unauthenticated 1 MiB bodies, 400 of them, 50 at a time: the aggregator reads none of
/// them (its peak memory hardly moves), and a genuine node is served meanwhile. Then
/// authenticated ones: bounded by `body_budget`, and the memory is back after.
#[test]
fn bodies_cost_nothing_before_authentication_and_are_bounded_after() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("hostile-memory", &fake);
    agg.append_config(
        "body_budget = 4194304\nmax_failed_auth = 1000000\nnode_rate = 1000\nnode_burst = 1000\n",
    );
    let secret = agg.add_node("db1");
    // glibc keeps a heap per thread it has seen allocate (the runtime's blocking threads):
    // capped, so the peak measures the bodies held, not the allocator's arenas. (The
    // release binary is static, on musl, which has no per-thread arenas.)
    let mut cmd = agg.sb.cmd(&["serve", "--log-level", "debug"]);
    cmd.env("MALLOC_ARENA_MAX", "2");
    let serve = LiveFlusher::spawn(cmd);
    serve.wait_log("serving nodes on", Duration::from_secs(20));
    let port = agg.port;
    let before = serve.mem_kib("VmHWM");
    let flood = |credential: String| {
        let sent = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..50)
            .map(|_| {
                let (credential, sent) = (credential.clone(), sent.clone());
                std::thread::spawn(move || {
                    let body = vec![b'x'; 1 << 20];
                    for _ in 0..8 {
                        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                        let head = format!(
                            "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {credential}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(head.as_bytes());
                        let _ = s.write_all(&body);
                        let mut answer = [0u8; 64];
                        let _ = s.read(&mut answer);
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        sent.load(Ordering::SeqCst)
    };
    assert_eq!(flood(auth("nobody", "wrong")), 400);
    let stranger_peak = serve.mem_kib("VmHWM");
    assert!(
        stranger_peak < before + 16 * 1024,
        "400 unauthenticated MiB raised the peak from {before} KiB to {stranger_peak} KiB"
    );
    // A genuine node is served after it, at once.
    let n = node("db1", &agg, &secret);
    assert_code(&monit(&n, &fail("mysql")), 0);
    let t = Instant::now();
    relay(&n);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Authenticated bodies (not reports: 400 each once read) are read, within the budget.
    assert_eq!(flood(auth("db1", &secret)), 400);
    let node_peak = serve.mem_kib("VmHWM");
    assert!(
        node_peak < before + 4 * 1024 * 3 + 16 * 1024,
        "400 authenticated MiB with a 4 MiB budget raised the peak from {before} KiB to {node_peak} KiB"
    );
    assert_contains(&serve.log(), "refused (401)");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// 1,000 refused requests with 40 KiB names write a line, not 41 MB: the first refusal of
/// the minute in full (the name cut and escaped), the rest counted.
#[test]
fn a_flood_of_refusals_writes_a_line_not_megabytes() {
    let agg = Aggregator::on(html_sandbox("hostile-log", DB));
    let secret = agg.add_node("db1");
    let serve = agg.start();
    let name = format!("{}\n{}", "n".repeat(20_000), "m".repeat(20_000));
    for i in 0..1000 {
        let (code, answer) = post_as(agg.port, &name, "x", "{}");
        // Past max_failed_auth (60 a minute by default) the peer is held off: 429.
        assert!(code == 401 || (i >= 60 && code == 429), "{i}: {answer}");
    }
    // The address is held off for what fails; a node behind it (one NAT, one proxy) is not.
    let body = r#"{"epoch":1,"reports":[]}"#;
    let (code, answer) = post_as(agg.port, "db1", &secret, body);
    assert_eq!(code, 200, "{answer}");
    let log = serve.log();
    assert!(
        log.len() < 4096,
        "{} bytes of log:\n{}",
        log.len(),
        &log[..4096.min(log.len())]
    );
    assert_eq!(log.matches("(40001 bytes)").count(), 1, "{log}");
    assert!(!log.contains(&"n".repeat(100)), "a name was logged whole");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// A stranger holding every connection (idle sockets, taken again as soon as they close)
/// does not shut a genuine node out: its idle connections are closed first when the
/// aggregator is full. And one address holds at most `max_connections_per_peer`.
#[test]
fn a_stranger_holding_every_connection_does_not_shut_a_node_out() {
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("hostile-conns", &fake);
    agg.append_config("max_connections = 32\nmax_connections_per_peer = 1000\n");
    let secret = agg.add_node("db1");
    let serve = agg.start();
    let port = agg.port;
    let stop = Arc::new(AtomicBool::new(false));
    let taken = Arc::new(AtomicU32::new(0));
    let stranger = {
        let (stop, taken) = (stop.clone(), taken.clone());
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            let mut rounds = 0;
            while !stop.load(Ordering::SeqCst) && rounds < 100_000 {
                rounds += 1;
                // Keep 64 sockets open, re-taking any the aggregator closed.
                held.retain(|s| {
                    let mut b = [0u8; 1];
                    s.set_nonblocking(true).unwrap();
                    !matches!((&*s).read(&mut b), Ok(0))
                });
                while held.len() < 64 {
                    match TcpStream::connect(("127.0.0.1", port)) {
                        Ok(s) => {
                            held.push(s);
                            taken.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    assert!(wait_until(Duration::from_secs(10), || taken
        .load(Ordering::SeqCst)
        >= 64));
    let n = node("db1", &agg, &secret);
    for i in 0..5 {
        let event = if i % 2 == 0 {
            fail("mysql")
        } else {
            ok("mysql")
        };
        assert_code(&monit(&n, &event), 0);
        let t = Instant::now();
        relay(&n);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "round {i}: the node waited {:?}",
            t.elapsed()
        );
    }
    stop.store(true, Ordering::SeqCst);
    stranger.join().unwrap();
    assert_contains(&serve.log(), "idle ones no node has used are closed first");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// One address holds at most `max_connections_per_peer`; another address is served.
#[test]
fn one_address_holds_at_most_its_share_of_connections() {
    let agg = Aggregator::on(html_sandbox("hostile-peer", DB));
    agg.append_config("max_connections_per_peer = 8\n");
    let serve = agg.start();
    let port = agg.port;
    // 20 sockets from 127.0.0.2: the first 8 are kept open, the rest closed at once.
    let from = |ip: [u8; 4]| {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&std::net::SocketAddr::from((ip, 0)).into()).unwrap();
        s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        let s: TcpStream = s.into();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    let held: Vec<TcpStream> = (0..20).map(|_| from([127, 0, 0, 2])).collect();
    let closed = held
        .iter()
        .filter(|s| {
            let mut b = [0u8; 1];
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            matches!((&**s).read(&mut b), Ok(0))
        })
        .count();
    assert_eq!(closed, 12, "20 from one address, 8 allowed");
    assert_contains(&serve.log(), "127.0.0.2 holds 8 connections");
    // Another address is served as usual.
    let mut s = from([127, 0, 0, 3]);
    s.write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Every answer names what is wrong and what to do, as JSON.
#[test]
fn every_answer_says_what_is_wrong_and_the_fix() {
    let agg = Aggregator::on(html_sandbox("hostile-answers", DB));
    agg.append_config("max_body = 4096\n");
    let secret = agg.add_node("db1");
    let serve = agg.start();
    let port = agg.port;
    let json = |answer: &str| -> serde_json::Value {
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or("")).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {answer}");
        })
    };
    // A mistyped `set mmonit` URL: 404 naming both endpoints.
    let (code, answer) = exchange(
        port,
        b"POST /collectr HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 404);
    let body = json(&answer);
    assert_contains(body["error"].as_str().unwrap(), "/collectr");
    assert_contains(body["fix"].as_str().unwrap(), "POST /v1/reports");
    assert_contains(body["fix"].as_str().unwrap(), "POST /collector");
    let (code, answer) = exchange(
        port,
        b"GET /v1/reports HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 405);
    assert_contains(json(&answer)["error"].as_str().unwrap(), "GET");
    // Over max_body: named, before the body is read.
    let (code, answer) = exchange(
        port,
        format!(
            "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n",
            auth("db1", &secret)
        )
        .as_bytes(),
    );
    assert_eq!(code, 413);
    assert_contains(json(&answer)["error"].as_str().unwrap(), "max_body = 4096");
    // No credential, and a wrong one: 401 with the fix.
    let (code, answer) = exchange(
        port,
        b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    assert_eq!(code, 401);
    assert_contains(json(&answer)["fix"].as_str().unwrap(), "nodes add");
    // A known node's wrong secret is counted for `nodes` (written by the next sweep).
    let (code, _) = post_as(port, "db1", "not-its-secret", "{}");
    assert_eq!(code, 401);
    assert!(
        wait_until(Duration::from_secs(10), || agg
            .sb
            .run(&["nodes"])
            .stdout
            .contains("a wrong secret from 127.0.0.1")),
        "{}",
        agg.sb.run(&["nodes"]).stdout
    );
    // The scheme is case-insensitive (RFC 9110): `basic` is let in.
    let body = r#"{"epoch":1,"reports":[]}"#;
    let (code, answer) = exchange(
        port,
        format!(
            "POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: basic {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            auth("db1", &secret),
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(code, 200, "{answer}");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Another process holds the spool's write lock for 30 s: a report gets a 503 with
/// `Retry-After` within its `request_timeout`, and `/ready` answers at once.
#[test]
fn a_spool_held_by_another_process_is_a_prompt_503() {
    let agg = Aggregator::on(html_sandbox("hostile-locked", DB));
    agg.append_config("request_timeout = \"2s\"\n");
    let secret = agg.add_node("db1");
    let serve = agg.start();
    let port = agg.port;
    let conn = rusqlite::Connection::open(agg.sb.spool_path()).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE; UPDATE credentials_version SET v = v WHERE id = 1;")
        .unwrap();
    let body = r#"{"epoch":1,"snapshot":true,"reports":[{"seq":1,"component":"db cluster","failing":[{"service":"mysql","test":"existence","state":"major_outage"}]}]}"#;
    let t = Instant::now();
    let (code, answer) = post_as(port, "db1", &secret, body);
    assert_eq!(code, 503, "{answer}");
    assert_contains(&answer.to_ascii_lowercase(), "retry-after: 1");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let t = Instant::now();
    let (code, answer) = exchange(
        port,
        b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(code, 200, "{answer}");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    conn.execute_batch("ROLLBACK").unwrap();
    // Released: the same report is taken.
    let (code, answer) = post_as(port, "db1", &secret, body);
    assert_eq!(code, 200, "{answer}");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// A node's snapshot that clears 12,000 failing tests is one statement per component, not a
/// statement per test: the other nodes wait for it a moment, not seconds. A report over the
/// bounds (1,000 failing tests, 10,000 a request) is refused with what to do.
#[test]
fn clearing_twelve_thousand_tests_does_not_stall_the_other_nodes() {
    let components: String = (0..12)
        .map(|i| format!("[[component]]\nname = \"c{i}\"\n"))
        .collect();
    let agg = Aggregator::on(html_sandbox("hostile-big", &components));
    agg.append_config("node_rate = 1000\nnode_burst = 1000\n");
    let (big, small) = (agg.add_node("big"), agg.add_node("small"));
    let serve = agg.start();
    let port = agg.port;
    let post = |user: &str, secret: &str, body: &str| -> (u16, String, Duration) {
        let t = Instant::now();
        let (code, answer) = post_as(port, user, secret, body);
        (code, answer, t.elapsed())
    };
    let report = |c: usize, seq: usize, n: usize| {
        let failing: Vec<String> = (0..n)
            .map(|j| format!(r#"{{"service":"svc{j}","test":"existence","state":"major_outage"}}"#))
            .collect();
        format!(
            r#"{{"seq":{seq},"component":"c{c}","failing":[{}]}}"#,
            failing.join(",")
        )
    };
    // 12 components of 1,000 failing tests each, in two batches.
    for half in [0..6, 6..12] {
        let reports: Vec<String> = half.map(|c| report(c, 1, 1000)).collect();
        let body = format!(
            r#"{{"epoch":1,"reporter":"big","reports":[{}]}}"#,
            reports.join(",")
        );
        let (code, answer, _) = post("big", &big, &body);
        assert_eq!(code, 200, "{answer}");
    }
    assert_eq!(agg.node_failing("big"), 12_000);
    // Over the bounds: refused, saying what to do.
    let (code, answer, _) = post(
        "big",
        &big,
        &format!(
            r#"{{"epoch":1,"reporter":"big","reports":[{}]}}"#,
            report(0, 2, 1001)
        ),
    );
    assert_eq!(code, 422, "{answer}");
    assert_contains(&answer, "more than 1000");
    // The other node reports as fast as it is answered while the big one clears it all.
    let stop = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let other = {
        let (stop, worst, small) = (stop.clone(), worst.clone(), small.clone());
        std::thread::spawn(move || {
            let mut seq = 0;
            while !stop.load(Ordering::SeqCst) && seq < 100_000 {
                seq += 1;
                let state = if seq % 2 == 0 {
                    "major_outage"
                } else {
                    "partial_outage"
                };
                let body = format!(
                    r#"{{"epoch":1,"reporter":"small","reports":[{{"seq":{seq},"component":"c0","failing":[{{"service":"web","test":"connection","state":"{state}"}}]}}]}}"#
                );
                let t = Instant::now();
                let (code, _) = post_as(port, "small", &small, &body);
                assert_eq!(code, 200);
                let took = t.elapsed();
                let mut w = worst.lock().unwrap();
                *w = (*w).max(took);
            }
        })
    };
    let empty: Vec<String> = (0..12).map(|c| report(c, 3, 0)).collect();
    let (code, answer, took) = post(
        "big",
        &big,
        &format!(
            r#"{{"epoch":1,"snapshot":true,"reporter":"big","reports":[{}]}}"#,
            empty.join(",")
        ),
    );
    assert_eq!(code, 200, "{answer}");
    stop.store(true, Ordering::SeqCst);
    other.join().unwrap();
    assert_eq!(agg.node_failing("big"), 0);
    let worst = *worst.lock().unwrap();
    assert!(
        worst < Duration::from_secs(3) && took < Duration::from_secs(3),
        "clearing 12,000 tests took {took:?}; the other node waited up to {worst:?}"
    );
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// Under an address-space limit it cannot serve in, `serve` says so at start and names the
/// limit (exit 64), where it used to acknowledge a report and abort at its first page write.
#[test]
fn serve_under_a_small_address_space_limit_refuses_by_name() {
    let agg = Aggregator::on(html_sandbox("hostile-ulimit", DB));
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v 60000 && exec {BIN} --config {} serve",
            agg.sb.path("config.toml").display()
        ))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_contains(&err, "limited to 60000 KiB (ulimit -v)");
}

/// What an operator meets when something around `serve` is wrong: each said in words, with
/// what to do, before anything starts.
#[test]
fn an_operator_is_told_what_is_wrong_around_serve() {
    // No [serve] table: refused, not served on a default address.
    let single = html_sandbox("hostile-op-single", DB);
    let r = single.run(&["serve"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert_contains(&r.stderr, "no [serve] table");
    // A relaying node's config: no second, chained aggregator.
    let fake = FakeCachet::start(TOKEN, &[(2, "db cluster")]);
    let agg = Aggregator::new("hostile-op-agg", &fake);
    let secret = agg.add_node("db1");
    let n = node("db1", &agg, &secret);
    n.write(
        "config.toml",
        &format!(
            "{}[serve]\nlisten = \"127.0.0.1:1\"\n",
            std::fs::read_to_string(n.path("config.toml")).unwrap()
        ),
    );
    let r = n.run(&["serve"]);
    assert_eq!(r.code, 64, "{}", r.stderr);
    assert_contains(&r.stderr, "relaying node's config");
    // check --online with the aggregator down claims nothing about the components.
    let r = crate::fleet::node("db1b", &agg, &secret).run(&["check", "--online"]);
    assert_ne!(r.code, 0);
    assert!(!r.stdout.contains("[ok] component"), "{}", r.stdout);
    // `nodes add` on a plain-HTTP aggregator suggests http URLs with its port.
    let r = agg.sb.run(&["nodes", "add", "db2"]);
    assert_code(&r, 0);
    assert_contains(&r.stdout, "set mmonit http://db2:");
    assert_contains(&r.stdout, &format!("@AGGREGATOR:{}/collector", agg.port));
    // The port in use: said as such, exit 69, and the flusher never started.
    let serve = agg.start();
    let second = Aggregator::on(html_sandbox("hostile-op-second", DB));
    let cfg = std::fs::read_to_string(second.sb.path("config.toml")).unwrap();
    second.sb.write(
        "config.toml",
        &cfg.replace(
            &format!("127.0.0.1:{}", second.port),
            &format!("127.0.0.1:{}", agg.port),
        ),
    );
    let r = second.sb.run(&["serve"]);
    assert_eq!(r.code, 69, "{}", r.stderr);
    assert_contains(
        &r.stderr,
        &format!("cannot listen on 127.0.0.1:{}", agg.port),
    );
    assert_contains(&r.stderr, "another process listens there");
    assert!(!r.stderr.contains("flushing"), "{}", r.stderr);
    // A second serve on the same spool (another port): the spool's deliverer is named.
    let other = Sandbox::new(BIN, "hostile-op-other");
    let cfg = std::fs::read_to_string(agg.sb.path("config.toml")).unwrap();
    other.write(
        "config.toml",
        &cfg.replace(&format!("127.0.0.1:{}", agg.port), "127.0.0.1:0")
            .replace(
                "spool = \"spool.db\"",
                &format!("spool = {:?}", agg.sb.spool_path().display().to_string()),
            ),
    );
    other.write("token", &format!("{TOKEN}\n"));
    let r = other.run(&["serve"]);
    assert_eq!(r.code, 75, "{}", r.stderr);
    assert_contains(&r.stderr, "another statusrelay already delivers");
    assert_contains(&r.stderr, "statusrelay serve");
    let (code, _, log) = serve.stop();
    assert_eq!(code, 0, "{log}");
}

/// A config manager's first run: `serve` started while `nodes add` creates the same new spool.
/// Whichever takes the spool first, the other waits for it (it failed at once, 1 time in 40).
#[test]
fn serve_and_nodes_add_racing_on_a_new_spool_both_succeed() {
    for round in 0..20 {
        let agg = Aggregator::on(html_sandbox(&format!("hostile-race-{round}"), DB));
        let _ = std::fs::remove_file(agg.sb.spool_path());
        let serve = LiveFlusher::spawn(agg.sb.cmd(&["serve"]));
        let add = agg.sb.run(&["nodes", "add", "db1"]);
        assert_code(&add, 0);
        assert!(
            wait_until(Duration::from_secs(20), || serve
                .log()
                .contains("serving nodes on")),
            "round {round}: {}",
            serve.log()
        );
        let (code, _, log) = serve.stop();
        assert_eq!(code, 0, "round {round}: {log}");
    }
}
