//! The ringflow impls of scenario `flow`: the public API end to end — a
//! listener and an allocated flow (Unix socket handshake, memfd, two rings
//! per direction), then send / receive in their spinning (`try_` forms,
//! busy-polled) or blocking (parking on the flow's futex) forms.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ringflow_api::{
    Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos, RecvError, SendBuf, SendError, REQUEST_REPLY_WINDOW,
};

use crate::error::BenchError;
use crate::limit;
use crate::measure::{Measurement, RunCtx};
use crate::os::{check_after_timeout, Wait, BLOCK_TIMEOUT};
use crate::pair::Waiter;
use crate::pingpong::{self, Either::Left, Either::Right, PingSide, PongSide};
use crate::stream::{self, StreamRx, StreamTx};
use crate::wire::{word, Msg, Sink, Source, Template};

pub(crate) fn err(call: &'static str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Peer { call, error: e.to_string() }
}

/// A private runtime directory, removed on drop.
pub(crate) struct DirGuard(PathBuf);

impl DirGuard {
    /// A fresh directory path of this process (created by whoever binds in it).
    pub(crate) fn new() -> Self {
        static RUN: AtomicUsize = AtomicUsize::new(0);
        // SYNC: Relaxed; a counter for unique names, nothing published with it.
        let n = RUN.fetch_add(1, Ordering::Relaxed);
        DirGuard(std::env::temp_dir().join(format!("ringflow-bench-{}-{n}", std::process::id())))
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A connected pair of flows (allocating side, accepting side) in a private
/// runtime directory.
pub(crate) fn pair(qos: Qos, spin: Duration) -> Result<(Flow, Flow, DirGuard), BenchError> {
    pair_latency(qos, spin, true)
}

/// A [`pair_latency`] set up for request/reply: both sides send with
/// [`REQUEST_REPLY_WINDOW`] (`Flow::set_send_window`).
pub(crate) fn request_reply_pair(
    qos: Qos,
    spin: Duration,
    latency: bool,
) -> Result<(Flow, Flow, DirGuard), BenchError> {
    let (mut a, mut b, dir) = pair_latency(qos, spin, latency)?;
    a.set_send_window(Some(REQUEST_REPLY_WINDOW));
    b.set_send_window(Some(REQUEST_REPLY_WINDOW));
    Ok((a, b, dir))
}

/// [`pair`] with latency recording on or off on both ends.
fn pair_latency(qos: Qos, spin: Duration, latency: bool) -> Result<(Flow, Flow, DirGuard), BenchError> {
    let guard = DirGuard::new();
    let dir = guard.path().to_path_buf();
    let mut l = Listener::bind_with("bench", ListenerOptions::new().runtime_dir(&dir).spin(spin).latency(latency))
        .map_err(|e| err("Listener::bind", e))?;
    let d = dir.clone();
    let client = std::thread::spawn(move || {
        Flow::alloc_with(
            "bench",
            &qos,
            Deadline::after(Duration::from_secs(10)),
            FlowOptions::new().runtime_dir(d).spin(spin).latency(latency),
        )
    });
    let b = l.accept_timeout(Duration::from_secs(10)).map_err(|e| err("Listener::accept", e))?;
    let a =
        client.join().map_err(|_| BenchError::Panicked { side: "flow setup" })?.map_err(|e| err("Flow::alloc", e))?;
    Ok((a, b, guard))
}

/// Waits for the next message and hands it to `f`, spinning on the `try_`
/// form or parking in the blocking one.
#[inline]
pub(crate) fn recv_with<T>(
    flow: &mut Flow,
    wait: Wait,
    w: &mut Waiter<'_>,
    mut f: impl FnMut(&[u8]) -> T,
) -> Result<T, BenchError> {
    loop {
        let r = match wait {
            Wait::Spin => flow.try_recv_ref(),
            Wait::Block => flow.recv_ref_timeout(BLOCK_TIMEOUT),
        };
        match r {
            Ok(m) => return Ok(f(&m)),
            Err(RecvError::WouldBlock) => w.wait()?,
            Err(RecvError::TimedOut) => check_after_timeout(w)?,
            Err(e) => return Err(err("Flow::recv_ref", e)),
        }
    }
}

/// One end of a ping-pong over a flow, waiting as `wait` says.
pub(crate) struct Side {
    pub(crate) flow: Flow,
    pub(crate) wait: Wait,
}

impl<const N: usize> PingSide<N> for Side {
    #[inline]
    fn send(&mut self, msg: &[u8; N], _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        // One message in flight: there is always room, `send` never waits.
        self.flow.send(msg).map_err(|e| err("Flow::send", e))
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        recv_with(&mut self.flow, self.wait, w, |m| word(m, 0))
    }
}

impl<const N: usize> PongSide<N> for Side {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        echo_with::<N>(&mut self.flow, self.wait, w, |flow, copy, _| flow.send(copy).map_err(|e| err("Flow::send", e)))
    }
}

/// One pong: receives a message and sends it back with `send`; false once
/// the stop message came (it is not echoed).
#[inline]
pub(crate) fn echo_with<const N: usize>(
    flow: &mut Flow,
    wait: Wait,
    w: &mut Waiter<'_>,
    send: impl FnOnce(&mut Flow, &mut [u8; N], &mut Waiter<'_>) -> Result<(), BenchError>,
) -> Result<bool, BenchError> {
    let mut copy = [0u8; N];
    let stop = recv_with(flow, wait, w, |m| {
        let n = m.len().min(N);
        copy[..n].copy_from_slice(&m[..n]);
        pingpong::is_stop(m)
    })?;
    if stop {
        return Ok(false);
    }
    send(flow, &mut copy, w)?;
    Ok(true)
}

/// Round trip of an N-byte message over a flow, both sides spinning on the
/// `try_` forms ([`Wait::Spin`]) or in the blocking forms ([`Wait::Block`]),
/// which spin for `spin` before they park on the flow's futex.
pub fn pingpong<const N: usize>(ctx: &RunCtx, wait: Wait, spin: Duration) -> Result<Measurement, BenchError> {
    let (a, b, _dir) = request_reply_pair(Qos::data().with_ring_bytes(PING_RING_BYTES), spin, true)?;
    pingpong::run::<N>(ctx, Side { flow: a, wait }, Side { flow: b, wait })
}

/// The ring of the ping-pong flows.
pub(crate) const PING_RING_BYTES: usize = 64 << 10;

/// Case `pingpong-spin-64B`'s spinning impls (64-byte messages) in one run, taking turns
/// every `pingpong::BLOCK` round trips: the limit (one cache line each
/// way), then a pair of flows recording latency histograms, then a pair
/// that does not. Three measurements, in that order, all under the same
/// moods of the machine (what recording costs is a few percent; this VM
/// drifts 3x within seconds).
pub fn pingpong_spin_alternating(ctx: &RunCtx) -> Result<Vec<Measurement>, BenchError> {
    let (ping_on, pong_on, _dir_on) = spin_pingpong_sides(true)?;
    let (ping_off, pong_off, _dir_off) = spin_pingpong_sides(false)?;
    let lines = Box::<limit::Lines>::default();
    let (limit_ping, limit_pong) = limit::pingpong_sides(&lines);
    let pings = vec![Left(limit_ping), Right(ping_on), Right(ping_off)];
    let pongs = vec![Left(limit_pong), Right(pong_on), Right(pong_off)];
    pingpong::run_alternating::<64, _, _>(ctx, pings, pongs)
}

/// The two sides of case `pingpong-spin-64B`'s ringflow impl (a flow set up
/// for request/reply, `try_` forms busy-polled), recording latency
/// histograms or not, for a driver that runs them among other variants;
/// the flow's runtime directory lives as long as the guard.
pub(crate) fn spin_pingpong_sides(
    latency: bool,
) -> Result<(impl PingSide<64>, impl PongSide<64>, DirGuard), BenchError> {
    let qos = Qos::data().with_ring_bytes(PING_RING_BYTES);
    let (a, b, dir) = request_reply_pair(qos, Duration::ZERO, latency)?;
    Ok((Side { flow: a, wait: Wait::Spin }, Side { flow: b, wait: Wait::Spin }, dir))
}

/// Messages per stream batch: the sender checks its clock and the receiver
/// yields to the harness once per batch.
const BATCH: usize = 32;

struct CopyTx<const N: usize> {
    flow: Flow,
    template: Template<N>,
}

/// Sends `bytes` with `try_send`, waiting with `w` while the ring is full
/// (renewing the timestamp with `src` each time). On a lossy flow a full
/// ring drops the message instead (`SendError::Full`): that is no error.
#[inline]
pub(crate) fn send_waiting(
    flow: &mut Flow,
    bytes: &mut [u8],
    src: &Source,
    w: &mut Waiter<'_>,
) -> Result<(), BenchError> {
    loop {
        match flow.try_send(bytes) {
            Ok(()) | Err(SendError::Full) => return Ok(()),
            Err(SendError::WouldBlock) => {
                w.wait()?;
                src.restamp(bytes);
            }
            Err(e) => return Err(err("Flow::try_send", e)),
        }
    }
}

/// Loans `len` bytes with `try_loan`, waiting with `w` while there is no
/// room, and hands the loan to `fill` (which sends it).
#[inline]
pub(crate) fn with_loan<T>(
    flow: &mut Flow,
    len: usize,
    w: &mut Waiter<'_>,
    fill: impl FnOnce(SendBuf<'_>) -> Result<T, BenchError>,
) -> Result<T, BenchError> {
    loop {
        match flow.try_loan(len) {
            Ok(loan) => return fill(loan),
            Err(SendError::WouldBlock) => w.wait()?,
            Err(e) => return Err(err("Flow::try_loan", e)),
        }
    }
}

impl<const N: usize> StreamTx for CopyTx<N> {
    #[inline]
    fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        for _ in 0..BATCH {
            let msg = src.next_msg();
            let mut bytes = msg.to_array(&self.template);
            send_waiting(&mut self.flow, &mut bytes, src, w)?;
            if msg.ends_turn() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

struct LoanTx {
    flow: Flow,
    len: usize,
}

impl StreamTx for LoanTx {
    #[inline]
    fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        for _ in 0..BATCH {
            let msg = src.next_msg();
            with_loan(&mut self.flow, self.len, w, |mut loan| {
                // Zero-copy: only the header is written; the rest of the
                // message is whatever the shared memory holds.
                msg.stamp(&mut loan[..16]);
                src.restamp(&mut loan[..16]);
                loan.send().map_err(|e| err("SendBuf::send", e))
            })?;
            if msg.ends_turn() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The batch form: `send_batch_with` writes each message of a batch in
/// place (its header and template, as the ring's own stream does) and
/// publishes the batch with one commit.
struct BatchTx<const N: usize> {
    flow: Flow,
    template: Template<N>,
}

impl<const N: usize> StreamTx for BatchTx<N> {
    #[inline]
    fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let template = self.template.bytes();
        let mut stop = false;
        let sent = self.flow.try_send_batch_with(&[N; BATCH], |_, buf| {
            let msg = src.next_msg();
            msg.write(buf, template);
            stop = msg.ends_turn();
            !stop
        });
        match sent {
            Ok(_) => Ok(stop),
            Err(SendError::WouldBlock) => w.wait().map(|()| false),
            Err(e) => Err(err("Flow::try_send_batch_with", e)),
        }
    }
}

/// The batch form's receiving side: `try_recv_batch`, every line of each
/// message read in place.
struct BatchRx {
    flow: Flow,
}

impl StreamRx for BatchRx {
    #[inline]
    fn recv_batch(&mut self, sink: &mut Sink, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let mut outcome = Ok(false);
        let read = self.flow.try_recv_batch(BATCH, |m| {
            if matches!(outcome, Ok(false)) {
                outcome = sink.on_bytes(m);
            }
        });
        match read {
            Ok(_) => outcome,
            Err(RecvError::WouldBlock) => w.wait().map(|()| false),
            Err(e) => Err(err("Flow::try_recv_batch", e)),
        }
    }
}

/// A receiving flow of a stream or a fan-out.
pub(crate) struct Rx {
    pub(crate) flow: Flow,
    /// Read every line of each message (copy streams) or only its header
    /// (zero-copy streams, where nobody touches the payload).
    pub(crate) touch_all: bool,
}

impl Rx {
    /// Hands the messages there now, at most `max`, to `sink`, in place.
    /// Returns how many it took and whether the last one ended the turn.
    #[inline]
    pub(crate) fn take(&mut self, sink: &mut Sink, max: usize) -> Result<(usize, bool), BenchError> {
        for took in 0..max {
            match self.flow.try_recv_ref() {
                Ok(m) => {
                    let stop = if self.touch_all { sink.on_bytes(&m)? } else { sink.on_msg(Msg::read(&m[..16]), 0)? };
                    if stop {
                        return Ok((took + 1, true));
                    }
                }
                Err(RecvError::WouldBlock) => return Ok((took, false)),
                Err(e) => return Err(err("Flow::try_recv_ref", e)),
            }
        }
        Ok((max, false))
    }
}

impl StreamRx for Rx {
    #[inline]
    fn recv_batch(&mut self, sink: &mut Sink, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let (took, ended) = self.take(sink, BATCH)?;
        if took == 0 {
            w.wait()?;
        }
        Ok(ended)
    }
}

/// One-way stream of N-byte messages, each copied in with `try_send` and
/// read in place with `try_recv_ref`.
pub fn stream_copy<const N: usize>(ctx: &RunCtx, ring_bytes: usize) -> Result<Measurement, BenchError> {
    let (a, b, _dir) = pair(Qos::data().with_ring_bytes(ring_bytes), Duration::ZERO)?;
    stream::run(ctx, CopyTx::<N> { flow: a, template: Template::new() }, Rx { flow: b, touch_all: true })
}

/// One-way stream of N-byte messages in batches: `try_send_batch_with`
/// writes each in place, `try_recv_batch` reads each in place.
pub fn stream_batch<const N: usize>(ctx: &RunCtx, ring_bytes: usize) -> Result<Measurement, BenchError> {
    let (a, b, _dir) = pair(Qos::data().with_ring_bytes(ring_bytes), Duration::ZERO)?;
    stream::run(ctx, BatchTx::<N> { flow: a, template: Template::new() }, BatchRx { flow: b })
}

/// One-way stream of `len`-byte messages: the sender loans each in the
/// flow's bulk area and writes a 16-byte header, the receiver reads the
/// header in place. Nothing is copied.
pub fn stream_zerocopy(ctx: &RunCtx, len: usize) -> Result<Measurement, BenchError> {
    let qos = Qos::data().with_max_msg(len);
    let (a, b, _dir) = pair(qos, Duration::ZERO)?;
    stream::run(ctx, LoanTx { flow: a, len }, Rx { flow: b, touch_all: false })
}
