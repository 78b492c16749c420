//! A minimal TCP transport over one [`UringDriver`]: listeners with multishot
//! accept, connections with multishot recv into a provided-buffer ring, and
//! sends from driver-owned memory. The engine frames and acknowledges; this
//! file only moves bytes and must never block or interpret them.
//!
//! Sends (see the `send` module): callers write frames in place into memory
//! the driver owns, so the kernel reads nothing of theirs and frames queued
//! while a send is in flight coalesce into one large write. With SEND_ZC
//! and registered buffers, that memory is registered and the send is
//! zero-copy from it.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use io_uring::{cqueue, opcode, types};

use super::bufring::BufRing;
use super::conns::ConnTable;
use super::events::{io_err, shutdown, CloseReason, ConnId, OutBuf, RecvBuf, TcpError, TcpEvent, TcpStats};
use super::fixed::FixedBufs;
use super::probe::UringUnavailable;
use super::ring::UringDriver;
use crate::config::IoUringSection;

mod direct;
mod send;
mod spin;

const KIND_ACCEPT: u64 = 1;
const KIND_RECV: u64 = 2;
const KIND_SEND: u64 = 3;
const KIND_CANCEL: u64 = 4;
const KIND_FUTEX: u64 = 5;
/// A send from a registered buffer; the buffer's index rides in bits 32..48.
const KIND_FIXED: u64 = 6;
/// A multishot poll on a descriptor the caller owns (`watch`); the
/// caller's token rides in the low bits.
const KIND_WATCH: u64 = 7;
/// The most futex words one `FUTEX_WAITV` takes (the kernel's limit).
pub const MAX_FUTEX_WAITS: usize = 128;
/// futex2 flag: a 32-bit word (not private: words live in shared memory).
const FUTEX2_SIZE_U32: u32 = 0x02;
const BGID: u16 = 0;

fn user_data(kind: u64, index: u32) -> u64 {
    kind << 56 | u64::from(index)
}

/// A connection's I/O state (the rest is the shared table's).
#[derive(Default)]
struct Io {
    recv_armed: bool,
    /// The thread that armed the recv (`crate::uring::this_thread`): the
    /// kernel runs its completions' task work on that thread alone.
    recv_owner: usize,
    /// The recv is being cancelled to be armed again by the thread that
    /// drives the ring now (`TcpDriver::note_driver`).
    migrating: bool,
    /// That cancel is to spin the connection instead (`spin`).
    to_spin: bool,
    /// Read with `recv(2)` in each poll, no recv armed (`spin`).
    spun: bool,
    /// On `TcpDriver::flushed`.
    flushed: bool,
    /// Queued bytes, not yet handed to the kernel.
    out: OutBuf,
    /// Bytes of the send in progress; never touched while the kernel may read them.
    inflight: OutBuf,
    inflight_done: usize,
    send_armed: bool,
    zc_notifs: u32,
    /// Registered buffers filled and not yet sent, oldest first; the last
    /// still takes frames while `fixed_open`. All of them were filled before
    /// anything now in `out` (see `send::append_with`).
    fixed_queue: VecDeque<send::Seg>,
    fixed_open: bool,
    /// Registered buffers being sent, in order, with the bytes the kernel
    /// took of each; one linked chain of sends is in flight at a time.
    fixed_chain: VecDeque<(send::Seg, u32)>,
    /// Sends of the chain whose completion has not arrived.
    fixed_outstanding: u32,
    /// Bytes in registered buffers the kernel has not taken yet (queued or
    /// in the chain): `unsent` is asked per message, so it is kept, not summed.
    fixed_unsent: usize,
    /// SEND_ZC notifications still to come for registered buffers.
    fixed_notifs: u32,
    /// Bytes the kernel has taken from this connection's queues since the
    /// slot was last reused: with `unsent`, where an appended byte stands
    /// in the stream (see `TcpDriver::handed`).
    handed: u64,
}

impl Io {
    fn busy(&self) -> bool {
        self.recv_armed || self.send_armed || self.zc_notifs > 0 || self.fixed_notifs > 0
    }
}

struct Listener {
    sock: TcpListener,
    armed: bool,
}

/// The transport. Build and drive it on one thread (the ring's issuer).
pub struct TcpDriver {
    // Field order matters for Drop: the ring goes before the memory it used.
    uring: UringDriver,
    bufs: BufRing,
    /// Registered send buffers: only with SEND_ZC (see `new`).
    fixed: Option<FixedBufs>,
    /// Scratch for a chain of sends (kept to allocate nothing per send).
    chain_sqes: Vec<io_uring::squeue::Entry>,
    listeners: Vec<Listener>,
    conns: ConnTable<Io>,
    /// Connections whose recv needs (re-)arming: ENOBUFS, or a full SQ.
    starved: Vec<u32>,
    /// Connections whose next send could not be queued (full SQ).
    stalled: Vec<u32>,
    /// Connections flushed since the last kernel entry, whose sends start
    /// just before it (see `send::flush`).
    flushed: Vec<u32>,
    /// Direct sends not yet reported as [`TcpEvent::Sent`] (by `handle`).
    sent_direct: Vec<(ConnId, usize)>,
    cqes: Vec<cqueue::Entry>,
    /// The words of the armed `FUTEX_WAITV`; not touched while it is armed.
    futexes: Box<[types::FutexWaitV]>,
    futex_armed: bool,
    futex_supported: bool,
    /// Tokens of the watches (`watch`) whose poll has not ended.
    watches: std::collections::HashSet<u32>,
    zc_threshold: usize,
    shutting_down: bool,
    stats: TcpStats,
    /// The thread whose duty cycles poll the ring, and for how many polls
    /// in a row (see `note_driver`).
    driver: usize,
    steady: u32,
    /// Direct receives are on (the ring has DEFER_TASKRUN; see `direct`).
    direct: bool,
    /// Spin reads are on (the ring has no DEFER_TASKRUN; see `spin`).
    spin_reads: bool,
    /// Connections spun now.
    spun: usize,
    /// Polls in a row by `driver` since its last sleep (`spin`).
    spin_polls: u32,
    /// The connection slot the next `read_spun` starts at.
    spin_next: usize,
    /// The kernel entry a direct receive put off.
    owed: direct::Owed,
}

/// Polls in a row by one thread after which the connections' recvs that
/// other threads armed move to it (`TcpDriver::note_driver`): a thread
/// that drives the ring for a while, not one that drove a cycle between
/// another's.
const MIGRATE_AFTER: u32 = 256;

impl TcpDriver {
    /// A ring as `cfg` says plus its provided buffers. Multishot accept and
    /// recv need kernel 6.0; without them this says so.
    pub fn new(cfg: &IoUringSection) -> Result<Self, UringUnavailable> {
        let mut uring = UringDriver::new(cfg)?;
        let s = *uring.support();
        if !(s.accept_multi && s.recv_multi && s.buf_ring) {
            return Err(UringUnavailable::MissingFeature { what: "multishot accept/recv and provided-buffer rings" });
        }
        let bufs = BufRing::new(&mut uring, cfg.provided_buffers, cfg.buffer_size, BGID)?;
        let zc_threshold = if s.send_zc { cfg.send_zc_threshold } else { 0 };
        let fixed = match cfg.send_buffers_to_register(s.send_zc) {
            0 => None,
            count => Some(FixedBufs::new(&mut uring, count, cfg.buffer_size)?),
        };
        Ok(TcpDriver {
            uring,
            bufs,
            fixed,
            chain_sqes: Vec::with_capacity(send::MAX_CHAIN),
            listeners: Vec::new(),
            conns: ConnTable::new(),
            starved: Vec::new(),
            stalled: Vec::new(),
            flushed: Vec::new(),
            sent_direct: Vec::new(),
            cqes: Vec::with_capacity(cfg.entries as usize * 2),
            futexes: vec![types::FutexWaitV::new(); MAX_FUTEX_WAITS].into_boxed_slice(),
            futex_armed: false,
            futex_supported: s.futex_wait,
            watches: std::collections::HashSet::new(),
            zc_threshold,
            shutting_down: false,
            stats: TcpStats::default(),
            driver: 0,
            steady: 0,
            direct: s.setup.defer_taskrun,
            spin_reads: !s.setup.defer_taskrun,
            spun: 0,
            spin_polls: 0,
            spin_next: 0,
            owed: direct::Owed::None,
        })
    }

    /// The io_uring driver underneath.
    pub fn driver(&self) -> &UringDriver {
        &self.uring
    }

    /// Counters of what the transport did so far.
    pub fn stats(&self) -> TcpStats {
        self.stats
    }

    /// Whether [`arm_futexes`](Self::arm_futexes) can work here (Linux 6.7+).
    pub fn futex_waits(&self) -> bool {
        self.futex_supported
    }

    /// Send buffers registered with the ring: `io_uring.registered_buffers`
    /// when SEND_ZC is on and `buffer_size` reaches its threshold, else 0.
    pub fn registered_buffers(&self) -> usize {
        self.fixed.as_ref().map_or(0, FixedBufs::count)
    }

    /// Registered buffers nobody holds (the others wait to be sent, or for
    /// the kernel to finish with them).
    #[cfg(test)]
    pub(crate) fn registered_free(&self) -> usize {
        self.fixed.as_ref().map_or(0, FixedBufs::available)
    }

    /// Listens on `addr` with a multishot accept; returns the bound address.
    pub fn listen(&mut self, addr: SocketAddr) -> Result<SocketAddr, TcpError> {
        let sock = TcpListener::bind(addr).map_err(io_err("bind"))?;
        let local = sock.local_addr().map_err(io_err("getsockname"))?;
        self.listeners.push(Listener { sock, armed: false });
        self.arm_accept(self.listeners.len() - 1)?;
        Ok(local)
    }

    /// Takes over a connected stream (e.g. one this side dialled).
    pub fn adopt(&mut self, stream: TcpStream) -> Result<ConnId, TcpError> {
        stream.set_nodelay(true).map_err(io_err("TCP_NODELAY"))?;
        let peer = stream.peer_addr().ok();
        Ok(self.insert(OwnedFd::from(stream), peer, false))
    }

    /// Receives datagrams on `sock` through the same multishot recv and
    /// provided buffers as the streams: each `Received` event is one
    /// datagram (cut at the buffer size). Sending on it is the caller's
    /// (`sendto`); `send` refuses. Empty datagrams and ICMP errors are
    /// skipped, never taken for the end of the socket.
    pub fn adopt_datagram(&mut self, sock: std::net::UdpSocket) -> Result<ConnId, TcpError> {
        sock.set_nonblocking(true).map_err(io_err("O_NONBLOCK"))?;
        Ok(self.adopt_datagram_fd(OwnedFd::from(sock)))
    }

    /// [`adopt_datagram`](Self::adopt_datagram) for any datagram socket
    /// already in nonblocking mode (a Unix socketpair's end, say).
    pub fn adopt_datagram_fd(&mut self, fd: OwnedFd) -> ConnId {
        self.insert(fd, None, true)
    }

    /// Arms one wait on futex words in memory shared with other processes:
    /// (address of the u32, the value it must still hold); at most
    /// [`MAX_FUTEX_WAITS`].
    /// A wake on any of them (or a changed value) completes it, which ends a
    /// [`park`](Self::park). Returns false (arming nothing) when the kernel
    /// has no `FUTEX_WAITV` for io_uring (before Linux 6.7), when one is
    /// still armed, or when there are no words or too many.
    ///
    /// # Safety
    ///
    /// Every address must point at a live, 4-byte aligned u32 until the
    /// wait is submitted (by the next `park`, `poll` or `submit`): the kernel
    /// reads the values and keys the wait when it starts.
    pub unsafe fn arm_futexes(&mut self, words: &[(usize, u32)]) -> bool {
        if !self.futex_supported || self.futex_armed || words.is_empty() || words.len() > MAX_FUTEX_WAITS {
            return false;
        }
        for (slot, &(addr, val)) in self.futexes.iter_mut().zip(words) {
            *slot = types::FutexWaitV::new().val(u64::from(val)).uaddr(addr as u64).flags(FUTEX2_SIZE_U32);
        }
        let sqe = opcode::FutexWaitV::new(self.futexes.as_ptr(), words.len() as u32)
            .build()
            .user_data(user_data(KIND_FUTEX, 0));
        // SAFETY: `futexes` is neither written nor freed while `futex_armed`
        // (Drop waits for the completion or leaks); the words are the
        // caller's contract.
        if unsafe { self.uring.push(&sqe) }.is_err() {
            return false;
        }
        self.futex_armed = true;
        true
    }

    /// Watches a descriptor the caller keeps (a flow's doorbell) with a
    /// multishot poll: each time it becomes readable, `poll` reports
    /// [`TcpEvent::Rang`] with `token`, and once the poll ends (`unwatch`,
    /// an error), a last one with `more: false`. Reads nothing from it.
    /// Returns false if it was not queued (shutting down, the token is
    /// watched already, a full submission queue).
    ///
    /// # Safety
    ///
    /// `fd` must stay open until the next `poll`, `park` or `submit` has
    /// submitted the poll (the kernel then holds its own reference to the
    /// file, so closing `fd` later only leaves the poll to `unwatch`).
    pub unsafe fn watch(&mut self, fd: std::os::fd::RawFd, token: u32) -> bool {
        if self.shutting_down || self.watches.contains(&token) {
            return false;
        }
        let sqe = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(user_data(KIND_WATCH, token));
        // SAFETY: a poll names no memory; `fd` is the caller's contract.
        if unsafe { self.uring.push(&sqe) }.is_err() {
            return false;
        }
        self.watches.insert(token);
        true
    }

    /// Makes room for `total` watches in all, so that a
    /// [`watch`](Self::watch) within that number does not allocate.
    pub fn reserve_watches(&mut self, total: usize) {
        self.watches.reserve(total.saturating_sub(self.watches.len()));
    }

    /// Ends the watch `token` (its last [`TcpEvent::Rang`] follows).
    pub fn unwatch(&mut self, token: u32) {
        if self.watches.contains(&token) {
            let sqe =
                opcode::AsyncCancel::new(user_data(KIND_WATCH, token)).build().user_data(user_data(KIND_CANCEL, 0));
            // SAFETY: a cancel request names no memory.
            let _ = unsafe { self.uring.push(&sqe) };
        }
    }

    /// Cancels the armed futex wait, if any. Its completion (reaped by a
    /// later `poll`) ends it; until then [`arm_futexes`](Self::arm_futexes)
    /// refuses. The kernel read the words when the wait began: they need not
    /// outlive this call.
    pub fn disarm_futexes(&mut self) {
        if self.futex_armed {
            let sqe = opcode::AsyncCancel::new(user_data(KIND_FUTEX, 0)).build().user_data(user_data(KIND_CANCEL, 0));
            // SAFETY: a cancel request names no memory.
            let _ = unsafe { self.uring.push(&sqe) };
        }
    }

    /// Submits queued operations to the kernel now (and runs task work if
    /// the ring asks), reaping nothing: completions wait for the next `poll`.
    pub fn submit(&mut self) {
        self.retry();
        match self.owed {
            // This cycle read directly: its task work runs at the end of
            // the next, after that one's sends (see `direct`).
            direct::Owed::ThisCycle => {
                self.owed = direct::Owed::Next;
                self.uring.submit_only();
            }
            // Task work that came up during the cycle is the next poll's
            // to look at (a direct read, likely), not this entry's.
            direct::Owed::None if self.direct => self.uring.submit_only(),
            _ => {
                self.owed = direct::Owed::None;
                self.uring.poll();
            }
        }
    }

    /// Whether the last `submit` left something for the next `poll`: a
    /// completion waiting to be reaped (a doorbell's, say, posted by the
    /// task work of that very entry) or a kernel entry a direct read owes.
    /// Task work announced during the cycle and left to the next poll (the
    /// taskrun flag, see `submit`) is not counted: what it brings was
    /// rung after the cycle began, and its ringer runs cycles of its own.
    pub fn holds_back(&mut self) -> bool {
        self.owed != direct::Owed::None || !self.uring.cq_empty()
    }

    /// The remote address of stream `id` (as accepted or dialled).
    pub fn peer_addr(&self, id: ConnId) -> Option<SocketAddr> {
        self.conns.peer_addr(id)
    }

    /// Shuts the socket down; `Closed(id, Local)` follows from `poll`.
    pub fn close(&mut self, id: ConnId) -> Result<(), TcpError> {
        self.conns.close(id)
    }

    /// The bytes of a received buffer.
    pub fn data(&self, buf: &RecvBuf) -> &[u8] {
        self.bufs.slice(buf.bid, buf.len())
    }

    /// Gives a received buffer back to the kernel.
    pub fn recycle(&mut self, buf: RecvBuf) {
        self.bufs.recycle(buf.bid);
    }

    /// One non-blocking duty-cycle step; appends what happened to `events`.
    pub fn poll(&mut self, events: &mut Vec<TcpEvent>) -> usize {
        self.note_driver();
        self.retry();
        if self.direct {
            if let Some(n) = self.poll_direct(events) {
                return n;
            }
        }
        let spun = self.read_spun(events);
        if self.uring.poll() == 0 && self.sent_direct.is_empty() {
            return spun; // nothing to reap: a spinning caller's usual case
        }
        spun + self.handle(events)
    }

    /// Like `poll`, but parks up to `timeout` when nothing is ready.
    pub fn wait(&mut self, timeout: Duration, events: &mut Vec<TcpEvent>) -> usize {
        self.unspin();
        self.retry();
        self.owed = direct::Owed::None;
        if self.uring.poll() == 0 && self.sent_direct.is_empty() {
            self.uring.wait(timeout);
        }
        self.handle(events)
    }

    /// Submits what is queued and blocks up to `timeout` until a completion
    /// is ready, without reaping it (the next `poll` does). For an invoking
    /// application that found nothing to do.
    pub fn park(&mut self, timeout: Duration) {
        self.unspin();
        self.retry();
        self.owed = direct::Owed::None;
        if self.uring.poll() == 0 && self.sent_direct.is_empty() {
            self.uring.wait(timeout);
        }
    }

    fn retry(&mut self) {
        if !self.starved.is_empty() && self.bufs.available() > 0 {
            for index in std::mem::take(&mut self.starved) {
                self.stats.recv_rearms += 1;
                self.arm_recv(index);
            }
        }
        if !self.stalled.is_empty() {
            for index in std::mem::take(&mut self.stalled) {
                self.start_send(index);
            }
        }
        self.start_flushed();
    }

    fn handle(&mut self, events: &mut Vec<TcpEvent>) -> usize {
        let before = events.len();
        events.extend(self.sent_direct.drain(..).map(|(id, n)| TcpEvent::Sent(id, n)));
        let mut cqes = std::mem::take(&mut self.cqes);
        self.uring.reap_into(&mut cqes);
        for cqe in cqes.drain(..) {
            let index = (cqe.user_data() & u64::from(u32::MAX)) as u32;
            match cqe.user_data() >> 56 {
                KIND_ACCEPT => self.on_accept(index as usize, &cqe, events),
                KIND_RECV => self.on_recv(index, &cqe, events),
                KIND_SEND => self.on_send(index, &cqe, events),
                KIND_FIXED => self.on_fixed_send(index, (cqe.user_data() >> 32) as u16, &cqe, events),
                KIND_FUTEX => self.futex_armed = false,
                KIND_WATCH => {
                    let more = cqueue::more(cqe.flags());
                    if !more {
                        self.watches.remove(&index);
                    }
                    events.push(TcpEvent::Rang { token: index, more });
                }
                _ => {}
            }
        }
        self.cqes = cqes;
        events.len() - before
    }

    fn on_accept(&mut self, li: usize, cqe: &cqueue::Entry, events: &mut Vec<TcpEvent>) {
        let Some(listener) = self.listeners.get_mut(li) else { return };
        if !cqueue::more(cqe.flags()) {
            listener.armed = false;
        }
        if cqe.result() >= 0 {
            // SAFETY: a non-negative accept result is a new fd nobody else owns.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(cqe.result()) };
            let stream = TcpStream::from(fd);
            let _ = stream.set_nodelay(true);
            let peer = stream.peer_addr().ok();
            events.push(TcpEvent::Accepted(self.insert(OwnedFd::from(stream), peer, false)));
        }
        if !self.listeners[li].armed && !self.shutting_down {
            self.stats.accept_rearms += 1;
            let _ = self.arm_accept(li);
        }
    }

    fn on_recv(&mut self, index: u32, cqe: &cqueue::Entry, events: &mut Vec<TcpEvent>) {
        let more = cqueue::more(cqe.flags());
        let res = cqe.result();
        let bid = cqueue::buffer_select(cqe.flags());
        // Counted over the connections only for a recv cancelled to spin.
        let can_spin = self.conns[index as usize].io.to_spin && self.spins();
        let conn = &mut self.conns[index as usize];
        // A recv cancelled to move to the driving thread (`note_driver`):
        // armed again below, by this thread. A cancel that found the recv
        // over already is answered with ENOENT and changes nothing.
        let migrating = !more && std::mem::take(&mut conn.io.migrating);
        let to_spin = migrating && std::mem::take(&mut conn.io.to_spin);
        let moved = migrating && res == -libc::ECANCELED && conn.open;
        // Cancelled to be spun (`spin`), and over whatever ended it first
        // (the cancel, or buffers running out, or CQ pressure): spun rather
        // than armed again, its last bytes handed out above.
        let spin_now = to_spin && can_spin && conn.open;
        if !more {
            conn.io.recv_armed = false;
        }
        let id = ConnId { index, generation: conn.generation };
        match (res, bid) {
            (n, Some(bid)) if n > 0 => {
                self.bufs.lend();
                events.push(TcpEvent::Received(id, RecvBuf { bid, len: n as u32 }));
                if !more && !self.shutting_down {
                    if spin_now {
                        self.start_spin(index);
                    } else {
                        // Multishot ended without an error (e.g. CQ pressure): re-arm.
                        self.stats.recv_rearms += 1;
                        self.arm_recv(index);
                    }
                }
            }
            (n, bid) => {
                if let Some(bid) = bid {
                    // A buffer picked but not filled goes straight back.
                    self.bufs.lend();
                    self.bufs.recycle(bid);
                }
                if n == -libc::ENOBUFS {
                    self.stats.enobufs += 1;
                    if !more && !self.shutting_down {
                        if spin_now {
                            self.start_spin(index);
                        } else {
                            self.starved.push(index);
                        }
                    }
                } else if conn.datagram && n != -libc::ECANCELED {
                    // An empty datagram or an ICMP error: carry on receiving.
                    if !more && !self.shutting_down {
                        self.stats.recv_rearms += 1;
                        self.arm_recv(index);
                    }
                } else if n == 0 {
                    let reason = if conn.closed_locally { CloseReason::Local } else { CloseReason::Eof };
                    self.mark_closed(index, reason, events);
                } else if n < 0 && n != -libc::ECANCELED {
                    self.mark_closed(index, CloseReason::Error(-n), events);
                }
            }
        }
        if moved && !self.shutting_down {
            if spin_now {
                self.start_spin(index);
            } else {
                self.stats.recv_moves += 1;
                self.arm_recv(index);
            }
        }
        self.maybe_free(index);
    }

    /// Counts this thread's polls in a row; after [`MIGRATE_AFTER`] of
    /// them, moves to it every recv another thread armed. Any thread may
    /// drive a ring without a single issuer (invoker mode), but the kernel
    /// runs a completion's task work on the thread that submitted the
    /// request: a recv armed by a thread that now sleeps (the one that
    /// started the engine, or the invoker's minder during a quiet spell)
    /// completes only once that thread is woken: a wake-up per message
    /// received while the driving thread spins (tuning.md, "Groups across
    /// hosts"). Cancelled and armed again from here, the recv's completions
    /// come to the thread that reaps them. Nothing is lost meanwhile: what
    /// arrives stays in the socket until the new recv takes it.
    fn note_driver(&mut self) {
        let me = crate::uring::this_thread();
        if me != self.driver {
            (self.driver, self.steady, self.spin_polls) = (me, 0, 0);
            return;
        }
        self.steady = self.steady.saturating_add(1);
        self.spin_polls = self.spin_polls.saturating_add(1);
        // A spell of polls since the last sleep spins the connections
        // (`spin`); polls in a row, sleeps or not, move the recvs of other
        // threads here.
        let spin = self.spin_polls == MIGRATE_AFTER && self.spins();
        if (self.steady != MIGRATE_AFTER && !spin) || self.shutting_down {
            return;
        }
        let migrate = self.steady == MIGRATE_AFTER;
        for index in 0..self.conns.len() {
            let conn = &self.conns[index];
            let io = &conn.io;
            // Spun (see `spin`): every stream connection's recv, this
            // thread's too; moved: those of other threads, datagrams too.
            let to_spin = spin && !conn.datagram;
            let wanted = to_spin || (migrate && io.recv_owner != me);
            if to_spin && !io.recv_armed && !io.migrating && !io.spun && conn.open {
                // No recv armed (buffers ran out, or a full queue): nothing
                // to cancel, nothing of it in flight. Spun at once instead
                // of armed again by `retry`.
                let before = self.starved.len();
                self.starved.retain(|&i| i as usize != index);
                if self.starved.len() < before {
                    self.start_spin(index as u32);
                }
                continue;
            }
            if !io.recv_armed || io.migrating || !wanted || !conn.open {
                continue;
            }
            let sqe = opcode::AsyncCancel::new(user_data(KIND_RECV, index as u32))
                .build()
                .user_data(user_data(KIND_CANCEL, 0));
            // SAFETY: a cancel request names no memory.
            if unsafe { self.uring.push(&sqe) }.is_ok() {
                self.conns[index].io.migrating = true;
                self.conns[index].io.to_spin = to_spin;
            } else {
                // A full queue: try again after as many polls.
                (self.steady, self.spin_polls) = (0, 0);
                return;
            }
        }
    }

    fn mark_closed(&mut self, index: u32, reason: CloseReason, events: &mut Vec<TcpEvent>) {
        let conn = &mut self.conns[index as usize];
        if !conn.open {
            return;
        }
        conn.open = false;
        if let Some(fd) = &conn.fd {
            // Ends the pending recv so the slot can drain.
            shutdown(fd);
        }
        events.push(TcpEvent::Closed(ConnId { index, generation: conn.generation }, reason));
    }

    /// Frees a closed slot once the kernel holds nothing of it.
    fn maybe_free(&mut self, index: u32) {
        let conn = &mut self.conns[index as usize];
        if !conn.open && !conn.io.busy() && conn.fd.is_some() {
            let io = &mut conn.io;
            if std::mem::take(&mut io.spun) {
                self.spun -= 1;
            }
            // The slot's next connection starts with nothing owed it.
            self.starved.retain(|&i| i != index);
            self.stalled.retain(|&i| i != index);
            io.out.clear();
            io.inflight.clear();
            io.inflight_done = 0;
            if let Some(fixed) = self.fixed.as_mut() {
                let chain = io.fixed_chain.drain(..).map(|(seg, _)| seg);
                for seg in io.fixed_queue.drain(..).chain(chain) {
                    fixed.release(seg.idx);
                }
            }
            io.fixed_open = false;
            io.fixed_unsent = 0;
            self.conns.release(index);
        }
    }

    fn insert(&mut self, fd: OwnedFd, peer: Option<SocketAddr>, datagram: bool) -> ConnId {
        let id = self.conns.insert(fd, peer, datagram);
        self.arm_recv(id.index);
        id
    }

    fn arm_accept(&mut self, li: usize) -> Result<(), TcpError> {
        let listener = &mut self.listeners[li];
        let fd = types::Fd(listener.sock.as_raw_fd());
        let sqe =
            opcode::AcceptMulti::new(fd).flags(libc::SOCK_CLOEXEC).build().user_data(user_data(KIND_ACCEPT, li as u32));
        // SAFETY: accept names only the listener's fd, which `self.listeners`
        // keeps open until Drop has cancelled the accept.
        unsafe { self.uring.push(&sqe) }.map_err(io_err("queue accept"))?;
        listener.armed = true;
        Ok(())
    }

    fn arm_recv(&mut self, index: u32) {
        let conn = &mut self.conns[index as usize];
        let Some(fd) = &conn.fd else { return };
        // A spun connection is read by `recv(2)` alone until `unspin`.
        if conn.io.recv_armed || !conn.open || conn.io.spun {
            return;
        }
        let sqe = opcode::RecvMulti::new(types::Fd(fd.as_raw_fd()), self.bufs.bgid())
            .build()
            .user_data(user_data(KIND_RECV, index));
        // SAFETY: the recv writes only into provided buffers, which `self.bufs`
        // keeps mapped until every recv has ended (Drop drains or leaks); the
        // fd stays open while `recv_armed` (maybe_free waits for it).
        if unsafe { self.uring.push(&sqe) }.is_ok() {
            conn.io.recv_armed = true;
            conn.io.recv_owner = crate::uring::this_thread();
        } else {
            self.starved.push(index);
        }
    }

    pub(crate) fn in_flight(&self) -> bool {
        self.futex_armed
            || !self.watches.is_empty()
            || self.listeners.iter().any(|l| l.armed)
            || self.conns.iter().any(|c| c.io.busy())
    }
}

impl Drop for TcpDriver {
    /// Ends every operation before the memory they use goes: shuts sockets
    /// down, cancels accepts, and reaps until nothing is in flight. If that
    /// does not happen within a bound, the buffers are leaked, never freed
    /// under the kernel.
    fn drop(&mut self) {
        self.shutting_down = true;
        for index in 0..self.conns.len() {
            let conn = &self.conns[index];
            if let Some(fd) = &conn.fd {
                // Ends a stream's pending recv.
                shutdown(fd);
            }
            if conn.datagram && conn.io.recv_armed {
                // Shutting a datagram socket down does not end its recv: cancel it.
                let sqe = opcode::AsyncCancel::new(user_data(KIND_RECV, index as u32))
                    .build()
                    .user_data(user_data(KIND_CANCEL, 0));
                // SAFETY: a cancel request names no memory.
                let _ = unsafe { self.uring.push(&sqe) };
            }
        }
        for li in 0..self.listeners.len() {
            if self.listeners[li].armed {
                let sqe = opcode::AsyncCancel::new(user_data(KIND_ACCEPT, li as u32))
                    .build()
                    .user_data(user_data(KIND_CANCEL, 0));
                // SAFETY: a cancel request names no memory.
                let _ = unsafe { self.uring.push(&sqe) };
            }
        }
        if self.futex_armed {
            let sqe = opcode::AsyncCancel::new(user_data(KIND_FUTEX, 0)).build().user_data(user_data(KIND_CANCEL, 0));
            // SAFETY: a cancel request names no memory.
            let _ = unsafe { self.uring.push(&sqe) };
        }
        for &token in &self.watches {
            let sqe =
                opcode::AsyncCancel::new(user_data(KIND_WATCH, token)).build().user_data(user_data(KIND_CANCEL, 0));
            // SAFETY: a cancel request names no memory.
            let _ = unsafe { self.uring.push(&sqe) };
        }
        let mut events = Vec::new();
        for _ in 0..200 {
            if !self.in_flight() {
                return;
            }
            self.wait(Duration::from_millis(10), &mut events);
            for ev in events.drain(..) {
                if let TcpEvent::Received(_, buf) = ev {
                    self.recycle(buf);
                }
            }
        }
        self.bufs.leak();
        if let Some(fixed) = self.fixed.as_mut() {
            fixed.leak();
        }
        for conn in self.conns.iter_mut() {
            std::mem::forget(std::mem::take(&mut conn.io.inflight));
        }
        std::mem::forget(std::mem::take(&mut self.futexes));
    }
}
