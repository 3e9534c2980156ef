//! The binary's allocator: a bump arena first, the system allocator after.
//!
//! Why: Monit spawns a handler per event. musl's allocator returns freed memory to the kernel at
//! once, so a handler made about 25 `mmap`/`munmap` calls for Rust's allocations (the command
//! line, the config, the event), each `munmap` a TLB flush. A handler allocates a few hundred KiB
//! in all and exits; it never needs freed memory back.
//!
//! Invariants:
//! - Memory from the arena is never reused or returned: freeing it is a no-op. Memory from the
//!   system allocator is freed and grown there (its realloc grows in place when it can). A
//!   pointer's address says which one it came from.
//! - The arena serves allocations until it is stopped ([`stop_bumping`], which every command but
//!   the handler's calls before its work) or full; then the system allocator serves every
//!   allocation. A long-running process (the flusher) so keeps only what it allocated while its
//!   arguments were parsed.
//! - Safe from any thread: the bump pointer only moves forward, by compare-and-swap.
//! - Only the `statusrelay` binary installs it ([`Global`]); library tests use the system allocator.
//! - The region is reserved (mmap) at the first allocation, never static memory: under an
//!   address-space limit (`ulimit -v`) static memory made every command, `--version` included,
//!   fail at exec. With a limit set, or no room, the arena reserves nothing and is never used.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Size of the binary's arena, reserved at the first allocation and faulted in only where used.
pub const ARENA_BYTES: usize = 8 << 20;

/// `base` before the first allocation has reserved the region.
const UNMAPPED: usize = 0;
/// `base` when there is no region: the address space is limited, or had no room.
const NO_REGION: usize = 1;

/// A bump arena of `N` bytes in front of the system allocator.
pub struct Arena<const N: usize> {
    /// Address of the region, once reserved (or [`UNMAPPED`], [`NO_REGION`]).
    base: AtomicUsize,
    /// Offset of the first free byte.
    next: AtomicUsize,
    stopped: AtomicBool,
}

// The arena hands out disjoint ranges (the compare-and-swap on `next` decides who gets which),
// and never touches a range again once handed out.
unsafe impl<const N: usize> Sync for Arena<N> {}

impl<const N: usize> Arena<N> {
    pub const fn new() -> Self {
        Arena {
            base: AtomicUsize::new(UNMAPPED),
            next: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        }
    }

    /// Serve every later allocation from the system allocator.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Bytes of the arena handed out so far.
    pub fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    /// The region's address, reserving it at the first call. None under an address-space
    /// limit (`ulimit -v`: reserving ahead of need only makes the process fail sooner) or when
    /// the reservation fails; the system allocator then serves everything.
    fn region(&self) -> Option<usize> {
        match self.base.load(Ordering::Acquire) {
            NO_REGION => return None,
            UNMAPPED => {}
            b => return Some(b),
        }
        let mapped = if statusrelay_spool::heap::address_space_limited() {
            None
        } else {
            // SAFETY: an anonymous private mapping with no address hint touches nothing that
            // exists; it allocates nothing through the global allocator.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    N,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            (p != libc::MAP_FAILED).then_some(p as usize)
        };
        let want = mapped.unwrap_or(NO_REGION);
        match self
            .base
            .compare_exchange(UNMAPPED, want, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => mapped,
            Err(other) => {
                // Another thread reserved (or gave up) first: use its answer, drop ours.
                if let Some(p) = mapped {
                    // SAFETY: our own mapping of N bytes, never handed out.
                    unsafe { libc::munmap(p as *mut libc::c_void, N) };
                }
                (other != NO_REGION).then_some(other)
            }
        }
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let base = self.base.load(Ordering::Acquire);
        base > NO_REGION && (base..base + N).contains(&(ptr as usize))
    }

    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        if self.stopped.load(Ordering::Relaxed) {
            return None;
        }
        let base = self.region()?;
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            // Align the address, not the offset.
            let start = (base + next).checked_next_multiple_of(layout.align())? - base;
            let end = start.checked_add(layout.size()).filter(|&e| e <= N)?;
            match self
                .next
                .compare_exchange_weak(next, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some((base + start) as *mut u8),
                Err(now) => next = now,
            }
        }
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

unsafe impl<const N: usize> GlobalAlloc for Arena<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(p) => p,
            // SAFETY: the caller's layout contract is passed on unchanged.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            // The region is mapped zeroed and its bytes are handed out once.
            Some(p) => p,
            // SAFETY: as in alloc.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            // SAFETY: not the arena's, so the system allocator gave it out with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            // The system's own realloc can grow in place; allocating anew and copying (the
            // default) made a long-running flusher's peak 1 MB larger.
            // SAFETY: not the arena's, so the system allocator gave it out with this layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees new_size is valid for layout's alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: as in alloc.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both ranges are valid for the smaller size, and the new one is fresh
            // memory, so they do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}

static ARENA: Arena<ARENA_BYTES> = Arena::new();

/// The allocator `main.rs` installs with `#[global_allocator]`: the process's [`Arena`].
pub struct Global;

unsafe impl GlobalAlloc for Global {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe { ARENA.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe { ARENA.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { ARENA.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        unsafe { ARENA.realloc(ptr, layout, new_size) }
    }
}

/// From now on, the process allocates from the system allocator (for anything but the handler).
pub fn stop_bumping() {
    ARENA.stop();
}

/// Bytes of the process's arena used so far (0 where [`Global`] is not installed).
pub fn arena_used() -> usize {
    ARENA.used()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc<const N: usize>(a: &Arena<N>, size: usize, align: usize) -> *mut u8 {
        let p = unsafe { a.alloc(Layout::from_size_align(size, align).unwrap()) };
        assert!(!p.is_null());
        assert_eq!(p as usize % align, 0, "alignment {align}");
        p
    }

    #[test]
    fn the_arena_hands_out_aligned_disjoint_memory_then_falls_back_to_the_system() {
        let a = Box::new(Arena::<4096>::new());
        let x = alloc(&a, 3, 1);
        let y = alloc(&a, 8, 8);
        let z = alloc(&a, 100, 64);
        for p in [x, y, z] {
            assert!(a.owns(p));
        }
        assert!((y as usize) >= x as usize + 3);
        assert!((z as usize) >= y as usize + 8);
        // Writing each range whole must not disturb the others.
        unsafe {
            std::ptr::write_bytes(x, 1, 3);
            std::ptr::write_bytes(y, 2, 8);
            std::ptr::write_bytes(z, 3, 100);
            assert_eq!(*x.add(2), 1);
            assert_eq!(*y.add(7), 2);
            assert_eq!(*z, 3);
        }
        // Too big for what is left: the system's, and freed there.
        let big = alloc(&a, 4000, 8);
        assert!(!a.owns(big));
        unsafe { a.dealloc(big, Layout::from_size_align(4000, 8).unwrap()) };
        // Freeing the arena's memory changes nothing; a small allocation still fits.
        let used = a.used();
        unsafe { a.dealloc(z, Layout::from_size_align(100, 64).unwrap()) };
        assert_eq!(a.used(), used);
        assert!(a.owns(alloc(&a, 16, 8)));
    }

    #[test]
    fn a_stopped_arena_serves_nothing_more_and_keeps_what_it_gave() {
        let a = Box::new(Arena::<4096>::new());
        let kept = alloc(&a, 32, 8);
        unsafe { std::ptr::write_bytes(kept, 7, 32) };
        a.stop();
        let later = alloc(&a, 32, 8);
        assert!(!a.owns(later));
        unsafe {
            assert_eq!(*kept.add(31), 7);
            a.dealloc(later, Layout::from_size_align(32, 8).unwrap());
        }
    }

    #[test]
    fn realloc_keeps_the_contents_from_the_arena_into_the_system_and_within_it() {
        let a = Box::new(Arena::<256>::new());
        let l = Layout::from_size_align(16, 8).unwrap();
        let p = alloc(&a, 16, 8);
        unsafe { std::ptr::copy_nonoverlapping(b"0123456789abcdef".as_ptr(), p, 16) };
        // Grows within the arena.
        let q = unsafe { a.realloc(p, l, 64) };
        assert!(a.owns(q));
        assert_eq!(
            unsafe { std::slice::from_raw_parts(q, 16) },
            b"0123456789abcdef"
        );
        // Grows out of it, into the system allocator, and on there.
        let r = unsafe { a.realloc(q, Layout::from_size_align(64, 8).unwrap(), 1024) };
        assert!(!a.owns(r));
        assert_eq!(
            unsafe { std::slice::from_raw_parts(r, 16) },
            b"0123456789abcdef"
        );
        let s = unsafe { a.realloc(r, Layout::from_size_align(1024, 8).unwrap(), 4096) };
        assert_eq!(
            unsafe { std::slice::from_raw_parts(s, 16) },
            b"0123456789abcdef"
        );
        unsafe { a.dealloc(s, Layout::from_size_align(4096, 8).unwrap()) };
    }

    #[test]
    fn zeroed_memory_is_zero_from_the_arena_and_from_the_system() {
        let a = Box::new(Arena::<256>::new());
        for size in [64, 1024] {
            let layout = Layout::from_size_align(size, 16).unwrap();
            let p = unsafe { a.alloc_zeroed(layout) };
            assert!(
                unsafe { std::slice::from_raw_parts(p, size) }
                    .iter()
                    .all(|&b| b == 0)
            );
            unsafe { a.dealloc(p, layout) };
        }
    }

    #[test]
    fn threads_never_get_the_same_memory() {
        let a = std::sync::Arc::new(Arena::<{ 1 << 16 }>::new());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let a = a.clone();
                std::thread::spawn(move || {
                    (0..200)
                        .map(|_| {
                            let p = alloc(&a, 24, 8);
                            unsafe { std::ptr::write_bytes(p, t as u8, 24) };
                            p as usize
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<usize> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort();
        for w in all.windows(2) {
            assert!(w[1] - w[0] >= 24, "overlap at {w:?}");
        }
    }
}
