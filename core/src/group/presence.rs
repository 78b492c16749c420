//! Presence: every member process holds a shared `flock` on the group's
//! `<name>.group.members` file for as long as it is a member. It answers
//! one question the keeper's name lock cannot: when nobody keeps the name,
//! is the group gone, or is a takeover under way? A would-be creator that
//! holds the name takes the presence lock exclusively without waiting:
//! if it cannot, live members exist and one of them is about to take the
//! keeper's role over, so it must not lay out a second group under the
//! same name (its joiners would never meet the others). The kernel drops
//! a dead member's lock, however it died.
//!
//! The last member to go unlinks the file while holding it exclusively;
//! whoever locks a file must then check that the path still names it (as
//! `control/claim.rs` does for names), and starts over if not.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::control::claim::{names_same_inode, try_flock};

/// A held presence lock (shared, or exclusive while creating).
#[derive(Debug)]
pub(crate) struct Presence {
    path: PathBuf,
    file: File,
}

fn open(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).create(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(path)
}

impl Presence {
    /// A member's shared lock (waits for nothing: a creator holds the
    /// exclusive lock only for the instant it takes to downgrade it).
    pub(crate) fn member(path: PathBuf) -> io::Result<Presence> {
        // Bounded: each pass either locks the file the path names, or finds
        // it replaced (by a last member's unlink) and tries the new one.
        for _ in 0..1000 {
            let file = open(&path)?;
            if !try_flock(&file, libc::LOCK_SH)? {
                std::thread::yield_now();
                continue;
            }
            if names_same_inode(&file, &path)? {
                return Ok(Presence { path, file });
            }
        }
        Err(io::Error::new(io::ErrorKind::WouldBlock, "the group's presence file keeps changing"))
    }

    /// A creator's lock: `Ok(None)` if members are alive (a takeover is
    /// under way: do not create). Downgrade with [`Presence::share`] once
    /// the group exists.
    pub(crate) fn creator(path: PathBuf) -> io::Result<Option<Presence>> {
        for _ in 0..1000 {
            let file = open(&path)?;
            if !try_flock(&file, libc::LOCK_EX)? {
                return Ok(None);
            }
            if names_same_inode(&file, &path)? {
                return Ok(Some(Presence { path, file }));
            }
        }
        Err(io::Error::new(io::ErrorKind::WouldBlock, "the group's presence file keeps changing"))
    }

    /// Turns a creator's exclusive lock into a member's shared one.
    pub(crate) fn share(&self) -> io::Result<()> {
        if try_flock(&self.file, libc::LOCK_SH)? {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WouldBlock, "cannot downgrade the presence lock"))
        }
    }
}

impl Drop for Presence {
    /// Lets go; the last member unlinks the file (holding it exclusively,
    /// so no member can be holding it: a creator that locks the unlinked
    /// inode afterwards sees the path no longer names it and retries).
    fn drop(&mut self) {
        if try_flock(&self.file, libc::LOCK_EX).unwrap_or(false)
            && names_same_inode(&self.file, &self.path).unwrap_or(false)
        {
            let _ = std::fs::remove_file(&self.path);
        }
        // Closing `file` releases the lock.
    }
}
