//! The ping-pong driver: round-trip latency of one message between the two
//! pinned threads. An impl supplies only its transport ([`PingSide`],
//! [`PongSide`]); timing, warm-up and the histogram live here, identical for
//! every impl. One histogram sample per round trip.

use std::time::Instant;

use crate::error::BenchError;
use crate::measure::{nanos_between, new_histogram, Measurement, RunCtx};
use crate::pair::{run_pair, Waiter};
use crate::wire::{set_word, word, Template, MARK_AT, MEASURED, STOP, WARMUP};

/// The side that sends, waits for the echo, and measures.
pub trait PingSide<const N: usize>: Send {
    /// Sends one message (waiting with `w` while there is no room).
    fn send(&mut self, msg: &[u8; N], w: &mut Waiter<'_>) -> Result<(), BenchError>;
    /// Waits for the next reply and returns its sequence number.
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError>;
}

/// The side that echoes.
pub trait PongSide<const N: usize>: Send {
    /// Waits for one message and echoes it back whole. Returns false (and
    /// echoes nothing) when the message is the stop message.
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError>;
}

/// Whether an echoed message is the stop message.
#[inline]
pub fn is_stop(msg: &[u8]) -> bool {
    word(msg, MARK_AT) == STOP
}

/// Runs ping on core 0 and pong on core 1 for the context's warm-up and
/// measured time.
pub fn run<const N: usize>(
    ctx: &RunCtx,
    ping: impl PingSide<N>,
    pong: impl PongSide<N>,
) -> Result<Measurement, BenchError> {
    let (m, ()) = run_pair(ctx, move |w| ping_loop(ctx, ping, w), move |w| pong_loop(pong, w))?;
    Ok(m)
}

/// [`run`] for transports whose state belongs to the thread that drives it
/// (an engine run by the application's thread): each side is built by its
/// closure on its own pinned thread, before its clock starts. The two
/// closures run at once and may talk to each other (one tells the other
/// where to connect).
pub fn run_built<const N: usize, P: PingSide<N>, Q: PongSide<N>>(
    ctx: &RunCtx,
    make_ping: impl FnOnce() -> Result<P, BenchError> + Send,
    make_pong: impl FnOnce() -> Result<Q, BenchError> + Send,
) -> Result<Measurement, BenchError> {
    let (m, ()) = run_pair(ctx, move |w| ping_loop(ctx, make_ping()?, w), move |w| pong_loop(make_pong()?, w))?;
    Ok(m)
}

fn ping_loop<const N: usize>(
    ctx: &RunCtx,
    mut ping: impl PingSide<N>,
    w: &mut Waiter<'_>,
) -> Result<Measurement, BenchError> {
    let mut msg = *Template::<N>::new().bytes();
    let mut hist = new_histogram()?;
    let start = Instant::now();
    let warm_end = start + ctx.warmup;
    let end = warm_end + ctx.measure;
    let mut first = None;
    let mut done = 0u64;
    let mut seq = 0u64;
    loop {
        let t0 = Instant::now();
        // At least one sample, even if this thread missed the whole window.
        if t0 >= end && done > 0 {
            set_word(&mut msg, 0, seq);
            set_word(&mut msg, MARK_AT, STOP);
            ping.send(&msg, w)?;
            let elapsed = t0.saturating_duration_since(first.unwrap_or(t0));
            return Ok(Measurement { hist, msgs: done, elapsed });
        }
        let measuring = t0 >= warm_end;
        set_word(&mut msg, 0, seq);
        set_word(&mut msg, MARK_AT, if measuring { MEASURED } else { WARMUP });
        ping.send(&msg, w)?;
        let got = ping.recv(w)?;
        let t1 = Instant::now();
        if got != seq {
            return Err(BenchError::Protocol { expected: seq, got });
        }
        if measuring {
            first.get_or_insert(t0);
            hist.saturating_record(nanos_between(t0, t1).max(1));
            done += 1;
        }
        seq += 1;
    }
}

fn pong_loop<const N: usize>(mut pong: impl PongSide<N>, w: &mut Waiter<'_>) -> Result<(), BenchError> {
    while pong.echo(w)? {}
    Ok(())
}
