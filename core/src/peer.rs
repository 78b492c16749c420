//! Knowing when a peer process is gone, without polling its shared memory:
//! a pidfd becomes readable when the process exits. (Flows will learn it from
//! their control socket hanging up; the pidfd serves rings used directly.)

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A watch on one process.
#[derive(Debug)]
pub struct PeerWatch {
    pidfd: OwnedFd,
}

impl PeerWatch {
    /// Watches process `pid`. Fails if it does not exist (already gone).
    pub fn open(pid: u32) -> io::Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
        // it touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return Err(io::Error::new(err.kind(), format!("pidfd_open({pid}): {err}")));
        }
        // SAFETY: the syscall returned a fresh descriptor that nothing else owns.
        Ok(PeerWatch { pidfd: unsafe { OwnedFd::from_raw_fd(fd as i32) } })
    }

    /// Whether the process has exited (never blocks).
    pub fn is_gone(&self) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: `pfd` is one valid pollfd, alive for the call; timeout 0.
        let r = unsafe { libc::poll(&mut pfd, 1, 0) };
        if r < 0 {
            let err = io::Error::last_os_error();
            return Err(io::Error::new(err.kind(), format!("poll(pidfd): {err}")));
        }
        Ok(r > 0 && pfd.revents & libc::POLLIN != 0)
    }
}

impl AsRawFd for PeerWatch {
    fn as_raw_fd(&self) -> i32 {
        self.pidfd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_child_exit() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let watch = PeerWatch::open(child.id()).unwrap();
        assert!(!watch.is_gone().unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(watch.is_gone().unwrap());
    }
}
