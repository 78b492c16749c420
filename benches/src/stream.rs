//! The stream driver: one-way throughput of back-to-back messages, with the
//! one-way latency (under load) of every `stamp_every`-th message. An impl
//! supplies its transport ([`StreamTx`], [`StreamRx`]) and its batching;
//! numbering, timestamps and the measured window come from [`Source`] and
//! [`Sink`], identical for every impl.

use std::time::Instant;

use crate::error::BenchError;
use crate::measure::{Measurement, RunCtx};
use crate::pair::{run_pair, Waiter};
use crate::wire::{Sink, Source};

/// Messages between two timestamps (and deadline checks) of the sender.
pub const STAMP_EVERY: u64 = 64;

/// The sending side.
pub trait StreamTx: Send {
    /// Sends a batch of messages, each header from `src.next_msg()` taken
    /// once its slot is free. Returns true once the stop message is sent.
    fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError>;
}

/// The receiving side.
pub trait StreamRx: Send {
    /// Receives what is available (up to a batch), handing each message to
    /// `sink`, or waits once with `w` if nothing is. Returns true once the
    /// stop message was received.
    fn recv_batch(&mut self, sink: &mut Sink, w: &mut Waiter<'_>) -> Result<bool, BenchError>;
}

/// Runs the sender on core 0 and the receiver on core 1.
pub fn run(ctx: &RunCtx, tx: impl StreamTx, rx: impl StreamRx) -> Result<Measurement, BenchError> {
    let epoch = Instant::now();
    let sink = Sink::new(epoch)?;
    let ((), m) = run_pair(ctx, move |w| send_loop(ctx, epoch, tx, w), move |w| recv_loop(sink, rx, w))?;
    Ok(m)
}

/// [`run`] for transports whose state belongs to the thread that drives it
/// (an engine run by the application's thread): each side is built by its
/// closure on its own pinned thread, and the sender's warm-up starts once it
/// is built. The two closures run at once and may talk to each other.
pub fn run_built<T: StreamTx, R: StreamRx>(
    ctx: &RunCtx,
    make_tx: impl FnOnce() -> Result<T, BenchError> + Send,
    make_rx: impl FnOnce() -> Result<R, BenchError> + Send,
) -> Result<Measurement, BenchError> {
    let epoch = Instant::now();
    let sink = Sink::new(epoch)?;
    let send = move |w: &mut Waiter<'_>| {
        let tx = make_tx()?;
        // Timestamps stay relative to `epoch`, shared with the sink; the
        // window starts later by the time set-up took.
        let ctx = RunCtx { warmup: ctx.warmup + epoch.elapsed(), ..*ctx };
        send_loop(&ctx, epoch, tx, w)
    };
    let ((), m) = run_pair(ctx, send, move |w| recv_loop(sink, make_rx()?, w))?;
    Ok(m)
}

fn send_loop(ctx: &RunCtx, epoch: Instant, mut tx: impl StreamTx, w: &mut Waiter<'_>) -> Result<(), BenchError> {
    let mut src = Source::new(epoch, ctx, STAMP_EVERY);
    while !tx.send_batch(&mut src, w)? {}
    Ok(())
}

fn recv_loop(mut sink: Sink, mut rx: impl StreamRx, w: &mut Waiter<'_>) -> Result<Measurement, BenchError> {
    while !rx.recv_batch(&mut sink, w)? {}
    Ok(sink.finish())
}
