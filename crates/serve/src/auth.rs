//! What runs on a report's headers, before its body is read or the spool is taken.
//!
//! Invariants:
//! - In this order, each refusal ending the request at once: the credential (401, or 429 from
//!   an address over its failed authentications this minute; a valid credential from that
//!   address still passes, as nodes behind one NAT or proxy share it), checked in memory
//!   against the digests read through the store's seam (`statusrelay_core::store::
//!   CredentialReads`: the spool's `CredentialReader`), reloaded when their version moves), the node's
//!   rate (429), the declared length (413), room in the body budget (503 with `Retry-After`
//!   after `request_timeout`). Only then is the body read: a stranger costs a header parse and
//!   a table lookup, and never a buffer or the spool's lock.
//! - Bodies buffered at once are bounded by `[serve] body_budget`: a request holds its share
//!   (its declared length, or `max_body` when it declares none) until it is answered.
//! - Refusals are logged aggregated per peer: the first of a minute in full (the claimed name
//!   cut to 64 characters and escaped), the rest counted and said once when the minute is
//!   over (`flush_log`, from the sweep). A flood writes a line a minute per peer.
//! - A known node refused here (a wrong secret, over its rate) is counted in memory and
//!   written with the sweep's next pass, so `nodes` and `status` show it.
//! - Peers are addresses, IPv6 by /64 (one host holds a whole /64); every per-peer table is
//!   bounded, and an entry whose minute is over is dropped.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use statusrelay_core::store::{AnyReads, Credential, any_reads};
use statusrelay_spool::CredentialReader;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::Refusal;
use crate::limit::RateLimit;
use crate::{credentials, warn};

/// What a 401 for a wrong secret (or an unknown node, said the same way) tells to do.
pub const WRONG_SECRET_FIX: &str = "use the name and secret `statusrelay nodes add` printed (or --secret-file); `statusrelay nodes` lists the nodes";

/// The window failed authentications are counted in, and refusals logged per.
const MINUTE: Duration = Duration::from_secs(60);

/// The most peers any table here keeps (beyond, a new peer is not tracked until room).
const MAX_PEERS: usize = 65_536;

/// A peer as the limits see it: its address, an IPv6 one by its /64.
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::V6(s.into())
            }
        },
        v4 => v4,
    }
}

/// (user, password) of an HTTP basic `Authorization` header; the scheme is case-insensitive
/// (RFC 9110), the credentials base64.
pub fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded =
        String::from_utf8(statusrelay_backend::http::base64_decode(encoded.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// A claimed name as a log line may carry it: at most 64 characters, escaped.
pub fn shown(name: &str) -> String {
    let cut: String = name.chars().take(64).collect();
    if cut.len() < name.len() {
        format!("{:?}… ({} bytes)", cut, name.len())
    } else {
        format!("{cut:?}")
    }
}

/// Failed authentications per peer, in the current minute.
#[derive(Default)]
pub struct Failures {
    peers: HashMap<IpAddr, (Instant, u32)>,
}

impl Failures {
    /// Seconds until `peer` may try again, when it is over `max` failures this minute.
    pub fn blocked(&mut self, peer: IpAddr, max: u32, now: Instant) -> Option<u64> {
        let (since, n) = *self.peers.get(&peer)?;
        let over = now.saturating_duration_since(since);
        if over >= MINUTE {
            self.peers.remove(&peer);
            return None;
        }
        (n >= max).then(|| (MINUTE - over).as_secs().max(1))
    }

    /// Count a failure of `peer`.
    pub fn failed(&mut self, peer: IpAddr, now: Instant) {
        if self.peers.len() >= MAX_PEERS {
            self.peers
                .retain(|_, (since, _)| now.saturating_duration_since(*since) < MINUTE);
        }
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&peer) {
            return;
        }
        let e = self.peers.entry(peer).or_insert((now, 0));
        if now.saturating_duration_since(e.0) >= MINUTE {
            *e = (now, 0);
        }
        e.1 += 1;
    }
}

/// Refusals per peer, logged a line a minute.
#[derive(Default)]
pub struct RefusalLog {
    peers: HashMap<IpAddr, PeerRefusals>,
}

struct PeerRefusals {
    since: Instant,
    /// Refusals after the first, by status.
    more: BTreeMap<u16, u32>,
    last_name: Option<String>,
}

impl RefusalLog {
    /// Note a refusal; the line to log now, if this is the peer's first this minute.
    pub fn refused(
        &mut self,
        peer: IpAddr,
        status: StatusCode,
        name: Option<&str>,
        why: &str,
        now: Instant,
    ) -> Option<String> {
        let as_node = name
            .map(|n| format!(" as node {}", shown(n)))
            .unwrap_or_default();
        if let Some(p) = self.peers.get_mut(&peer) {
            *p.more.entry(status.as_u16()).or_default() += 1;
            p.last_name = name.map(shown);
            return None;
        }
        if self.peers.len() < MAX_PEERS {
            self.peers.insert(
                peer,
                PeerRefusals {
                    since: now,
                    more: BTreeMap::new(),
                    last_name: None,
                },
            );
        }
        Some(format!(
            "{peer}: a report{as_node} refused ({}): {why} (more from this peer are counted, said once a minute)",
            status.as_u16()
        ))
    }

    /// The lines for peers whose minute is over (their counts), and forget them.
    pub fn flush(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        self.peers.retain(|peer, p| {
            if now.saturating_duration_since(p.since) < MINUTE {
                return true;
            }
            let n: u32 = p.more.values().sum();
            if n > 0 {
                let by: Vec<String> = p.more.iter().map(|(s, c)| format!("{s} x{c}")).collect();
                out.push(format!(
                    "{peer}: {n} more report(s) refused in the last minute ({}){}",
                    by.join(", "),
                    p.last_name
                        .as_deref()
                        .map(|n| format!("; the last as node {n}"))
                        .unwrap_or_default()
                ));
            }
            false
        });
        out
    }
}

/// Opens a reader of the credentials (again, after one failed).
pub type OpenReads = Box<dyn Fn() -> Result<AnyReads, String> + Send + Sync>;

/// The nodes' credentials in memory.
struct Creds {
    reader: Option<AnyReads>,
    version: Option<i64>,
    table: HashMap<String, Credential>,
    checked: Option<Instant>,
}

/// The gate every report passes before its body is read.
pub struct Gate {
    open: OpenReads,
    creds: Mutex<Creds>,
    /// The per-node token buckets.
    pub limit: RateLimit,
    failures: Mutex<Failures>,
    log: Mutex<RefusalLog>,
    /// Refusals of known nodes (a wrong secret, over the rate) not yet written to the spool:
    /// node -> (what it was told, how many); `take_refusals` hands them to the sweep.
    refused: Mutex<HashMap<String, (String, u64)>>,
    budget: Arc<Semaphore>,
    budget_kib: u32,
    max_body: usize,
    max_failed_auth: u32,
}

/// A request let through: the node, and its share of the body budget (held until answered).
pub struct Admitted {
    pub node: String,
    pub permit: OwnedSemaphorePermit,
}

impl Gate {
    /// The gate of an aggregator on the SQLite spool at `spool`.
    pub fn new(spool: PathBuf, serve: &statusrelay_core::config::ServeConfig) -> Gate {
        // The credentials are read on a connection of their own, never the spool's lock.
        Gate::with_reads(
            Box::new(move || {
                CredentialReader::open(&spool)
                    .map(any_reads)
                    .map_err(|e| e.to_string())
            }),
            serve,
        )
    }

    /// The gate of an aggregator on any store: `open` makes a reader of its credentials, at
    /// the first look and again after a reader failed.
    pub fn with_reads(open: OpenReads, serve: &statusrelay_core::config::ServeConfig) -> Gate {
        let budget_kib = (serve.body_budget.div_ceil(1024)).min(u32::MAX as usize) as u32;
        Gate {
            open,
            creds: Mutex::new(Creds {
                reader: None,
                version: None,
                table: HashMap::new(),
                checked: None,
            }),
            limit: RateLimit::new(serve.node_rate, serve.node_burst),
            failures: Mutex::new(Failures::default()),
            log: Mutex::new(RefusalLog::default()),
            refused: Mutex::new(HashMap::new()),
            budget: Arc::new(Semaphore::new(budget_kib as usize)),
            budget_kib,
            max_body: serve.max_body,
            max_failed_auth: serve.max_failed_auth,
        }
    }

    /// Is (name, secret) a node's credential? Err when the credentials cannot be read at all.
    /// They are reloaded when their version moved, looked at on every miss (one row, read
    /// without a lock) and at least once a second, so a node just added or re-keyed is let
    /// in at once and one forgotten is shut out within a second.
    fn verify(&self, name: &str, secret: &str, now: Instant) -> Result<bool, String> {
        let mut c = self.creds.lock().unwrap_or_else(|p| p.into_inner());
        let matches = |c: &Creds| {
            c.table
                .get(name)
                .is_some_and(|k| credentials::verify(secret, &k.secret_sha256))
        };
        // A match within the second is the common case: one digest, no read.
        let fresh = c
            .checked
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1));
        if fresh && matches(&c) {
            return Ok(true);
        }
        c.checked = Some(now);
        if let Err(e) = blocking(|| reload(&mut c, &self.open)) {
            if c.version.is_none() {
                return Err(e);
            }
            warn!("could not re-read the nodes' credentials (kept the ones read before): {e}");
        }
        Ok(matches(&c))
    }

    /// Check a request's headers (see the module's invariants); `Ok` holds the node and its
    /// body's share of the budget, which waits at most `wait` for room.
    pub async fn admit(
        &self,
        headers: &HeaderMap,
        peer: IpAddr,
        now_ms: i64,
        wait: Duration,
    ) -> Result<Admitted, Refusal> {
        let now = Instant::now();
        let key = peer_key(peer);
        // An address over its failed authentications is held off, but only for what fails:
        // a valid credential from it is still let in (nodes behind one NAT or proxy share an
        // address with whoever fails there).
        let blocked = self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .blocked(key, self.max_failed_auth, now);
        let held_off = |secs: u64| Refusal::TooMany {
            error: format!(
                "too many failed authentications from {key} this minute (more than [serve] max_failed_auth = {})",
                self.max_failed_auth
            ),
            fix: "check the node's name and secret (`statusrelay nodes` on the aggregator); retry after the minute",
            retry_after: secs,
        };
        let Some((name, secret)) = basic_auth(headers) else {
            if let Some(secs) = blocked {
                return Err(self.turn(peer, None, held_off(secs)));
            }
            self.failed(key, now);
            return Err(self.turn(
                peer,
                None,
                Refusal::Unauthenticated {
                    error: "credentials required".into(),
                    fix: "send HTTP basic auth with the node's name and secret (`statusrelay nodes add NAME` prints them)",
                },
            ));
        };
        match self.verify(&name, &secret, now) {
            Ok(true) => {}
            Ok(false) => {
                if let Some(secs) = blocked {
                    return Err(self.turn(peer, Some(&name), held_off(secs)));
                }
                self.failed(key, now);
                if self.is_node(&name) {
                    self.count_refusal(&name, format!("a wrong secret from {peer} (401)"));
                }
                return Err(self.turn(
                    peer,
                    Some(&name),
                    Refusal::Unauthenticated {
                        error: "unknown node or wrong secret".into(),
                        fix: WRONG_SECRET_FIX,
                    },
                ));
            }
            Err(e) => {
                crate::error!("cannot read the nodes' credentials: {e}");
                return Err(Refusal::Busy {
                    error: "the aggregator cannot read its nodes' credentials now".into(),
                    fix: "retry; if it lasts, see the aggregator's log",
                    retry_after: 1,
                });
            }
        }
        if let Err((secs, first)) = self.limit.take(&name, now_ms) {
            self.count_refusal(&name, format!("over its rate limit, from {peer} (429)"));
            if first {
                warn!("{peer}: node {name} is over its rate limit (429 until it slows down)");
            }
            return Err(Refusal::TooMany {
                error: format!("node {name} is over its rate limit"),
                fix: "send less often (see [serve] node_rate and node_burst); retry after the time given",
                retry_after: secs,
            });
        }
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(len) = declared
            && len > self.max_body as u64
        {
            return Err(Refusal::TooLarge {
                declared: Some(len),
                max_body: self.max_body,
            });
        }
        let share = declared.map_or(self.max_body as u64, |l| l.max(1));
        let kib = (share.div_ceil(1024) as u32).clamp(1, self.budget_kib);
        let permit = match tokio::time::timeout(wait, self.budget.clone().acquire_many_owned(kib))
            .await
        {
            Ok(Ok(p)) => p,
            _ => {
                return Err(Refusal::Busy {
                    error: "too many request bodies in memory at once ([serve] body_budget)".into(),
                    fix: "retry after the time given",
                    retry_after: 1,
                });
            }
        };
        Ok(Admitted { node: name, permit })
    }

    /// Is `name` a node (as the credentials last read say)?
    fn is_node(&self, name: &str) -> bool {
        self.creds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .table
            .contains_key(name)
    }

    fn count_refusal(&self, node: &str, told: String) {
        let mut r = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let e = r
            .entry(node.to_string())
            .or_insert_with(|| (String::new(), 0));
        e.0 = told;
        e.1 += 1;
    }

    /// The refusals of known nodes counted since the last call, for `nodes` and `status`.
    pub fn take_refusals(&self) -> Vec<(String, String, u64)> {
        std::mem::take(&mut *self.refused.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .map(|(node, (told, n))| (node, told, n))
            .collect()
    }

    fn failed(&self, peer: IpAddr, now: Instant) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed(peer, now);
    }

    /// Log a refusal the aggregated way, and hand it back.
    fn turn(&self, peer: IpAddr, name: Option<&str>, t: Refusal) -> Refusal {
        let line = self.log.lock().unwrap_or_else(|p| p.into_inner()).refused(
            peer_key(peer),
            t.status(),
            name,
            &t.error(),
            Instant::now(),
        );
        if let Some(line) = line {
            warn!("{line}");
        }
        t
    }

    /// Say the refusals counted in minutes now over (the sweep calls this every second).
    pub fn flush_log(&self) {
        let lines = self
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .flush(Instant::now());
        for l in lines {
            warn!("{l}");
        }
    }
}

/// Run `f`, which may block (a store's read, a PostgreSQL client's own runtime), marked as
/// blocking when on a worker of the multi-threaded runtime: the runtime moves its other
/// tasks, and a client that runs a runtime of its own may do so. Anywhere else, as it is.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn reload(c: &mut Creds, open: &OpenReads) -> Result<(), String> {
    if c.reader.is_none() {
        c.reader = Some(open()?);
    }
    let reader = c.reader.as_mut().expect("opened above");
    let version = match reader.credentials_version() {
        Ok(v) => v,
        Err(e) => {
            // Opened again at the next look: the file may have been replaced, the
            // connection lost.
            c.reader = None;
            return Err(e.to_string());
        }
    };
    if c.version == Some(version) {
        return Ok(());
    }
    let (version, table) = reader.credentials().map_err(|e| e.to_string())?;
    c.version = Some(version);
    c.table = table;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store's version and credentials as the test sets them, and whether its reads fail.
    type Held = (i64, HashMap<String, Credential>, bool);

    #[derive(Clone, Default)]
    struct Store(Arc<Mutex<Held>>);

    impl statusrelay_core::store::CredentialReads for Store {
        type Error = statusrelay_core::store::StoreError;

        fn credentials_version(&mut self) -> Result<i64, Self::Error> {
            let s = self.0.lock().unwrap();
            if s.2 {
                return Err(statusrelay_core::store::StoreError(
                    "connection lost".into(),
                ));
            }
            Ok(s.0)
        }

        fn credentials(&mut self) -> Result<(i64, HashMap<String, Credential>), Self::Error> {
            let s = self.0.lock().unwrap();
            Ok((s.0, s.1.clone()))
        }
    }

    #[test]
    fn the_gate_reads_any_store_keeps_what_it_read_when_a_read_fails_and_opens_again() {
        let store = Store::default();
        let cred = |secret: &str| Credential {
            secret_sha256: crate::credentials::digest(secret),
            components: None,
        };
        *store.0.lock().unwrap() = (
            1,
            HashMap::from([("db1".to_string(), cred("s3cret"))]),
            false,
        );
        let opens = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let gate = Gate::with_reads(
            Box::new({
                let (store, opens) = (store.clone(), opens.clone());
                move || {
                    opens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(any_reads(store.clone()))
                }
            }),
            &statusrelay_core::config::ServeConfig::default(),
        );
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(gate.verify("db1", "s3cret", at(0)), Ok(true));
        assert_eq!(gate.verify("db1", "wrong", at(0)), Ok(false));
        assert_eq!(opens.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The store fails: what was read before stands, and the reader is dropped.
        store.0.lock().unwrap().2 = true;
        assert_eq!(gate.verify("db1", "wrong", at(2)), Ok(false));
        assert_eq!(gate.verify("db1", "s3cret", at(2)), Ok(true));
        // Back, with db1 forgotten and web1 added: opened again, and read anew.
        *store.0.lock().unwrap() = (2, HashMap::from([("web1".to_string(), cred("x"))]), false);
        assert_eq!(gate.verify("web1", "x", at(4)), Ok(true));
        assert_eq!(gate.verify("db1", "s3cret", at(6)), Ok(false));
        assert_eq!(opens.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn ipv6_peers_by_their_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(peer_key(a), peer_key(b));
        assert_eq!(peer_key(a).to_string(), "2001:db8:1:2::");
        let m: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(peer_key(m).to_string(), "10.0.0.1");
    }

    #[test]
    fn the_basic_scheme_is_case_insensitive() {
        let mut h = HeaderMap::new();
        let enc = statusrelay_backend::http::base64(b"db1:s3cret");
        for scheme in ["Basic", "basic", "BASIC"] {
            h.insert(
                header::AUTHORIZATION,
                format!("{scheme} {enc}").parse().unwrap(),
            );
            assert_eq!(basic_auth(&h), Some(("db1".into(), "s3cret".into())));
        }
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {enc}").parse().unwrap(),
        );
        assert_eq!(basic_auth(&h), None);
    }

    #[test]
    fn failures_block_a_peer_for_the_rest_of_its_minute() {
        let mut f = Failures::default();
        let p: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(f.blocked(p, 3, t0), None);
            f.failed(p, t0);
        }
        assert_eq!(f.blocked(p, 3, t0 + Duration::from_secs(20)), Some(40));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(f.blocked(other, 3, t0), None, "another peer is not held");
        assert_eq!(f.blocked(p, 3, t0 + MINUTE), None, "a new minute");
    }

    #[test]
    fn refusals_are_a_line_a_minute_per_peer_with_names_cut() {
        let mut l = RefusalLog::default();
        let p: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        let long = "x".repeat(40_000);
        let first = l
            .refused(p, StatusCode::UNAUTHORIZED, Some(&long), "unknown node", t0)
            .unwrap();
        assert!(first.len() < 300, "{first}");
        assert!(first.contains("(40000 bytes)"));
        for _ in 0..999 {
            assert_eq!(
                l.refused(p, StatusCode::UNAUTHORIZED, Some("a\nb"), "x", t0),
                None
            );
        }
        assert!(l.flush(t0 + Duration::from_secs(30)).is_empty());
        let lines = l.flush(t0 + MINUTE);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].contains("999 more report(s) refused"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("401 x999"));
        assert!(lines[0].contains("\"a\\nb\""), "escaped: {}", lines[0]);
        // The next minute starts with a full line again.
        assert!(
            l.refused(p, StatusCode::UNAUTHORIZED, None, "x", t0 + MINUTE)
                .is_some()
        );
    }
}
