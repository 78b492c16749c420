//! The fallback transport: the same connections, events and buffers as the
//! io_uring [`TcpDriver`](crate::uring::TcpDriver), over plain nonblocking
//! sockets and one epoll instance, for hosts where io_uring is unavailable
//! (a container's seccomp profile, `kernel.io_uring_disabled`, an old
//! kernel). One system call per read, write and accept: slower, never
//! different in what it delivers.
//!
//! Epoll is level-triggered: whatever a step leaves unread or unwritten is
//! reported again, so nothing depends on draining a socket in one go. Like
//! the io_uring driver it never blocks except in `wait` / `park`, and never
//! interprets the bytes.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::config::IoUringSection;
use crate::uring::conns::ConnTable;
use crate::uring::events::{copy_of, io_err, OutBuf};
use crate::uring::{CloseReason, ConnId, RecvBuf, TcpError, TcpEvent, TcpStats};

/// Token kinds in an epoll event's data (kind << 32 | index).
const TOKEN_LISTENER: u64 = 1;
const TOKEN_CONN: u64 = 2;
/// Reads per connection per step, so one busy socket cannot starve others.
const READS_PER_STEP: usize = 16;

/// A connection's writing state (the rest is the shared table's).
#[derive(Default)]
struct Io {
    /// Queued bytes; `out[out_done..]` is not yet written.
    out: OutBuf,
    out_done: usize,
    /// EPOLLOUT is in the interest set (a write would block).
    want_write: bool,
    /// Bytes the kernel has taken (see `SocketDriver::handed`).
    handed: u64,
}

/// Plain-socket transport with the io_uring driver's interface.
pub struct SocketDriver {
    epoll: OwnedFd,
    listeners: Vec<TcpListener>,
    conns: ConnTable<Io>,
    /// Receive buffers: `count` of `size` bytes, handed out by id.
    pool: Vec<Box<[u8]>>,
    free_bufs: Vec<u16>,
    /// Events found outside a step (a write's progress), reported by the next.
    pending: VecDeque<TcpEvent>,
    ready: Vec<libc::epoll_event>,
    stats: TcpStats,
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

impl SocketDriver {
    /// An epoll instance and `provided_buffers` receive buffers of
    /// `buffer_size` bytes (as the io_uring driver's provided buffers).
    pub fn new(cfg: &IoUringSection) -> Result<Self, TcpError> {
        // SAFETY: epoll_create1 takes flags only and returns a new fd or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(TcpError::Io { op: "epoll_create1", errno: errno() });
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let count = cfg.provided_buffers.clamp(1, u32::from(u16::MAX)) as usize;
        Ok(SocketDriver {
            epoll,
            listeners: Vec::new(),
            conns: ConnTable::new(),
            pool: (0..count).map(|_| vec![0u8; cfg.buffer_size].into_boxed_slice()).collect(),
            free_bufs: (0..count as u16).rev().collect(),
            pending: VecDeque::new(),
            ready: vec![libc::epoll_event { events: 0, u64: 0 }; 64],
            stats: TcpStats::default(),
        })
    }

    /// The driver's send counters.
    pub fn stats(&self) -> TcpStats {
        self.stats
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, token: u64) -> Result<(), TcpError> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` lives for the call; the fd is open (owned by a
        // listener or connection of ours).
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(TcpError::Io { op: "epoll_ctl", errno: errno() });
        }
        Ok(())
    }

    /// Listens on `addr`; returns the bound address.
    pub fn listen(&mut self, addr: SocketAddr) -> Result<SocketAddr, TcpError> {
        let sock = TcpListener::bind(addr).map_err(io_err("bind"))?;
        sock.set_nonblocking(true).map_err(io_err("O_NONBLOCK"))?;
        let local = sock.local_addr().map_err(io_err("getsockname"))?;
        let token = TOKEN_LISTENER << 32 | self.listeners.len() as u64;
        self.ctl(libc::EPOLL_CTL_ADD, sock.as_raw_fd(), libc::EPOLLIN as u32, token)?;
        self.listeners.push(sock);
        Ok(local)
    }

    /// Takes over a connected stream.
    pub fn adopt(&mut self, stream: TcpStream) -> Result<ConnId, TcpError> {
        stream.set_nodelay(true).map_err(io_err("TCP_NODELAY"))?;
        stream.set_nonblocking(true).map_err(io_err("O_NONBLOCK"))?;
        let peer = stream.peer_addr().ok();
        self.insert(OwnedFd::from(stream), peer, false)
    }

    /// Receives datagrams on `sock`; each `Received` is one datagram.
    pub fn adopt_datagram(&mut self, sock: std::net::UdpSocket) -> Result<ConnId, TcpError> {
        sock.set_nonblocking(true).map_err(io_err("O_NONBLOCK"))?;
        self.insert(OwnedFd::from(sock), None, true)
    }

    /// Any nonblocking datagram socket (a socketpair's end, say).
    pub fn adopt_datagram_fd(&mut self, fd: OwnedFd) -> Result<ConnId, TcpError> {
        self.insert(fd, None, true)
    }

    fn insert(&mut self, fd: OwnedFd, peer: Option<SocketAddr>, datagram: bool) -> Result<ConnId, TcpError> {
        let raw = fd.as_raw_fd();
        let id = self.conns.insert(fd, peer, datagram);
        self.conns[id.index as usize].io.want_write = false;
        self.ctl(libc::EPOLL_CTL_ADD, raw, libc::EPOLLIN as u32, TOKEN_CONN << 32 | u64::from(id.index))
            .inspect_err(|_| self.conns.release(id.index))?;
        Ok(id)
    }

    /// Queues a copy of `data` and starts writing it.
    pub fn send(&mut self, id: ConnId, data: &[u8]) -> Result<(), TcpError> {
        let Ok(()) = self.append_with(id, data.len(), copy_of(data))?;
        self.flush(id);
        Ok(())
    }

    /// Appends a frame of `len` bytes written in place by `fill`, which
    /// must write every byte (the slice holds an earlier frame's bytes);
    /// nothing is queued if it fails. Sent by the next `flush`.
    pub fn append_with<R, E>(
        &mut self,
        id: ConnId,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<R, E>,
    ) -> Result<Result<R, E>, TcpError> {
        let index = self.conns.lookup(id)?;
        let conn = &mut self.conns[index as usize];
        if !conn.open || conn.datagram {
            return Err(TcpError::Closed);
        }
        Ok(conn.io.out.append_in_place(len, fill))
    }

    /// Writes what is queued on `id` until the socket would block; the rest
    /// goes when epoll says it can.
    pub fn flush(&mut self, id: ConnId) {
        if let Ok(index) = self.conns.lookup(id) {
            self.write_out(index);
        }
    }

    fn write_out(&mut self, index: u32) {
        let conn = &mut self.conns[index as usize];
        let Some(fd) = conn.fd.as_ref().map(AsRawFd::as_raw_fd) else { return };
        if !conn.open {
            return;
        }
        let mut wrote = 0;
        while conn.io.out_done < conn.io.out.len() {
            let rest = &conn.io.out[conn.io.out_done..];
            // SAFETY: `rest` is a live slice of our queue; the fd is ours.
            let n =
                unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
            if n >= 0 {
                self.stats.plain_sends += 1;
                conn.io.out_done += n as usize;
                conn.io.handed += n as u64;
                wrote += n as usize;
                continue;
            }
            match errno() {
                libc::EINTR => continue,
                libc::EAGAIN => break,
                e => {
                    let id = ConnId { index, generation: conn.generation };
                    let reason = if conn.closed_locally { CloseReason::Local } else { CloseReason::Error(e) };
                    self.pending.push_back(TcpEvent::Closed(id, reason));
                    self.close_slot(index);
                    return;
                }
            }
        }
        let conn = &mut self.conns[index as usize];
        let id = ConnId { index, generation: conn.generation };
        if conn.io.out_done == conn.io.out.len() {
            conn.io.out.clear();
            conn.io.out_done = 0;
        }
        let want = conn.io.out_done < conn.io.out.len();
        if want != conn.io.want_write {
            conn.io.want_write = want;
            let events = libc::EPOLLIN as u32 | if want { libc::EPOLLOUT as u32 } else { 0 };
            let _ = self.ctl(libc::EPOLL_CTL_MOD, fd, events, TOKEN_CONN << 32 | u64::from(index));
        }
        if wrote > 0 {
            self.pending.push_back(TcpEvent::Sent(id, wrote));
        }
    }

    /// Bytes queued on `id`, not yet taken by the kernel.
    pub fn unsent(&self, id: ConnId) -> Result<usize, TcpError> {
        let conn = &self.conns[self.conns.lookup(id)? as usize];
        Ok(conn.io.out.len() - conn.io.out_done)
    }

    /// Bytes of `id`'s stream the kernel has taken so far (see
    /// `TcpDriver::handed`).
    pub fn handed(&self, id: ConnId) -> Result<u64, TcpError> {
        Ok(self.conns[self.conns.lookup(id)? as usize].io.handed)
    }

    /// Where the end of what `id` has queued stands, in `handed`'s count.
    pub fn appended(&self, id: ConnId) -> Result<u64, TcpError> {
        Ok(self.handed(id)? + self.unsent(id)? as u64)
    }

    /// The remote address of stream `id`.
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.conns.peer_addr(id)
    }

    /// Shuts the socket down; `Closed(id, Local)` follows from `poll`.
    pub fn close(&mut self, id: ConnId) -> Result<(), TcpError> {
        self.conns.close(id)
    }

    /// The bytes of a received buffer.
    pub fn data(&self, buf: &RecvBuf) -> &[u8] {
        let b = &self.pool[usize::from(buf.bid) % self.pool.len()];
        &b[..buf.len().min(b.len())]
    }

    /// Gives a received buffer back.
    pub fn recycle(&mut self, buf: RecvBuf) {
        self.free_bufs.push(buf.bid);
    }

    /// One non-blocking step; appends what happened to `events`.
    pub fn poll(&mut self, events: &mut Vec<TcpEvent>) -> usize {
        self.step(0, events)
    }

    /// Like `poll`, but waits up to `timeout` when nothing is ready.
    pub fn wait(&mut self, timeout: Duration, events: &mut Vec<TcpEvent>) -> usize {
        let ms = if self.pending.is_empty() { timeout.as_millis().clamp(1, i32::MAX as u128) as i32 } else { 0 };
        self.step(ms, events)
    }

    /// Blocks up to `timeout` until something is ready, reaping nothing
    /// (epoll is level-triggered: the next `poll` sees it again).
    pub fn park(&mut self, timeout: Duration) {
        if !self.pending.is_empty() {
            return;
        }
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `ready` has room for its length in events; the epoll fd is ours.
        unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), self.ready.as_mut_ptr(), 1, ms) };
    }

    fn step(&mut self, timeout_ms: i32, events: &mut Vec<TcpEvent>) -> usize {
        let before = events.len();
        events.extend(self.pending.drain(..));
        let max = self.ready.len() as i32;
        let timeout_ms = if events.len() > before { 0 } else { timeout_ms };
        // SAFETY: `ready` holds `max` events for the kernel to fill; the fd is ours.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), self.ready.as_mut_ptr(), max, timeout_ms) };
        for i in 0..n.max(0) as usize {
            let ev = self.ready[i];
            let (kind, index) = (ev.u64 >> 32, (ev.u64 & u64::from(u32::MAX)) as u32);
            match kind {
                TOKEN_LISTENER => self.accept(index as usize, events),
                TOKEN_CONN => {
                    if ev.events & libc::EPOLLOUT as u32 != 0 {
                        self.write_out(index);
                    }
                    if ev.events & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
                        self.read_in(index, events);
                    }
                }
                _ => {}
            }
        }
        events.extend(self.pending.drain(..));
        events.len() - before
    }

    fn accept(&mut self, li: usize, events: &mut Vec<TcpEvent>) {
        loop {
            let Some(listener) = self.listeners.get(li) else { return };
            match listener.accept() {
                Ok((stream, _)) => {
                    if let Ok(id) = self.adopt(stream) {
                        events.push(TcpEvent::Accepted(id));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return, // WouldBlock, or out of descriptors: epoll reports it again.
            }
        }
    }

    fn read_in(&mut self, index: u32, events: &mut Vec<TcpEvent>) {
        for _ in 0..READS_PER_STEP {
            let conn = &self.conns[index as usize];
            let Some(fd) = conn.fd.as_ref().map(AsRawFd::as_raw_fd) else { return };
            if !conn.open {
                return;
            }
            let id = ConnId { index, generation: conn.generation };
            let Some(bid) = self.free_bufs.pop() else {
                self.stats.enobufs += 1;
                return; // every buffer is lent: read again once one comes back
            };
            let buf = &mut self.pool[usize::from(bid)];
            // SAFETY: `buf` is a live buffer nobody else borrows (its id was
            // free); the fd is ours.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            let datagram = conn.datagram;
            if n > 0 {
                events.push(TcpEvent::Received(id, RecvBuf { bid, len: n as u32 }));
                continue;
            }
            self.free_bufs.push(bid);
            let err = if n < 0 { errno() } else { 0 };
            match (n, err) {
                (_, libc::EINTR) => continue,
                (_, libc::EAGAIN) => return,
                // An empty datagram or an ICMP-reported error: not the end.
                _ if datagram => continue,
                (0, _) => {
                    let reason =
                        if self.conns[index as usize].closed_locally { CloseReason::Local } else { CloseReason::Eof };
                    events.push(TcpEvent::Closed(id, reason));
                    self.close_slot(index);
                    return;
                }
                (_, e) => {
                    let reason = if self.conns[index as usize].closed_locally {
                        CloseReason::Local
                    } else {
                        CloseReason::Error(e)
                    };
                    events.push(TcpEvent::Closed(id, reason));
                    self.close_slot(index);
                    return;
                }
            }
        }
    }

    /// Ends a connection: out of epoll, fd closed, slot reusable.
    fn close_slot(&mut self, index: u32) {
        let conn = &mut self.conns[index as usize];
        if let Some(fd) = &conn.fd {
            // SAFETY: removing an fd we own from our epoll; no memory involved.
            unsafe {
                libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), std::ptr::null_mut())
            };
        }
        conn.io.out.clear();
        conn.io.out_done = 0;
        conn.io.want_write = false;
        self.conns.release(index);
    }
}
