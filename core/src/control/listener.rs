//! The listening end of a name: binds `<name>.sock` in the runtime directory
//! and accepts control connections. It must never take over a name a live
//! listener holds, nor leave its files behind when dropped; a crashed
//! listener's leftovers are reclaimed by the next bind (see `claim.rs`).

use super::addr::{PathTooLong, UnixAddr};
use super::claim::NameClaim;
use super::conn::{seqpacket_socket, ControlConn};
use super::dir::RuntimeDir;
use super::name::NameError;
use super::ready::{self, Readiness};
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// Pending connections the kernel queues before `connect` blocks.
const BACKLOG: libc::c_int = 64;

/// Why binding a name failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BindError {
    /// The name is not a valid flow name.
    Name(NameError),
    /// The runtime directory is too long for this name's socket path.
    PathTooLong(PathTooLong),
    /// A live listener holds the name.
    InUse {
        /// The name.
        name: String,
    },
    /// A system call failed.
    Io {
        /// The system call that failed.
        op: &'static str,
        /// Its error.
        source: io::Error,
    },
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::Name(e) => write!(f, "cannot bind: {e}"),
            BindError::PathTooLong(e) => write!(f, "cannot bind: {e}"),
            BindError::InUse { name } => write!(f, "cannot bind {name:?}: a live listener holds the name"),
            BindError::Io { op, source } => write!(f, "cannot bind: {op}: {source}"),
        }
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BindError::Name(e) => Some(e),
            BindError::PathTooLong(e) => Some(e),
            BindError::InUse { .. } => None,
            BindError::Io { source, .. } => Some(source),
        }
    }
}

/// Why accepting a connection failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AcceptError {
    /// `Some(Duration::ZERO)` was given and nobody was waiting to connect.
    WouldBlock,
    /// Nobody connected within the timeout.
    TimedOut,
    /// A system call failed.
    Io {
        /// The system call that failed.
        op: &'static str,
        /// Its error.
        source: io::Error,
    },
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcceptError::WouldBlock => f.write_str("no connection is pending"),
            AcceptError::TimedOut => f.write_str("timed out waiting for a connection"),
            AcceptError::Io { op, source } => write!(f, "accept: {op}: {source}"),
        }
    }
}

impl std::error::Error for AcceptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AcceptError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A bound, listening name. Dropping it unlinks the socket and lock files.
#[derive(Debug)]
pub struct ControlListener {
    /// Declared first: closed before the claim removes the files.
    socket: OwnedFd,
    claim: NameClaim,
    name: String,
}

impl ControlListener {
    /// Binds `name` in `dir`: claims the name's lock (`InUse` if a live
    /// listener has it), replaces a crashed listener's socket file, binds a
    /// SOCK_SEQPACKET socket with mode 0600 and listens.
    pub fn bind(dir: &RuntimeDir, name: &str) -> Result<Self, BindError> {
        let socket_path = dir.socket_path(name).map_err(BindError::Name)?;
        let lock_path = dir.lock_path(name).map_err(BindError::Name)?;
        // Checked before anything is created, so a refusal leaves no file.
        let addr = UnixAddr::new(&socket_path).map_err(BindError::PathTooLong)?;
        let io_error = |op| move |source| BindError::Io { op, source };

        // From here on, `claim` unlinks whatever we created if we fail.
        let claim = NameClaim::acquire(name, socket_path, lock_path)?;
        claim.remove_stale_socket().map_err(io_error("unlink stale socket"))?;
        // Non-blocking, so that a connection aborted between poll and accept
        // sends `accept` back to waiting instead of blocking past its timeout.
        let socket = seqpacket_socket(libc::SOCK_NONBLOCK).map_err(io_error("socket"))?;
        // SAFETY: `addr` is a valid sockaddr_un of length `addr.len()`, alive
        // for the call; the fd is ours.
        let r = unsafe { libc::bind(socket.as_raw_fd(), addr.as_ptr(), addr.len()) };
        if r < 0 {
            return Err(BindError::Io { op: "bind", source: io::Error::last_os_error() });
        }
        // A private directory is 0700 already; 0600 keeps the socket private
        // even if someone loosens it. In a shared directory the socket is
        // 0666: the directory's mode says who reaches it, the listener's
        // Permit who gets in. Nobody can connect before `listen`, so the
        // umask-derived mode it was bound with is never usable.
        let mode = if dir.is_shared() { 0o666 } else { 0o600 };
        fs::set_permissions(claim.socket_path(), fs::Permissions::from_mode(mode)).map_err(io_error("chmod socket"))?;
        // SAFETY: listen takes our fd and a backlog; it touches no memory.
        if unsafe { libc::listen(socket.as_raw_fd(), BACKLOG) } < 0 {
            return Err(BindError::Io { op: "listen", source: io::Error::last_os_error() });
        }
        Ok(ControlListener { socket, claim, name: name.to_owned() })
    }

    /// Accepts one connection: `None` waits as long as it takes,
    /// `Some(Duration::ZERO)` only takes one already pending (`WouldBlock`
    /// otherwise), other timeouts end in `TimedOut`.
    pub fn accept(&self, timeout: Option<Duration>) -> Result<ControlConn, AcceptError> {
        let deadline = ready::deadline(timeout);
        loop {
            match ready::wait_readable(self.socket.as_fd(), deadline) {
                Ok(Readiness::Ready) => {}
                Ok(Readiness::WouldBlock) => return Err(AcceptError::WouldBlock),
                Ok(Readiness::TimedOut) => return Err(AcceptError::TimedOut),
                Err(source) => return Err(AcceptError::Io { op: "poll", source }),
            }
            // SAFETY: null address pointers ask accept4 not to report the
            // peer address; the fd is ours.
            let fd = unsafe {
                libc::accept4(self.socket.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)
            };
            if fd >= 0 {
                // SAFETY: accept4 returned a new descriptor nothing else owns.
                return Ok(ControlConn::from(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
            let source = io::Error::last_os_error();
            match source.raw_os_error() {
                // Taken by another thread, aborted by the peer, or interrupted:
                // wait again with the time left.
                Some(libc::EAGAIN | libc::ECONNABORTED | libc::EINTR) => continue,
                _ => return Err(AcceptError::Io { op: "accept4", source }),
            }
        }
    }

    /// The bound name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The socket file's path.
    pub fn socket_path(&self) -> &Path {
        self.claim.socket_path()
    }
}

impl AsFd for ControlListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for ControlListener {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}
