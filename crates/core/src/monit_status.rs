//! Monit's own view of its services, from its HTTP interface (`/_status?format=xml`).
//!
//! Invariants:
//! - A service's `<status>` is Monit's bitmask of failed event types (monit src/event.h); each
//!   bit is mapped to the same test family the exec-event table uses, so a state learnt from
//!   the XML and one learnt from an exec event land on the same keys.
//! - UTF-8 first: Monit declares ISO-8859-1 but writes the monitrc's bytes as they are, so a
//!   document that is valid UTF-8 is read as UTF-8 (a service named `café` in a UTF-8 monitrc
//!   stays `café`); only bytes that are not valid UTF-8 are decoded as the Latin-1 declared.
//! - Monit has a word on a service only while it monitors it and has checked it once
//!   ([`ServiceStatus::speaks`]): an initialising (`<monitor>2`, the first document after a
//!   start or `monit reload`) or unmonitored (`0`) service says nothing about its tests. This
//!   is the one place that rule is written; resync and the collector both ask it.
//! - "Service, its components, its failing families, the state of each" is [`observe`]: the
//!   one mapping of a status document, for resync and the collector alike.
//! - A collected time that does not fit in microseconds is an error, never a wrapped number.
//! - Anything that is not a Monit status document is an error naming what is missing, never a
//!   panic and never an empty success.

use crate::CoreError;

/// Monit's failed-event bits (src/event.h, Monit 5.33) and the test family of each.
pub const EVENT_BITS: &[(u32, &str)] = &[
    (0x1, "checksum"),
    (0x2, "resource"),
    (0x4, "timeout"),
    (0x8, "timestamp"),
    (0x10, "size"),
    (0x20, "connection"),
    (0x40, "permission"),
    (0x80, "uid"),
    (0x100, "gid"),
    (0x200, "existence"), // Event_NonExist
    (0x400, "type"),      // Event_Invalid
    (0x800, "data"),
    (0x1000, "execution"),
    (0x2000, "fsflags"),
    (0x4000, "icmp"),
    (0x8000, "content_match"), // Monit 5.33 reports a content test as "Content match"
    (0x10000, "instance"),
    (0x20000, "action"),
    (0x40000, "pid"),
    (0x80000, "ppid"),
    (0x100000, "heartbeat"),
    (0x200000, "status"),
    (0x400000, "uptime"),
    (0x800000, "link"),
    (0x1000000, "speed"),
    (0x2000000, "saturation"),
    (0x4000000, "download_bytes"),    // Event_ByteIn
    (0x8000000, "upload_bytes"),      // Event_ByteOut
    (0x10000000, "download_packets"), // Event_PacketIn
    (0x20000000, "upload_packets"),   // Event_PacketOut
    (0x40000000, "existence"),        // Event_Exist
];

/// Monit's service types (`<service type="N">`).
pub fn type_name(t: u32) -> &'static str {
    match t {
        0 => "filesystem",
        1 => "directory",
        2 => "file",
        3 => "process",
        4 => "host",
        5 => "system",
        6 => "fifo",
        7 => "program",
        8 => "network",
        _ => "unknown",
    }
}

/// One service as Monit reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    pub name: String,
    pub kind: u32,
    /// Bitmask of failed event types.
    pub status: u32,
    /// Monit's `<monitor>` bits: 0 not monitored, 1 monitored, 2 initialising (not checked
    /// yet), 4 waiting (an `every` cycle skipped; its status is the last check's).
    pub monitor: u32,
    /// When Monit last checked it, in microseconds since the epoch (collector documents).
    pub collected_us: Option<i64>,
}

impl ServiceStatus {
    /// Does Monit have a word on this service's tests now? Only while it is monitored and past
    /// its first check: an initialising or unmonitored service's `<status>` is 0 because
    /// nothing was checked, not because everything passed, so its tests keep what they were.
    pub fn speaks(&self) -> bool {
        self.monitor & 0x1 != 0 && self.monitor & 0x2 == 0
    }

    /// The test families failing now, deduplicated, in bit order.
    pub fn failing(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for (bit, fam) in EVENT_BITS {
            if self.status & bit != 0 && !out.contains(fam) {
                out.push(fam);
            }
        }
        out
    }
}

/// Monit's whole status document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitStatus {
    /// Name of the `check system` service: what Monit passes as MONIT_HOST.
    pub system: Option<String>,
    pub localhostname: Option<String>,
    /// Monit's poll cycle in seconds (`<server><poll>`).
    pub poll_secs: Option<u32>,
    /// The Monit's own id (the root's `id`, `<server><id>` in `/_status`): stable across
    /// restarts, different on every machine.
    pub id: Option<String>,
    /// When this Monit process started (the root's `incarnation`): a restart is a new one.
    pub incarnation: Option<String>,
    pub services: Vec<ServiceStatus>,
    /// The events a collector document carries (what Monit said, in its words).
    pub events: Vec<MonitEvent>,
}

impl MonitStatus {
    /// What Monit said, in this document, of `service` failing its `family` test: the
    /// message of a failed event (state 1) about it.
    pub fn failure_said(&self, service: &str, family: &str) -> Option<&str> {
        self.events
            .iter()
            .find(|e| e.state == 1 && e.service == service && e.family() == Some(family))
            .map(|e| e.message.as_str())
    }
}

/// An `<event>` of a collector document: Monit's own description of what just happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitEvent {
    pub service: String,
    /// The event bit (the same bits as a service's `<status>`).
    pub id: u32,
    /// Monit's State_Type: 0 succeeded, 1 failed, 2 changed, 3 changed-not, 4 init.
    pub state: u32,
    pub message: String,
}

impl MonitEvent {
    /// The test family the event is about, as [`ServiceStatus::failing`] names it.
    pub fn family(&self) -> Option<&'static str> {
        EVENT_BITS
            .iter()
            .find(|(bit, _)| *bit == self.id)
            .map(|(_, f)| *f)
    }
}

impl MonitStatus {
    /// When Monit collected the newest thing in the document (µs since the epoch): the order of
    /// documents from one Monit, whatever order they arrive in.
    pub fn collected_us(&self) -> Option<i64> {
        self.services.iter().filter_map(|s| s.collected_us).max()
    }
}

fn bad(msg: impl Into<String>) -> CoreError {
    CoreError::MonitXml(msg.into())
}

/// The document's text: its bytes as UTF-8 when they are valid UTF-8, else as the Latin-1
/// Monit declares (see the module's invariants).
fn decode(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(bytes.iter().map(|&b| b as char).collect()),
    }
}

/// One failing test of a service, as a component shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// The component's name, and its rule for several nodes.
    pub component: String,
    pub rule: crate::nodes::NodeRule,
    /// The test family (`connection`, `exist`...): the key a test is recorded under.
    pub family: &'static str,
    pub state: crate::State,
}

/// What one service of a status document says, as the config maps it.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The components it feeds (those `allowed` of the ones the config routes it to).
    pub routes: Vec<crate::ComponentConfig>,
    /// Its failing test families, whatever the components make of them.
    pub families: Vec<&'static str>,
    /// Each failing family on each component it feeds, with the state the component's (or
    /// the global) mapping gives it; a family mapped to nothing is left out.
    pub failing: Vec<Failing>,
}

/// Map one service of a status document: its components (of those the config routes it to,
/// the ones `allowed`), its failing families, and the state of each on each component. It
/// says nothing of whether Monit has a word on the service ([`ServiceStatus::speaks`]): the
/// caller asks.
pub fn observe(
    config: &crate::Config,
    svc: &ServiceStatus,
    allowed: impl Fn(&str) -> bool,
) -> Observed {
    let routes: Vec<_> = config
        .route(&svc.name)
        .into_iter()
        .filter(|c| allowed(&c.name))
        .collect();
    let families = svc.failing();
    let mut failing = Vec::new();
    for comp in &routes {
        for fam in &families {
            if let crate::mapping::Mapped::State(state) =
                crate::mapping::state_for(fam, &comp.mapping.0, &config.mapping.0)
            {
                failing.push(Failing {
                    component: comp.name.clone(),
                    rule: comp.nodes,
                    family: fam,
                    state,
                });
            }
        }
    }
    Observed {
        routes,
        families,
        failing,
    }
}

/// Parse `/_status?format=xml` (bytes as served).
pub fn parse(bytes: &[u8]) -> Result<MonitStatus, CoreError> {
    let text = decode(bytes);
    let doc = roxmltree::Document::parse(&text).map_err(|e| bad(format!("not XML: {e}")))?;
    let root = doc.root_element();
    if !root.has_tag_name("monit") {
        return Err(bad(format!(
            "root element is <{}>, not <monit>",
            root.tag_name().name()
        )));
    }
    let child_text = |n: roxmltree::Node<'_, '_>, tag: &str| {
        n.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .map(|t| t.trim().to_string())
    };
    let server = root.children().find(|c| c.has_tag_name("server"));
    let localhostname = server.and_then(|s| child_text(s, "localhostname"));
    let poll_secs = server
        .and_then(|s| child_text(s, "poll"))
        .and_then(|p| p.parse().ok());
    // `/_status?format=xml` lists <service type=".."><name>; the collector's document wraps
    // them in <services> as <service name=".."><type>.
    let listed = root.children().filter(|c| c.has_tag_name("service")).chain(
        root.children()
            .filter(|c| c.has_tag_name("services"))
            .flat_map(|c| c.children())
            .filter(|c| c.has_tag_name("service")),
    );
    let mut services = Vec::new();
    for s in listed {
        let name = child_text(s, "name")
            .or_else(|| s.attribute("name").map(|n| n.trim().to_string()))
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("a <service> has no <name>"))?;
        let kind = s
            .attribute("type")
            .map(str::to_string)
            .or_else(|| child_text(s, "type"))
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| {
                bad(format!(
                    "service {name:?} has no numeric type attribute (or <type>)"
                ))
            })?;
        let collected_us = match child_text(s, "collected_sec") {
            None => None,
            Some(t) => {
                let usec = child_text(s, "collected_usec")
                    .and_then(|u| u.parse::<i64>().ok())
                    .unwrap_or(0);
                let us = t
                    .parse::<i64>()
                    .ok()
                    .and_then(|sec| sec.checked_mul(1_000_000)?.checked_add(usec))
                    .filter(|us| *us >= 0)
                    .ok_or_else(|| {
                        bad(format!(
                            "service {name:?}: <collected_sec> {t:?} is not a time in seconds since 1970 that fits in microseconds"
                        ))
                    })?;
                Some(us)
            }
        };
        let status = child_text(s, "status")
            .and_then(|t| t.parse::<u32>().ok())
            .ok_or_else(|| bad(format!("service {name:?} has no numeric <status>")))?;
        let monitor = child_text(s, "monitor")
            .and_then(|t| t.parse::<u32>().ok())
            .unwrap_or(0);
        services.push(ServiceStatus {
            name,
            kind,
            status,
            monitor,
            collected_us,
        });
    }
    if services.is_empty() {
        return Err(bad(
            "no <service> elements: is this Monit's /_status?format=xml?",
        ));
    }
    let system = services
        .iter()
        .find(|s| s.kind == 5)
        .map(|s| s.name.clone());
    let events = root
        .children()
        .filter(|c| c.has_tag_name("event"))
        .filter_map(|ev| {
            Some(MonitEvent {
                service: child_text(ev, "service")?,
                id: child_text(ev, "id")?.parse().ok()?,
                state: child_text(ev, "state")?.parse().ok()?,
                message: child_text(ev, "message").unwrap_or_default(),
            })
        })
        .collect();
    let id = root
        .attribute("id")
        .map(str::to_string)
        .or_else(|| server.and_then(|s| child_text(s, "id")));
    let incarnation = root
        .attribute("incarnation")
        .map(str::to_string)
        .or_else(|| server.and_then(|s| child_text(s, "incarnation")));
    Ok(MonitStatus {
        system,
        localhostname,
        poll_secs,
        id,
        incarnation,
        services,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from Monit 5.33 on this machine (trimmed): a failing program, a missing process,
    /// and the system service.
    const SAMPLE: &str = r#"<?xml version="1.0" encoding="ISO-8859-1"?><monit><server><id>e5b9</id><incarnation>1795310119</incarnation><version>5.33.0</version><uptime>4</uptime><poll>1</poll><localhostname>vm</localhostname></server><service type="7"><name>prog</name><status>2097152</status><status_hint>0</status_hint><monitor>1</monitor><program><status>3</status><output><![CDATA[]]></output></program></service><service type="3"><name>sleeper</name><status>512</status><monitor>1</monitor></service><service type="3"><name>paused</name><status>0</status><monitor>0</monitor></service><service type="5"><name>vm</name><status>0</status><monitor>1</monitor></service></monit>"#;

    /// The collector's document (issue 15): real captures of `set mmonit` requests.
    #[test]
    fn parses_the_collectors_document_from_real_captures() {
        let body = |name: &str| {
            let raw = std::fs::read(format!(
                "{}/../../tests/data/mmonit/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            let at = raw.windows(5).position(|w| w == b"<?xml").unwrap();
            raw[at..].to_vec()
        };
        let ok = parse(&body("02-status-all-ok.http")).unwrap();
        assert_eq!(ok.poll_secs, Some(2));
        assert!(ok.services.iter().all(|s| s.failing().is_empty()));
        assert!(ok.services.iter().any(|s| s.kind == 5));
        let bad = parse(&body("04-status-port-and-program-failed.http")).unwrap();
        let failing: Vec<(&str, Vec<&str>)> = bad
            .services
            .iter()
            .filter(|s| !s.failing().is_empty())
            .map(|s| (s.name.as_str(), s.failing()))
            .collect();
        // The program's last run failed, but its test has not fired yet: the bitmask, Monit's
        // verdict, has only the port.
        assert_eq!(failing, [("backend", vec!["connection"])]);
        assert!(bad.collected_us() > ok.collected_us());
    }

    #[test]
    fn parses_monits_own_document() {
        let s = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(s.system.as_deref(), Some("vm"));
        assert_eq!(s.services.len(), 4);
        assert_eq!(s.services[0].failing(), vec!["status"]);
        assert_eq!(s.services[1].failing(), vec!["existence"]);
        assert!(!s.services[2].speaks());
        assert!(s.services[0].speaks());
        assert_eq!(s.id.as_deref(), Some("e5b9"));
        assert_eq!(s.incarnation.as_deref(), Some("1795310119"));
        assert_eq!(type_name(s.services[0].kind), "program");
    }

    /// Monit's first document after a start (or `monit reload`) lists every service as
    /// initialising, status 0: pinned from the real capture, and said to have no word.
    #[test]
    fn an_initialising_service_has_no_word_from_the_real_start_document() {
        let raw = std::fs::read(format!(
            "{}/../../tests/data/mmonit/01-start-event.http",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let at = raw.windows(5).position(|w| w == b"<?xml").unwrap();
        let s = parse(&raw[at..]).unwrap();
        let init: Vec<&ServiceStatus> = s.services.iter().filter(|s| s.monitor == 2).collect();
        assert!(
            !init.is_empty(),
            "the start document has initialising services"
        );
        assert!(init.iter().all(|s| !s.speaks() && s.status == 0));
        assert!(s.id.is_some() && s.incarnation.is_some());
        // The start event carries Monit's own words.
        assert!(s.events.iter().any(|e| !e.message.is_empty()));
        let waiting = ServiceStatus {
            name: "w".into(),
            kind: 3,
            status: 0x200,
            monitor: 0x1 | 0x4,
            collected_us: None,
        };
        assert!(
            waiting.speaks(),
            "a service waiting for its `every` cycle keeps its word"
        );
    }

    #[test]
    fn utf8_names_stay_utf8_though_latin1_is_declared() {
        // Monit writes the monitrc's UTF-8 bytes under encoding="ISO-8859-1".
        let b = SAMPLE.replace("sleeper", "caf\u{e9}-\u{65e5}\u{672c}");
        let s = parse(b.as_bytes()).unwrap();
        assert_eq!(s.services[1].name, "caf\u{e9}-\u{65e5}\u{672c}");
    }

    #[test]
    fn a_collected_time_that_overflows_is_an_error() {
        let b = SAMPLE.replace(
            "<status>512</status>",
            "<status>512</status><collected_sec>9223372036854775807</collected_sec>",
        );
        let e = parse(b.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("collected_sec"), "{e}");
    }

    #[test]
    fn latin1_bytes_are_decoded_not_rejected() {
        let mut b = SAMPLE.replace("sleeper", "caf\u{e9}").into_bytes();
        // Re-encode é as a single Latin-1 byte, as Monit sends it.
        let pos = b.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
        b.splice(pos..pos + 2, [0xe9]);
        let s = parse(&b).unwrap();
        assert_eq!(s.services[1].name, "café");
    }

    #[test]
    fn every_bit_maps_to_a_known_test_and_combined_bits_split() {
        for (_, fam) in EVENT_BITS {
            assert!(crate::mapping::test_spec(fam).is_some(), "{fam}");
        }
        let s = ServiceStatus {
            name: "x".into(),
            kind: 3,
            status: 0x2 | 0x20 | 0x200 | 0x40000000,
            monitor: 1,
            collected_us: None,
        };
        assert_eq!(s.failing(), vec!["resource", "connection", "existence"]);
    }

    #[test]
    fn malformed_documents_are_clear_errors() {
        for (doc, want) in [
            ("<html>login</html>", "not <monit>"),
            ("<monit><server/></monit>", "no <service>"),
            (
                "<monit><service type=\"3\"><status>0</status></service></monit>",
                "no <name>",
            ),
            (
                "<monit><service type=\"3\"><name>a</name><status>x</status></service></monit>",
                "no numeric <status>",
            ),
            (
                "<monit><service><name>a</name><status>0</status></service></monit>",
                "type attribute",
            ),
            ("not xml <<<", "not XML"),
            ("", "not XML"),
        ] {
            let e = parse(doc.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "{doc}: {e}");
        }
    }

    #[test]
    fn observe_maps_a_service_to_its_components_failing_families_and_states() {
        let config = crate::Config::parse(
            "[[component]]\nname = \"api\"\nservices = [\"backend\"]\n\
             [component.mapping]\nconnection = \"partial_outage\"\npermission = \"ignore\"\n\
             [[component]]\nname = \"db\"\nservices = [\"backend\"]\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        // Its connection (0x20) and permission (0x40) tests failing.
        let svc = ServiceStatus {
            name: "backend".into(),
            kind: 3,
            status: 0x20 | 0x40,
            monitor: 1,
            collected_us: None,
        };
        let o = observe(&config, &svc, |_| true);
        assert_eq!(o.routes.len(), 2);
        assert_eq!(o.families, vec!["connection", "permission"]);
        let said: Vec<(String, &str, crate::State)> = o
            .failing
            .iter()
            .map(|f| (f.component.clone(), f.family, f.state))
            .collect();
        let want = [
            ("api", "connection", crate::State::PartialOutage),
            ("db", "connection", crate::State::MajorOutage),
            ("db", "permission", crate::State::PartialOutage),
        ];
        assert_eq!(
            said,
            want.iter()
                .map(|(c, f, s)| (c.to_string(), *f, *s))
                .collect::<Vec<_>>(),
            "api ignores permission; db takes the default mapping"
        );
        // Only the components allowed.
        let only_db = observe(&config, &svc, |c| c == "db");
        assert_eq!(only_db.routes.len(), 1);
        assert!(only_db.failing.iter().all(|f| f.component == "db"));
    }
}
