//! A temporary directory for one test, removed when the guard is dropped:
//! at the end of the test, and also when the test panics half-way.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh, empty directory under `std::env::temp_dir()`, named
/// `nm-<tag>-<pid>-<n>`; it and everything in it is removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a directory no other test or test run uses (`tag` only makes
    /// leftovers easy to attribute).
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("nm-{tag}-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Self { path },
                // A leftover of an earlier run with the same process id.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("create {}: {e}", path.display()),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::TempDir;

    #[test]
    fn removed_on_drop_and_when_the_owner_panics() {
        let (a, b) = (TempDir::new("guard"), TempDir::new("guard"));
        assert_ne!(a.path(), b.path(), "unique per guard");
        std::fs::write(a.join("file"), "x").unwrap();
        let kept = a.path().to_owned();
        drop(a);
        assert!(!kept.exists(), "removed on drop, contents included");

        let in_panic = std::panic::catch_unwind(|| {
            let dir = TempDir::new("guard-panic");
            std::fs::write(dir.join("file"), "x").unwrap();
            let path = dir.path().to_owned();
            std::panic::panic_any(path);
        })
        .unwrap_err();
        let path = in_panic.downcast_ref::<std::path::PathBuf>().unwrap();
        assert!(!path.exists(), "removed while unwinding");
    }
}
