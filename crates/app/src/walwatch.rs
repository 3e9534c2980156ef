//! Waking the flusher when another process commits to the spool: inotify on the spool's WAL
//! file (Linux), so a handler's event is seen as it is committed rather than at the next poll.
//!
//! Invariants:
//! - Only ever makes the flusher earlier: anything that goes wrong (no WAL file yet, no
//!   inotify, a full queue) falls back to the poll, which stays the upper bound of a wait.
//! - The file descriptor is closed with the watch (Drop); nothing is read but the events.

use std::path::Path;
use std::time::Duration;

/// A watch on `<spool>-wal` for writes.
pub struct WalWatch {
    fd: libc::c_int,
}

impl WalWatch {
    /// Watch the spool's WAL; None when it cannot be watched (then poll).
    pub fn new(spool: &Path) -> Option<WalWatch> {
        let mut wal = spool.as_os_str().to_owned();
        wal.push("-wal");
        let path =
            std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(wal.as_os_str())).ok()?;
        // SAFETY: plain syscalls on a descriptor this struct owns; `path` outlives the call.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        let watch = WalWatch { fd };
        // SAFETY: as above.
        let wd = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_MODIFY) };
        (wd >= 0).then_some(watch)
    }

    /// Wait at most `d` for a write to the WAL; true when there was one.
    pub fn wait(&self, d: Duration) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = d.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one pollfd, owned here.
        let r = unsafe { libc::poll(&mut p, 1, ms) };
        if r <= 0 {
            return false;
        }
        // Drain what is queued (non-blocking): the next wait starts from nothing.
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a buffer of its own length.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
        }
        true
    }
}

impl Drop for WalWatch {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Instant;

    #[test]
    fn a_write_to_the_wal_wakes_the_waiter_and_silence_times_out() {
        let dir = std::env::temp_dir().join(format!("sr-walwatch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let spool = dir.join("spool.db");
        assert!(WalWatch::new(&spool).is_none(), "no WAL file yet: poll");
        std::fs::write(dir.join("spool.db-wal"), b"").unwrap();
        let w = WalWatch::new(&spool).expect("a WAL to watch");
        assert!(!w.wait(Duration::from_millis(20)), "nothing written");
        let writer = {
            let wal = dir.join("spool.db-wal");
            std::thread::spawn(move || {
                let mut f = std::fs::OpenOptions::new().append(true).open(wal).unwrap();
                f.write_all(b"frame").unwrap();
            })
        };
        let t = Instant::now();
        assert!(w.wait(Duration::from_secs(10)));
        assert!(t.elapsed() < Duration::from_secs(5));
        writer.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
