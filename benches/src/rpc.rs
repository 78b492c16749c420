//! The ringflow impls of scenario `rpc`: request/reply with `Flow::call`
//! on the client and `reply` / `receive_request` on the server, between
//! the two pinned threads of the ping-pong driver, on the same flow setup
//! as the `flow` scenario's ping-pong (a listener, an allocated flow, the
//! request/reply send window on both sides).
//!
//! The driver asks a ping side to send, then to receive; a call is one
//! operation, so the client's `send` starts it (`try_call`, or the blocking
//! `call` in [`recv`](PingSide::recv) for the parked case) and its `recv`
//! finishes it (`try_receive_more`). The server replies to each request as
//! it takes it (`reply`, then `receive_request` for the next), which is
//! what `reply_and_receive` does in one step: the same frames, flags and
//! wakes; the driver needs each echo to end with its reply (variants take
//! turns block by block).

use std::time::Duration;

use ringflow_api::{CallError, Flow, Phase, Qos};

use crate::error::BenchError;
use crate::flow::{err, request_reply_pair, spin_pingpong_sides, DirGuard, PING_RING_BYTES};
use crate::limit;
use crate::measure::{Measurement, RunCtx};
use crate::os::{check_after_timeout, Wait, BLOCK_TIMEOUT};
use crate::pair::Waiter;
use crate::pingpong::{self, Either::Left, Either::Right, PingSide, PongSide};
use crate::wire::word;

/// What holds a side's flow: the flow itself, or a remote side's end
/// (which must know when the stop message went, see `crate::remote`).
pub(crate) trait Holds: Send {
    fn flow(&mut self) -> &mut Flow;
    /// The stop message was sent.
    fn sent_stop(&mut self) {}
}

impl Holds for Flow {
    #[inline]
    fn flow(&mut self) -> &mut Flow {
        self
    }
}

/// The client: calls with the request the driver hands to `send`.
pub(crate) struct Client<const N: usize, F: Holds = Flow> {
    end: F,
    wait: Wait,
    request: [u8; N],
    reply: [u8; N],
    /// A reply that came with the call's first look (spinning).
    replied: bool,
}

impl<const N: usize, F: Holds> Client<N, F> {
    pub(crate) fn new(end: F, wait: Wait) -> Self {
        Client { end, wait, request: [0; N], reply: [0; N], replied: false }
    }
}

impl<const N: usize, F: Holds> PingSide<N> for Client<N, F> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        let stop = pingpong::is_stop(msg);
        if stop {
            self.end.sent_stop();
        }
        match self.wait {
            // Sends and hands the turn over; the reply is rarely there yet.
            // The stop message gets no reply, and the server may leave as
            // soon as it took it (`OverDisconnected`, before or after our
            // look for an answer).
            Wait::Spin => match self.end.flow().try_call(msg, &mut self.reply) {
                Ok(_) => self.replied = true,
                Err(CallError::WouldBlock { phase: Phase::Over | Phase::Recv, .. }) => {}
                Err(CallError::OverDisconnected) if stop => {}
                Err(e) => return Err(err("Flow::try_call", e)),
            },
            Wait::Block if stop => match self.end.flow().try_call(msg, &mut self.reply) {
                Err(CallError::WouldBlock { phase: Phase::Over, .. } | CallError::OverDisconnected) => {}
                Ok(_) => self.replied = true,
                Err(e) => return Err(err("Flow::try_call", e)),
            },
            // The blocking call sends and waits in one step, in `recv`.
            Wait::Block => self.request = *msg,
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        if std::mem::take(&mut self.replied) {
            return Ok(word(&self.reply, 0));
        }
        if self.wait == Wait::Block {
            match self.end.flow().call_timeout(&self.request, &mut self.reply, BLOCK_TIMEOUT) {
                Ok(_) => return Ok(word(&self.reply, 0)),
                // The request went: wait on for the reply below.
                Err(CallError::TimedOut { phase: Phase::Over | Phase::Recv, .. }) => check_after_timeout(w)?,
                Err(e) => return Err(err("Flow::call", e)),
            }
        }
        loop {
            let r = match self.wait {
                Wait::Spin => self.end.flow().try_receive_more(&mut self.reply),
                Wait::Block => self.end.flow().receive_more_timeout(&mut self.reply, BLOCK_TIMEOUT),
            };
            match r {
                Ok(_) => return Ok(word(&self.reply, 0)),
                Err(CallError::WouldBlock { .. }) => w.wait()?,
                Err(CallError::TimedOut { .. }) => check_after_timeout(w)?,
                Err(e) => return Err(err("Flow::receive_more", e)),
            }
        }
    }
}

/// The server: takes a request and replies to it.
pub(crate) struct Server<const N: usize, F: Holds = Flow> {
    end: F,
    wait: Wait,
}

impl<const N: usize, F: Holds> Server<N, F> {
    pub(crate) fn new(end: F, wait: Wait) -> Self {
        Server { end, wait }
    }
}

impl<const N: usize, F: Holds> PongSide<N> for Server<N, F> {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let mut request = [0u8; N];
        loop {
            let r = match self.wait {
                Wait::Spin => self.end.flow().try_receive_request(&mut request),
                Wait::Block => self.end.flow().receive_request_timeout(&mut request, BLOCK_TIMEOUT),
            };
            match r {
                Ok(_) => break,
                Err(CallError::WouldBlock { .. }) => w.wait()?,
                Err(CallError::TimedOut { .. }) => check_after_timeout(w)?,
                Err(e) => return Err(err("Flow::receive_request", e)),
            }
        }
        if pingpong::is_stop(&request) {
            return Ok(false);
        }
        // One reply in flight: there is always room, it never waits.
        self.end.flow().reply(&request).map_err(|e| err("Flow::reply", e))?;
        Ok(true)
    }
}

/// A client and a server on a flow set up as the `flow` scenario's
/// ping-pong is.
fn sides<const N: usize>(
    wait: Wait,
    spin: Duration,
    latency: bool,
) -> Result<(Client<N>, Server<N>, DirGuard), BenchError> {
    let (a, b, dir) = request_reply_pair(Qos::data().with_ring_bytes(PING_RING_BYTES), spin, latency)?;
    Ok((Client::new(a, wait), Server::new(b, wait), dir))
}

/// Case `call-64B`: the limit, calls, and a flow's send + receive ping-pong,
/// spinning, taking turns every `pingpong::BLOCK` round trips (three
/// measurements, in that order). With feature `iceoryx2` the case runs
/// `peers::iceoryx2_rpc::call_spin_alternating` instead, these and one more.
#[cfg(not(feature = "iceoryx2"))]
pub fn call_spin_alternating(ctx: &RunCtx) -> Result<Vec<Measurement>, BenchError> {
    call_spin_alternating_with::<Client<64>, Server<64>>(ctx, Vec::new())
}

/// Case `call-64B`'s three variants (limit, ringflow, flow-pingpong), then
/// `peers` (each a client and a server of another library, all spinning),
/// taking turns every `pingpong::BLOCK` round trips: one measurement per
/// variant, the peers' last, in their order.
pub(crate) fn call_spin_alternating_with<P: PingSide<64>, Q: PongSide<64>>(
    ctx: &RunCtx,
    peers: Vec<(P, Q)>,
) -> Result<Vec<Measurement>, BenchError> {
    let (client, server, _dir_call) = sides::<64>(Wait::Spin, Duration::ZERO, true)?;
    let (ping, pong, _dir_flow) = spin_pingpong_sides(true)?;
    let lines = Box::<limit::Lines>::default();
    let (limit_ping, limit_pong) = limit::pingpong_sides(&lines);
    // ringflow and flow-pingpong sit as deep in the nesting as each other.
    let mut pings = vec![Left(limit_ping), Right(Left(Left(client))), Right(Left(Right(ping)))];
    let mut pongs = vec![Left(limit_pong), Right(Left(Left(server))), Right(Left(Right(pong)))];
    for (p, q) in peers {
        pings.push(Right(Right(p)));
        pongs.push(Right(Right(q)));
    }
    pingpong::run_alternating::<64, _, _>(ctx, pings, pongs)
}

/// Case `call-64B-blocking`: a blocking call against a server parked in
/// `receive_request`, neither spinning before it parks.
pub fn call_blocking(ctx: &RunCtx) -> Result<Measurement, BenchError> {
    let (client, server, _dir) = sides::<64>(Wait::Block, Duration::ZERO, true)?;
    pingpong::run::<64>(ctx, client, server)
}

/// Bytes of the driver's message a zero-copy side writes into its loan (the
/// sequence number and the mark): the rest of the loan is left as it is.
pub(crate) const HEADER: usize = 16;

/// The zero-copy client: the request written in a loan
/// (`loan_request`), the reply read in place (`receive_more_ref`).
struct LoanClient {
    flow: Flow,
    len: usize,
}

impl PingSide<HEADER> for LoanClient {
    #[inline]
    fn send(&mut self, msg: &[u8; HEADER], w: &mut Waiter<'_>) -> Result<(), BenchError> {
        loop {
            match self.flow.try_loan_request(self.len) {
                Ok(mut loan) => {
                    loan[..HEADER].copy_from_slice(msg);
                    return loan.send().map_err(|e| err("SendBuf::send", e));
                }
                Err(CallError::WouldBlock { .. }) => w.wait()?,
                Err(e) => return Err(err("Flow::try_loan_request", e)),
            }
        }
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        loop {
            match self.flow.try_receive_more_ref() {
                Ok(reply) => return Ok(word(&reply, 0)),
                Err(CallError::WouldBlock { .. }) => w.wait()?,
                Err(e) => return Err(err("Flow::try_receive_more_ref", e)),
            }
        }
    }
}

/// The zero-copy server: the request read in place
/// (`receive_request_ref`), the reply written in a loan (`loan_reply`).
struct LoanServer {
    flow: Flow,
    len: usize,
}

impl PongSide<HEADER> for LoanServer {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let mut header = [0u8; HEADER];
        loop {
            match self.flow.try_receive_request_ref() {
                Ok(request) => {
                    header.copy_from_slice(&request[..HEADER]);
                    break;
                }
                Err(CallError::WouldBlock { .. }) => w.wait()?,
                Err(e) => return Err(err("Flow::try_receive_request_ref", e)),
            }
        }
        if pingpong::is_stop(&header) {
            return Ok(false);
        }
        // One reply in flight: there is always room.
        let mut loan = self.flow.try_loan_reply(self.len).map_err(|e| err("Flow::try_loan_reply", e))?;
        loan[..HEADER].copy_from_slice(&header);
        loan.send().map_err(|e| err("SendBuf::send", e))?;
        Ok(true)
    }
}

/// Case `call-4KiB-zerocopy`: calls of `len`-byte requests and replies,
/// both written in loans and read in place (only their headers touched),
/// both threads spinning.
pub fn call_zerocopy(ctx: &RunCtx, len: usize) -> Result<Measurement, BenchError> {
    let (a, b, _dir) = request_reply_pair(Qos::data().with_ring_bytes(PING_RING_BYTES), Duration::ZERO, true)?;
    pingpong::run::<HEADER>(ctx, LoanClient { flow: a, len }, LoanServer { flow: b, len })
}
