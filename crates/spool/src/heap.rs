//! A fixed heap for SQLite in a process that records one event and exits (the handler).
//!
//! Why: Monit spawns a handler per event, and the handler's cost is measured against a bare
//! commit (issue 7). musl's allocator hands freed memory back to the kernel at once, so SQLite's
//! allocations in a handler cost about 50 `mmap`/`munmap` calls (each `munmap` a TLB flush), and
//! SQLite's page cache allocates 20 pages in bulk and writes a header into each (about 60 page
//! faults for a few pages used). With SQLite's own buddy allocator (memsys5, compiled in by
//! `.cargo/config.toml`) over one reserved region, SQLite makes no further allocator system
//! calls, and only the pages of the region it touches are ever faulted in.
//!
//! Invariants:
//! - The heap is given before SQLite's first use in the process, or not at all: once SQLite is
//!   initialized it refuses a new heap, and the system allocator stays (slower, never wrong).
//! - Only for a bounded event: SQLite's need grows with the event (bound parameters, the record
//!   built from them), so an event larger than [`MAX_EVENT_BYTES`] keeps the system allocator.
//!   A fixed heap cannot grow, so it is four times what the largest event on it needs: the
//!   integration test that records an event at the bound fails with a 4 MiB heap ("out of
//!   memory") and passes with 8 MiB.
//! - Never in a long-running process (the flusher): its need is not bounded by one event.
//! - The region is reserved at run time, by the handler only, never as static memory: under an
//!   address-space limit (`ulimit -v`) static memory made every command fail at exec. With a
//!   limit set, or no room to reserve, SQLite keeps the system allocator.
//! - The operator decides last: `STATUSRELAY_SQLITE_HEAP=system` keeps the system allocator, and
//!   a number of MiB (1 to 32) sizes the heap. A setting that is neither keeps the system
//!   allocator and says why; it never stops an event from being recorded.

use std::ffi::{c_int, c_void};

use rusqlite::ffi;

/// Size of the fixed heap. It is reserved (mapped) only by the handler, when SQLite is given it,
/// and costs only the pages SQLite touches (a handler touches well under 1 MiB of it); the size
/// is headroom for the largest event. Other commands never reserve it.
pub const HEAP_BYTES: usize = 32 << 20;

/// Largest event (bytes of the MONIT_* variables or the `event` arguments) recorded on the
/// fixed heap. Monit's own events are under 20 KiB (a description is capped at 16 KiB).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// SQLite rounds every allocation up to a power of two of at least this many bytes.
const MIN_ALLOCATION: c_int = 64;

/// Is the process's address space limited (`ulimit -v`, RLIMIT_AS)? Then nothing is reserved
/// ahead of need: a fixed heap (and its share of a tight limit) would only make the process
/// fail sooner; the system allocator takes what is needed, and no more.
pub fn address_space_limited() -> bool {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut lim) };
    rc != 0 || lim.rlim_cur != libc::RLIM_INFINITY
}

/// Reserve `bytes` of zeroed memory, faulted in only where touched; never released (the heap
/// lives as long as the process). None when the address space has no room.
fn reserve(bytes: usize) -> Option<*mut c_void> {
    // SAFETY: an anonymous private mapping with no address hint touches nothing that exists.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    (p != libc::MAP_FAILED).then_some(p)
}

/// Which allocator SQLite uses in this process, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocator {
    /// SQLite allocates from a fixed heap of this many bytes.
    Fixed(usize),
    /// SQLite uses the system allocator, for this reason.
    System(String),
    /// SQLite uses the system allocator because [`SETTING`] holds this, which is not a setting.
    BadSetting(String),
}

impl std::fmt::Display for Allocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Allocator::Fixed(bytes) => write!(f, "a fixed {} MiB heap", bytes >> 20),
            Allocator::System(why) => write!(f, "the system allocator ({why})"),
            Allocator::BadSetting(value) => write!(
                f,
                "the system allocator ({SETTING}={value:?} is neither 'system' nor a size in MiB from 1 to {})",
                HEAP_BYTES >> 20
            ),
        }
    }
}

/// The environment variable that overrides the choice: `system`, or the heap's size in MiB.
pub const SETTING: &str = "STATUSRELAY_SQLITE_HEAP";

/// Give SQLite the fixed heap for a process that records one event of `event_bytes` and exits,
/// unless `setting` (the value of [`SETTING`]) says otherwise. Call it before anything else
/// touches SQLite; it says which allocator SQLite ended up with.
pub fn for_one_event(event_bytes: usize, setting: Option<&str>) -> Allocator {
    let heap_bytes = match setting.map(str::trim) {
        None | Some("") => HEAP_BYTES,
        Some("system") => return Allocator::System(format!("{SETTING}=system")),
        Some(s) => match s.parse::<usize>() {
            Ok(mib @ 1..) if mib << 20 <= HEAP_BYTES => mib << 20,
            _ => return Allocator::BadSetting(s.to_string()),
        },
    };
    if event_bytes > MAX_EVENT_BYTES {
        return Allocator::System(format!(
            "the event is {event_bytes} bytes, over the fixed heap's bound of {MAX_EVENT_BYTES}"
        ));
    }
    if address_space_limited() {
        return Allocator::System("the address space is limited (ulimit -v)".into());
    }
    let Some(heap) = reserve(heap_bytes) else {
        return Allocator::System(format!(
            "{} MiB of address space could not be reserved",
            heap_bytes >> 20
        ));
    };
    // SAFETY: sqlite3_config is called with the argument types its documentation gives for each
    // option, before SQLite is initialized (if it already is, it answers SQLITE_MISUSE and
    // changes nothing). The heap is never unmapped, so it outlives every SQLite allocation.
    let refused = unsafe {
        [
            // The heap serializes itself; global memory statistics would add a second mutex
            // and bookkeeping to every allocation.
            (
                "MEMSTATUS",
                ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as c_int),
            ),
            // No bulk allocation of 20 pages per page cache: allocate each page when needed.
            (
                "PAGECACHE",
                ffi::sqlite3_config(
                    ffi::SQLITE_CONFIG_PAGECACHE,
                    std::ptr::null_mut::<c_void>(),
                    0 as c_int,
                    0 as c_int,
                ),
            ),
            (
                "HEAP",
                ffi::sqlite3_config(
                    ffi::SQLITE_CONFIG_HEAP,
                    heap,
                    heap_bytes as c_int,
                    MIN_ALLOCATION,
                ),
            ),
        ]
        .into_iter()
        .find(|(_, rc)| *rc != ffi::SQLITE_OK)
    };
    match refused {
        None => Allocator::Fixed(heap_bytes),
        Some((option, rc)) => Allocator::System(format!(
            "SQLite refused SQLITE_CONFIG_{option} with code {rc}: {}",
            if rc == ffi::SQLITE_MISUSE {
                "it was already in use in this process"
            } else {
                "it was built without SQLITE_ENABLE_MEMSYS5"
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Only answers that are decided before SQLite is touched: the heap itself is process-wide
    // and is tested through the binary (tests/integration/handler.rs).
    #[test]
    fn the_setting_and_the_bound_decide_before_sqlite_is_touched() {
        let system = |event, setting| match for_one_event(event, setting) {
            Allocator::System(why) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(system(10, Some("system")), "STATUSRELAY_SQLITE_HEAP=system");
        for bad in ["0", "33", "-1", "big", "4M"] {
            let a = for_one_event(10, Some(bad));
            assert_eq!(a, Allocator::BadSetting(bad.to_string()));
            assert!(
                a.to_string()
                    .contains("neither 'system' nor a size in MiB from 1 to 32"),
                "{a}"
            );
        }
        assert!(system(MAX_EVENT_BYTES + 1, None).contains("over the fixed heap's bound"));
        assert!(system(MAX_EVENT_BYTES + 1, Some("8")).contains("over the fixed heap's bound"));
    }
}
