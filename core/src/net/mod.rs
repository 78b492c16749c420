//! The engine's network transport, whichever drives it: io_uring
//! ([`TcpDriver`]) or, where this host refuses io_uring or the
//! configuration asks (`net.backend`), plain nonblocking sockets
//! ([`SocketDriver`]). Both deliver the same events, ids and buffers;
//! [`NetDriver`] picks one and forwards to it.

pub mod sockets;
#[cfg(test)]
mod tests;

use std::net::{SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

pub use sockets::SocketDriver;

use crate::config::{IoUringSection, NetBackend};
use crate::uring::{ConnId, RecvBuf, TcpDriver, TcpError, TcpEvent, TcpStats, UringUnavailable};

/// Which transport an engine runs, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// io_uring (multishot receives, provided buffers, SEND_ZC where the
    /// kernel has it).
    IoUring,
    /// Plain sockets: `why` is the io_uring failure that forced them (with
    /// its cause and fix), or that the configuration asked for them.
    Sockets {
        /// Why: the io_uring failure, or the configuration's choice.
        why: String,
    },
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::IoUring => f.write_str("io_uring"),
            Backend::Sockets { why } => write!(f, "plain sockets ({why})"),
        }
    }
}

/// The transport an engine thread drives; see the module header.
// One per engine thread: its size is irrelevant, and the io_uring variant
// stays inline so the duty cycle does not chase a pointer.
#[allow(clippy::large_enum_variant)]
pub enum NetDriver {
    /// Connections driven through an io_uring.
    IoUring(TcpDriver),
    /// Nonblocking sockets and epoll.
    Sockets(SocketDriver),
}

/// Why no transport could be set up.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetError {
    /// `net.backend = "io_uring"` and io_uring cannot be used here.
    Uring(UringUnavailable),
    /// Even plain sockets failed (epoll_create1).
    Sockets(TcpError),
}

impl std::fmt::Display for NetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetError::Uring(e) => write!(f, "{e}"),
            NetError::Sockets(e) => write!(f, "plain sockets: {e}"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Uring(e) => Some(e),
            NetError::Sockets(e) => Some(e),
        }
    }
}

macro_rules! both {
    ($self:expr, $d:ident => $e:expr) => {
        match $self {
            NetDriver::IoUring($d) => $e,
            NetDriver::Sockets($d) => $e,
        }
    };
}

impl NetDriver {
    /// The transport `backend` asks for, built on the calling thread (the
    /// one that drives it).
    pub fn new(cfg: &IoUringSection, backend: NetBackend) -> Result<(NetDriver, Backend), NetError> {
        let sockets = |why: String| {
            SocketDriver::new(cfg).map(|d| (NetDriver::Sockets(d), Backend::Sockets { why })).map_err(NetError::Sockets)
        };
        match backend {
            NetBackend::Sockets => sockets("net.backend = \"sockets\"".into()),
            NetBackend::IoUring => {
                TcpDriver::new(cfg).map(|d| (NetDriver::IoUring(d), Backend::IoUring)).map_err(NetError::Uring)
            }
            NetBackend::Auto => match TcpDriver::new(cfg) {
                Ok(d) => Ok((NetDriver::IoUring(d), Backend::IoUring)),
                Err(e) => sockets(format!("io_uring is unavailable: {e}")),
            },
        }
    }

    /// The driver's send counters.
    pub fn stats(&self) -> TcpStats {
        both!(self, d => d.stats())
    }

    /// Send buffers registered with io_uring (0 on plain sockets).
    pub fn registered_buffers(&self) -> usize {
        match self {
            NetDriver::IoUring(d) => d.registered_buffers(),
            NetDriver::Sockets(_) => 0,
        }
    }

    /// Listens on `addr` (port 0: any free port); returns the bound address.
    pub fn listen(&mut self, addr: SocketAddr) -> Result<SocketAddr, TcpError> {
        both!(self, d => d.listen(addr))
    }

    /// [`listen`](Self::listen), trying again for up to `patience` while
    /// the address is in use. An engine killed on it (kill -9) can leave it
    /// held for a moment after its process is gone: the kernel ends its
    /// io_uring's requests, the accept that holds the listening socket
    /// among them, in a work item after the exit. A restart right after
    /// the kill (a supervisor's) then finds the address in use; waiting a
    /// little tells that from another program listening there.
    pub fn listen_patiently(&mut self, addr: SocketAddr, patience: Duration) -> Result<SocketAddr, TcpError> {
        let until = std::time::Instant::now() + patience;
        loop {
            match self.listen(addr) {
                Err(TcpError::Io { errno: libc::EADDRINUSE, .. }) if std::time::Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                result => return result,
            }
        }
    }

    /// Takes over a connected stream (one this engine dialled).
    pub fn adopt(&mut self, stream: TcpStream) -> Result<ConnId, TcpError> {
        both!(self, d => d.adopt(stream))
    }

    /// Takes over a UDP socket (the lossy flows' datagrams).
    pub fn adopt_datagram(&mut self, sock: std::net::UdpSocket) -> Result<ConnId, TcpError> {
        both!(self, d => d.adopt_datagram(sock))
    }

    /// [`adopt_datagram`](Self::adopt_datagram) from a raw descriptor.
    pub fn adopt_datagram_fd(&mut self, fd: OwnedFd) -> Result<ConnId, TcpError> {
        match self {
            NetDriver::IoUring(d) => Ok(d.adopt_datagram_fd(fd)),
            NetDriver::Sockets(d) => d.adopt_datagram_fd(fd),
        }
    }

    /// Queues a copy of `data` on connection `id` and starts sending it.
    pub fn send(&mut self, id: ConnId, data: &[u8]) -> Result<(), TcpError> {
        both!(self, d => d.send(id, data))
    }

    /// Appends a frame of `len` bytes to what `id` has queued, without
    /// starting a send: `fill` writes it in place and must write every
    /// byte (the slice holds an earlier frame's bytes, not zeros); if
    /// `fill` fails, nothing is queued. The next [`flush`](Self::flush)
    /// (or `send`) sends it.
    pub fn append_with<R, E>(
        &mut self,
        id: ConnId,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<R, E>,
    ) -> Result<Result<R, E>, TcpError> {
        both!(self, d => d.append_with(id, len, fill))
    }

    /// Starts sending what [`append_with`](Self::append_with) queued on `id`.
    pub fn flush(&mut self, id: ConnId) {
        both!(self, d => d.flush(id))
    }

    /// Bytes queued on connection `id` and not yet written.
    pub fn unsent(&self, id: ConnId) -> Result<usize, TcpError> {
        both!(self, d => d.unsent(id))
    }

    /// Bytes of connection `id`'s stream the kernel has taken so far: a
    /// frame appended when [`appended`](Self::appended) said `n` is in the
    /// kernel's hands (it leaves even if this process exits now) once this
    /// reaches `n`. An error once the connection is gone.
    pub fn handed(&self, id: ConnId) -> Result<u64, TcpError> {
        both!(self, d => d.handed(id))
    }

    /// Where the end of what connection `id` has queued stands in its
    /// stream, counted as [`handed`](Self::handed) counts.
    pub fn appended(&self, id: ConnId) -> Result<u64, TcpError> {
        both!(self, d => d.appended(id))
    }

    /// The address of connection `id`'s peer, if known.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        both!(self, d => d.peer_addr(id))
    }

    /// Closes connection `id`.
    pub fn close(&mut self, id: ConnId) -> Result<(), TcpError> {
        both!(self, d => d.close(id))
    }

    /// The bytes a receive handed over.
    pub fn data(&self, buf: &RecvBuf) -> &[u8] {
        both!(self, d => d.data(buf))
    }

    /// Gives a receive's buffer back to the driver.
    pub fn recycle(&mut self, buf: RecvBuf) {
        both!(self, d => d.recycle(buf))
    }

    /// Collects what happened (receives, accepts, closes) without waiting;
    /// returns how many events were added.
    pub fn poll(&mut self, events: &mut Vec<TcpEvent>) -> usize {
        both!(self, d => d.poll(events))
    }

    /// [`poll`](Self::poll), waiting up to `timeout` for something to happen.
    pub fn wait(&mut self, timeout: Duration, events: &mut Vec<TcpEvent>) -> usize {
        both!(self, d => d.wait(timeout, events))
    }

    /// Blocks up to `timeout` until the network (or an armed futex word)
    /// has something, without collecting it (the next `poll` does).
    pub fn park(&mut self, timeout: Duration) {
        both!(self, d => d.park(timeout))
    }

    /// Submits queued io_uring operations now (plain sockets write at once).
    pub fn submit(&mut self) {
        if let NetDriver::IoUring(d) = self {
            d.submit();
        }
    }

    /// See [`TcpDriver::holds_back`]; plain sockets hold nothing back.
    pub fn holds_back(&mut self) -> bool {
        match self {
            NetDriver::IoUring(d) => d.holds_back(),
            NetDriver::Sockets(_) => false,
        }
    }

    /// See [`TcpDriver::arm_futexes`]; plain sockets cannot wait on futex
    /// words with their epoll and return false (the caller's park is then
    /// bounded by its timeout).
    ///
    /// # Safety
    ///
    /// As [`TcpDriver::arm_futexes`].
    pub unsafe fn arm_futexes(&mut self, words: &[(usize, u32)]) -> bool {
        match self {
            // SAFETY: forwarded from this function's contract.
            NetDriver::IoUring(d) => unsafe { d.arm_futexes(words) },
            NetDriver::Sockets(_) => false,
        }
    }

    /// See [`TcpDriver::watch`]; plain sockets have no watches and return
    /// false (the caller keeps looking at what it would have watched).
    ///
    /// # Safety
    ///
    /// As [`TcpDriver::watch`].
    pub unsafe fn watch(&mut self, fd: std::os::fd::RawFd, token: u32) -> bool {
        match self {
            // SAFETY: forwarded from this function's contract.
            NetDriver::IoUring(d) => unsafe { d.watch(fd, token) },
            NetDriver::Sockets(_) => false,
        }
    }

    /// Makes room for `total` watches in all, so that a
    /// [`watch`](Self::watch) within that number does not allocate.
    pub fn reserve_watches(&mut self, total: usize) {
        if let NetDriver::IoUring(d) = self {
            d.reserve_watches(total);
        }
    }

    /// See [`TcpDriver::unwatch`].
    pub fn unwatch(&mut self, token: u32) {
        if let NetDriver::IoUring(d) = self {
            d.unwatch(token);
        }
    }

    /// Whether a park can also end on a futex word (`arm_futexes`).
    pub fn futex_waits(&self) -> bool {
        matches!(self, NetDriver::IoUring(d) if d.futex_waits())
    }

    /// Cancels the futex waits [`arm_futexes`](Self::arm_futexes) armed.
    pub fn disarm_futexes(&mut self) {
        if let NetDriver::IoUring(d) = self {
            d.disarm_futexes();
        }
    }
}
