//! The documented tables: every test family statusrelay knows with its default meaning, and
//! every event string Monit 5.33 sends with its test and effect. Data only; `mapping` reads
//! them, and README.md documents them (a test holds the two together).

use super::{Effect, Mapped};
use crate::State;

/// A Monit test family and its default meaning.
#[derive(Debug, Clone, Copy)]
pub struct TestSpec {
    /// Key used in the spool and in `[mapping]` config tables.
    pub key: &'static str,
    /// Default state while failed, or Ignore.
    pub default: Mapped,
    /// Monit sends no recovery for this test (restart-limit `Timeout`, `Content match`), so any
    /// recovery of the same service clears it as well.
    pub one_shot: bool,
    /// Why this default, for the docs.
    pub why: &'static str,
}

const fn t(key: &'static str, default: Mapped, one_shot: bool, why: &'static str) -> TestSpec {
    TestSpec {
        key,
        default,
        one_shot,
        why,
    }
}

use Mapped::{Ignore, State as S};
use State::{MajorOutage, PartialOutage, PerformanceIssues};

/// Every test family statusrelay knows, with its default. `other` covers event strings matched
/// only by the pairing rule.
pub const TESTS: &[TestSpec] = &[
    t(
        "existence",
        S(MajorOutage),
        false,
        "the process, file or filesystem is gone",
    ),
    t(
        "connection",
        S(MajorOutage),
        false,
        "the service does not answer on its port or protocol",
    ),
    t(
        "status",
        S(MajorOutage),
        false,
        "the health-check program says the service is failing",
    ),
    t(
        "timeout",
        S(MajorOutage),
        true,
        "restart limit hit: Monit cannot keep the service running",
    ),
    t(
        "link",
        S(MajorOutage),
        false,
        "the network interface is down",
    ),
    t(
        "icmp",
        S(MajorOutage),
        false,
        "the host does not answer ping",
    ),
    t(
        "execution",
        S(MajorOutage),
        false,
        "Monit could not run the check or action",
    ),
    t(
        "data",
        S(MajorOutage),
        false,
        "Monit could not read the service's data",
    ),
    t(
        "heartbeat",
        S(MajorOutage),
        false,
        "the service stopped sending heartbeats",
    ),
    t(
        "resource",
        S(PerformanceIssues),
        false,
        "cpu, memory, load, disk space or inodes over the limit: up but strained",
    ),
    t(
        "upload_bytes",
        S(PerformanceIssues),
        false,
        "bandwidth limit exceeded: up but strained",
    ),
    t(
        "upload_packets",
        S(PerformanceIssues),
        false,
        "bandwidth limit exceeded: up but strained",
    ),
    t(
        "download_bytes",
        S(PerformanceIssues),
        false,
        "bandwidth limit exceeded: up but strained",
    ),
    t(
        "download_packets",
        S(PerformanceIssues),
        false,
        "bandwidth limit exceeded: up but strained",
    ),
    t(
        "saturation",
        S(PerformanceIssues),
        false,
        "link saturated: up but strained",
    ),
    t(
        "speed",
        S(PerformanceIssues),
        false,
        "link speed below the limit: up but strained",
    ),
    t(
        "uptime",
        S(PerformanceIssues),
        false,
        "recently restarted: possibly degraded while warming up",
    ),
    t(
        "checksum",
        S(PartialOutage),
        false,
        "a file the service depends on has the wrong content",
    ),
    t(
        "size",
        S(PartialOutage),
        false,
        "a file the service depends on has the wrong size",
    ),
    t(
        "permission",
        S(PartialOutage),
        false,
        "a file the service depends on has the wrong mode",
    ),
    t(
        "uid",
        S(PartialOutage),
        false,
        "a file or process has the wrong owner",
    ),
    t(
        "gid",
        S(PartialOutage),
        false,
        "a file or process has the wrong group",
    ),
    t(
        "timestamp",
        S(PartialOutage),
        false,
        "a file is stale (not updated in time) or too new",
    ),
    t(
        "pid",
        S(PartialOutage),
        false,
        "the process PID test failed",
    ),
    t(
        "ppid",
        S(PartialOutage),
        false,
        "the process parent PID test failed",
    ),
    t(
        "fsflags",
        S(PartialOutage),
        false,
        "filesystem flags test failed",
    ),
    t(
        "content",
        S(PartialOutage),
        false,
        "the content test failed",
    ),
    t(
        "content_match",
        Ignore,
        true,
        "a log line matched: a notice, not a service state",
    ),
    t(
        "type",
        S(PartialOutage),
        false,
        "the path is of the wrong type",
    ),
    t(
        "instance",
        Ignore,
        false,
        "Monit itself started, stopped or reloaded",
    ),
    t("action", Ignore, false, "an action Monit ran"),
    t(
        "other",
        S(PartialOutage),
        false,
        "an unlisted test failed (matched by the pairing rule)",
    ),
];

/// The documented table: every event string Monit 5.33 sends, with its test and effect.
pub const EVENT_TABLE: &[(&str, &str, Effect)] = &[
    ("Does not exist", "existence", Effect::Fail),
    ("Exists", "existence", Effect::Recover),
    ("Existence changed", "existence", Effect::Info),
    ("Connection failed", "connection", Effect::Fail),
    ("Connection succeeded", "connection", Effect::Recover),
    ("Connection changed", "connection", Effect::Info),
    ("Status failed", "status", Effect::Fail),
    ("Status succeeded", "status", Effect::Recover),
    ("Status changed", "status", Effect::Info),
    ("Timeout", "timeout", Effect::Fail),
    ("Timeout recovery", "timeout", Effect::Recover),
    ("Link down", "link", Effect::Fail),
    ("Link up", "link", Effect::Recover),
    ("Link changed", "link", Effect::Info),
    ("ICMP failed", "icmp", Effect::Fail),
    ("ICMP succeeded", "icmp", Effect::Recover),
    ("Execution failed", "execution", Effect::Fail),
    ("Execution succeeded", "execution", Effect::Recover),
    ("Data access error", "data", Effect::Fail),
    ("Data access succeeded", "data", Effect::Recover),
    ("Heartbeat failed", "heartbeat", Effect::Fail),
    ("Heartbeat succeeded", "heartbeat", Effect::Recover),
    ("Resource limit matched", "resource", Effect::Fail),
    ("Resource limit succeeded", "resource", Effect::Recover),
    ("Upload bytes exceeded", "upload_bytes", Effect::Fail),
    ("Upload bytes ok", "upload_bytes", Effect::Recover),
    ("Upload packets exceeded", "upload_packets", Effect::Fail),
    ("Upload packets ok", "upload_packets", Effect::Recover),
    ("Download bytes exceeded", "download_bytes", Effect::Fail),
    ("Download bytes ok", "download_bytes", Effect::Recover),
    (
        "Download packets exceeded",
        "download_packets",
        Effect::Fail,
    ),
    ("Download packets ok", "download_packets", Effect::Recover),
    ("Saturation exceeded", "saturation", Effect::Fail),
    ("Saturation ok", "saturation", Effect::Recover),
    ("Speed failed", "speed", Effect::Fail),
    ("Speed ok", "speed", Effect::Recover),
    ("Uptime failed", "uptime", Effect::Fail),
    ("Uptime succeeded", "uptime", Effect::Recover),
    ("Checksum failed", "checksum", Effect::Fail),
    ("Checksum succeeded", "checksum", Effect::Recover),
    ("Checksum changed", "checksum", Effect::Info),
    ("Size failed", "size", Effect::Fail),
    ("Size succeeded", "size", Effect::Recover),
    ("Size changed", "size", Effect::Info),
    ("Permission failed", "permission", Effect::Fail),
    ("Permission succeeded", "permission", Effect::Recover),
    ("Permission changed", "permission", Effect::Info),
    ("UID failed", "uid", Effect::Fail),
    ("UID succeeded", "uid", Effect::Recover),
    ("GID failed", "gid", Effect::Fail),
    ("GID succeeded", "gid", Effect::Recover),
    ("Timestamp failed", "timestamp", Effect::Fail),
    ("Timestamp succeeded", "timestamp", Effect::Recover),
    ("Timestamp changed", "timestamp", Effect::Info),
    ("PID failed", "pid", Effect::Fail),
    ("PID succeeded", "pid", Effect::Recover),
    ("PID changed", "pid", Effect::Info),
    ("PPID failed", "ppid", Effect::Fail),
    ("PPID succeeded", "ppid", Effect::Recover),
    ("PPID changed", "ppid", Effect::Info),
    ("Filesystem flags failed", "fsflags", Effect::Fail),
    ("Filesystem flags succeeded", "fsflags", Effect::Recover),
    ("Filesystem flags changed", "fsflags", Effect::Info),
    ("Content failed", "content", Effect::Fail),
    ("Content succeeded", "content", Effect::Recover),
    ("Content match", "content_match", Effect::Fail),
    ("Content doesn't match", "content_match", Effect::Info),
    ("Invalid type", "type", Effect::Fail),
    ("Type succeeded", "type", Effect::Recover),
    ("Monit instance changed", "instance", Effect::Info),
    ("Monit instance failed", "instance", Effect::Fail),
    ("Monit instance succeeded", "instance", Effect::Recover),
    ("Action done", "action", Effect::Info),
    ("Started", "action", Effect::Info),
    ("Stopped", "action", Effect::Info),
];
