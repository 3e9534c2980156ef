//! Writing a file so that readers see the old content or the new, never half, and nobody can
//! aim the write elsewhere.
//!
//! Invariants:
//! - The temporary file is created exclusively (`O_CREAT|O_EXCL`, which never follows a
//!   symlink) under a name nobody can predict: a link planted in a shared directory makes the
//!   create fail, not redirect the write.
//! - The file is fsynced before the rename, and the directory after it.

use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

/// An unpredictable suffix: std's per-process random hash keys, mixed with the pid and a
/// counter (no extra crate for a name that only has to be unguessable and unique).
fn unpredictable() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// Read a small text file that must be a regular file: a FIFO (or a device) at a config or
/// token path would block the reader forever, and Monit would pile up blocked handlers. It is
/// opened without blocking and refused unless it is a regular file.
pub fn read_regular(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = f.metadata()?.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_dir() {
            "a directory"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file but {what}: point it at a plain file"),
        ));
    }
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(text)
}

/// Write `bytes` to `dir/name` atomically, with file mode `mode`.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tries = 0;
    let (tmp, mut f): (PathBuf, std::fs::File) = loop {
        let tmp = dir.join(format!(".{name}.tmp-{}", unpredictable()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
            Err(e) => return Err(e),
        }
    };
    let written = f
        .write_all(bytes)
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&tmp, dir.join(name)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    std::fs::File::open(dir).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once_not_read() {
        let dir = std::env::temp_dir().join(format!("sr-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("config.toml");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo).unwrap_err().to_string();
        assert!(e.contains("a FIFO"), "{e}");
        let e = read_regular(&dir).unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        std::fs::write(dir.join("plain"), "x = 1\n").unwrap();
        assert_eq!(read_regular(&dir.join("plain")).unwrap(), "x = 1\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_planted_symlink_never_redirects_the_write() {
        let dir = std::env::temp_dir().join(format!("sr-atomic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        // A link at the final name is replaced, never followed.
        std::os::unix::fs::symlink(&victim, dir.join("page")).unwrap();
        write_atomic(&dir, "page", b"new", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(dir.join("page")).unwrap(), "new");
        assert!(
            !std::fs::symlink_metadata(dir.join("page"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_ne!(unpredictable(), unpredictable());
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file is left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
