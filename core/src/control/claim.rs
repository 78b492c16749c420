//! The claim on a name: an exclusive `flock` on `<name>.lock`, held for as
//! long as a listener lives. The kernel drops the lock when its holder dies,
//! however it dies, so a socket file whose lock is free is a crashed
//! listener's leftover and may be replaced. This file must never unlink a
//! name's files without holding that name's lock.
//!
//! Why the order in `acquire` and `drop` is race-free:
//! - A binder may open the lock file just before its holder unlinks it, then
//!   lock that unlinked inode once the holder closes it. So after locking,
//!   the binder checks that the path still names the inode it locked (fstat
//!   against lstat) and otherwise starts over with a fresh file. At any time
//!   at most one process holds the lock on the inode the path names.
//! - On drop the socket file is unlinked first, while the lock is held, so
//!   it cannot be a successor's socket. The lock file is unlinked next, still
//!   held, so anyone who locks it afterwards finds it unlinked and retries.
//!   Only then is the lock fd closed. Closing first would let a binder lock
//!   the old file, after which our unlink would delete a live claim's file
//!   and a third binder could claim the name alongside it.

use super::listener::BindError;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A held claim on one name (see the module header).
#[derive(Debug)]
pub(super) struct NameClaim {
    socket_path: PathBuf,
    lock_path: PathBuf,
    /// Declared last: closed (releasing the lock) after `drop` has run.
    _lock: File,
}

impl NameClaim {
    /// Takes the claim on `name`, or reports `InUse` if a live listener
    /// holds it. Never blocks.
    pub(super) fn acquire(name: &str, socket_path: PathBuf, lock_path: PathBuf) -> Result<Self, BindError> {
        let io_error = |op| move |source| BindError::Io { op, source };
        loop {
            // std opens with O_CLOEXEC: a child we spawn must not inherit
            // (and so outlive us holding) the lock.
            let lock = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&lock_path)
                .map_err(io_error("open lock file"))?;
            if !try_lock_exclusive(&lock).map_err(io_error("flock"))? {
                return Err(BindError::InUse { name: name.to_owned() });
            }
            if names_same_inode(&lock, &lock_path).map_err(io_error("stat lock file"))? {
                return Ok(NameClaim { socket_path, lock_path, _lock: lock });
            }
            // We locked a file its previous holder has since unlinked;
            // dropping `lock` releases it and we try the current one.
        }
    }

    /// Removes a crashed listener's socket file, if any. Holding the claim
    /// proves nobody is listening on it.
    pub(super) fn remove_stale_socket(&self) -> io::Result<()> {
        match fs::remove_file(&self.socket_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    pub(super) fn socket_path(&self) -> &Path {
        &self.socket_path
    }
}

impl Drop for NameClaim {
    fn drop(&mut self) {
        // Errors are ignored: a file already gone is the state we want, and
        // nothing else could be done about a failure here.
        let _ = fs::remove_file(&self.socket_path);
        let _ = fs::remove_file(&self.lock_path);
        // `self._lock` is closed after this body returns, releasing the lock.
    }
}

/// `flock(LOCK_EX | LOCK_NB)`: `Ok(false)` if another open file holds it.
fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    try_flock(file, libc::LOCK_EX)
}

/// `flock(op | LOCK_NB)` (`op`: LOCK_EX or LOCK_SH): `Ok(false)` if a
/// conflicting lock is held through another open file.
pub(crate) fn try_flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock takes an fd we own (borrowed from `file`) and flags;
        // it touches no memory of ours.
        let r = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(err),
        }
    }
}

/// Whether `path` still names the inode `file` has open.
pub(crate) fn names_same_inode(file: &File, path: &Path) -> io::Result<bool> {
    let held = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == held.dev() && named.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}
