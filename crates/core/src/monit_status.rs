//! Monit's own view of its services, from its HTTP interface (`/_status?format=xml`).
//!
//! Invariants:
//! - A service's `<status>` is Monit's bitmask of failed event types (monit src/event.h); each
//!   bit is mapped to the same test family the exec-event table uses, so a state learnt from
//!   the XML and one learnt from an exec event land on the same keys.
//! - Monit declares ISO-8859-1: bytes are decoded as Latin-1, never assumed UTF-8.
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
    /// Monit is watching it (`<monitor>` 1 or 2). Unmonitored services say nothing about health.
    pub monitored: bool,
    /// When Monit last checked it, in microseconds since the epoch (collector documents).
    pub collected_us: Option<i64>,
}

impl ServiceStatus {
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
    pub services: Vec<ServiceStatus>,
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

/// Parse `/_status?format=xml` (bytes as served).
pub fn parse(bytes: &[u8]) -> Result<MonitStatus, CoreError> {
    let text: String = bytes.iter().map(|&b| b as char).collect();
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
        let collected_us = child_text(s, "collected_sec")
            .and_then(|t| t.parse::<i64>().ok())
            .map(|sec| {
                sec * 1_000_000
                    + child_text(s, "collected_usec")
                        .and_then(|u| u.parse::<i64>().ok())
                        .unwrap_or(0)
            });
        let status = child_text(s, "status")
            .and_then(|t| t.parse::<u32>().ok())
            .ok_or_else(|| bad(format!("service {name:?} has no numeric <status>")))?;
        let monitored = child_text(s, "monitor")
            .and_then(|t| t.parse::<u32>().ok())
            .is_some_and(|m| m != 0);
        services.push(ServiceStatus {
            name,
            kind,
            status,
            monitored,
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
    Ok(MonitStatus {
        system,
        localhostname,
        poll_secs,
        services,
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
        assert!(!s.services[2].monitored);
        assert_eq!(type_name(s.services[0].kind), "program");
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
            monitored: true,
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
}
