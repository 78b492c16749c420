//! One connected SOCK_SEQPACKET control socket: connecting by name, asking
//! who the peer is, and noticing that it hung up. (Messages and passed
//! descriptors are in `message.rs`.) It must never report an absent listener
//! as anything but `NotFound`, nor consume data to test for a hang-up.

use super::addr::{PathTooLong, UnixAddr};
use super::dir::RuntimeDir;
use super::name::NameError;
use crate::wait::Deadline;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;

/// Groups asked for first from SO_PEERGROUPS (grown if the peer has more).
const PEER_GROUPS_GUESS: usize = 32;

/// A connected control socket.
#[derive(Debug)]
pub struct ControlConn {
    fd: OwnedFd,
}

/// The peer's credentials as the kernel recorded them at connect time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's process id.
    pub pid: u32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective (primary) group id.
    pub gid: u32,
}

/// Why connecting to a name failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The name is not a valid flow name.
    Name(NameError),
    /// The runtime directory is too long for this name's socket path.
    PathTooLong(PathTooLong),
    /// Nobody listens under this name (no socket file, or a crashed
    /// listener's leftover).
    NotFound {
        /// The name looked up.
        name: String,
        /// The runtime directory it was looked up in.
        dir: PathBuf,
    },
    /// The socket or its directory is not ours to use.
    PermissionDenied {
        /// The socket that refused the connection.
        path: PathBuf,
    },
    /// The listener's backlog stayed full until the deadline.
    TimedOut,
    /// A system call failed.
    Io {
        /// The system call that failed.
        op: &'static str,
        /// Its error.
        source: io::Error,
    },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Name(e) => write!(f, "cannot connect: {e}"),
            ConnectError::PathTooLong(e) => write!(f, "cannot connect: {e}"),
            ConnectError::NotFound { name, dir } => {
                write!(f, "cannot connect: nobody listens on {name:?} in {}", dir.display())
            }
            ConnectError::PermissionDenied { path } => {
                write!(f, "cannot connect: permission denied on {}", path.display())
            }
            ConnectError::TimedOut => f.write_str("cannot connect: the listener's backlog stayed full"),
            ConnectError::Io { op, source } => write!(f, "cannot connect: {op}: {source}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::Name(e) => Some(e),
            ConnectError::PathTooLong(e) => Some(e),
            ConnectError::Io { source, .. } => Some(source),
            ConnectError::NotFound { .. } | ConnectError::PermissionDenied { .. } | ConnectError::TimedOut => None,
        }
    }
}

impl ControlConn {
    /// Connects to the listener bound to `name` in `dir`. Waits only while
    /// the listener's backlog is full.
    pub fn connect(dir: &RuntimeDir, name: &str) -> Result<Self, ConnectError> {
        ControlConn::connect_deadline(dir, name, Deadline::Never)
    }

    /// [`connect`](Self::connect), waiting for room in a full backlog only
    /// until `deadline` (`ConnectError::TimedOut`).
    pub fn connect_deadline(dir: &RuntimeDir, name: &str, deadline: Deadline) -> Result<Self, ConnectError> {
        let path = dir.socket_path(name).map_err(ConnectError::Name)?;
        let addr = UnixAddr::new(&path).map_err(ConnectError::PathTooLong)?;
        // Nonblocking for the connect only: a full backlog answers EAGAIN
        // instead of blocking past the deadline.
        let fd = seqpacket_socket(libc::SOCK_NONBLOCK).map_err(|source| ConnectError::Io { op: "socket", source })?;
        let mut pause = Duration::from_micros(50);
        loop {
            // SAFETY: `addr` is a valid sockaddr_un of length `addr.len()`,
            // alive for the call; the fd is ours.
            if unsafe { libc::connect(fd.as_raw_fd(), addr.as_ptr(), addr.len()) } == 0 {
                set_blocking(&fd).map_err(|source| ConnectError::Io { op: "fcntl", source })?;
                return Ok(ControlConn { fd });
            }
            let source = io::Error::last_os_error();
            let err = match source.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => {
                    // The backlog is full: Unix sockets offer no readiness
                    // event for room in it, so retry with a growing pause.
                    match deadline.remaining() {
                        Some(left) if left.is_zero() => ConnectError::TimedOut,
                        left => {
                            std::thread::sleep(left.map_or(pause, |l| l.min(pause)));
                            pause = (pause * 2).min(Duration::from_millis(10));
                            continue;
                        }
                    }
                }
                Some(libc::ENOENT | libc::ECONNREFUSED) => {
                    ConnectError::NotFound { name: name.to_owned(), dir: dir.path().to_owned() }
                }
                Some(libc::EACCES | libc::EPERM) => ConnectError::PermissionDenied { path },
                _ => ConnectError::Io { op: "connect", source },
            };
            return Err(err);
        }
    }

    /// Two connected ends, for a parent and the child it forks, or tests.
    pub fn pair() -> io::Result<(ControlConn, ControlConn)> {
        let mut fds = [-1; 2];
        // SAFETY: `fds` is an array of two ints, alive for the call, which is
        // what socketpair writes.
        let r =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socketpair returned two new descriptors nothing else owns.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((ControlConn { fd: a }, ControlConn { fd: b }))
    }

    /// The peer's pid, uid and gid (SO_PEERCRED), fixed when the connection
    /// was made. The pid may have been reused if the peer has since died.
    pub fn peer_cred(&self) -> io::Result<PeerCred> {
        let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `cred` and `len` are valid for writes and `len` is the size
        // of `cred`, as SO_PEERCRED expects.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PeerCred { pid: cred.pid as u32, uid: cred.uid, gid: cred.gid })
    }

    /// The peer's supplementary groups at connect time (SO_PEERGROUPS), or
    /// `None` if the kernel cannot tell (before Linux 4.13).
    pub fn peer_groups(&self) -> io::Result<Option<Vec<u32>>> {
        let mut groups = vec![0 as libc::gid_t; PEER_GROUPS_GUESS];
        loop {
            let mut len = std::mem::size_of_val(groups.as_slice()) as libc::socklen_t;
            // SAFETY: `groups` is valid for writes of `len` bytes, and `len`
            // is valid for writes; both outlive the call.
            let r = unsafe {
                libc::getsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_PEERGROUPS,
                    groups.as_mut_ptr().cast(),
                    &mut len,
                )
            };
            let count = len as usize / std::mem::size_of::<libc::gid_t>();
            if r == 0 {
                groups.truncate(count);
                return Ok(Some(groups));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                // The kernel wrote the size it needs into `len`.
                Some(libc::ERANGE) if count > groups.len() => groups.resize(count, 0),
                Some(libc::ENOPROTOOPT) => return Ok(None),
                _ => return Err(err),
            }
        }
    }

    /// Whether the peer has closed its end (or the socket is in error).
    /// Never blocks and consumes nothing: messages the peer sent before
    /// closing can still be received. A failing poll reports `false`; the
    /// next `recv` reports the error.
    pub fn is_hung_up(&self) -> bool {
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
        loop {
            // SAFETY: `pfd` is one valid pollfd, alive for the call; timeout 0.
            let r = unsafe { libc::poll(&mut pfd, 1, 0) };
            if r >= 0 {
                return pfd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0;
            }
            if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return false;
            }
        }
    }
}

/// Wraps a descriptor that must be a connected SOCK_SEQPACKET Unix socket
/// (e.g. one inherited from a parent); any other kind fails on first use.
impl From<OwnedFd> for ControlConn {
    fn from(fd: OwnedFd) -> Self {
        ControlConn { fd }
    }
}

impl From<ControlConn> for OwnedFd {
    fn from(conn: ControlConn) -> Self {
        conn.fd
    }
}

impl AsFd for ControlConn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for ControlConn {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl IntoRawFd for ControlConn {
    fn into_raw_fd(self) -> RawFd {
        self.fd.into_raw_fd()
    }
}

/// A new close-on-exec SOCK_SEQPACKET Unix socket, with `extra` type flags.
pub(super) fn seqpacket_socket(extra: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket takes integers and returns a new fd or -1.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | extra, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket returned a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Clears O_NONBLOCK (set only for a deadline-bound connect).
fn set_blocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; results checked.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
