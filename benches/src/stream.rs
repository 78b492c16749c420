//! The stream driver: one-way throughput of back-to-back messages, with the
//! one-way latency (under load) of every `stamp_every`-th message. An impl
//! supplies its transport ([`StreamTx`], [`StreamRx`]) and its batching;
//! numbering, timestamps and the measured window come from [`Source`] and
//! [`Sink`], identical for every impl.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::error::BenchError;
use crate::measure::{Measurement, RunCtx};
use crate::pair::{run_pair, Waiter};
use crate::pingpong::Either;
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

/// Messages per turn of [`run_alternating`]: a few milliseconds here, long
/// against the ring filling up at a turn's start, short against the seconds
/// this VM's moods last.
pub const TURN: u64 = 1 << 15;

/// Streams over several transports (variants) in one run, taking turns
/// every [`TURN`] messages, so that all meet the same moods of the machine.
/// Each variant has its own numbering, window and latency samples; a
/// variant's window is the receiver's time on its own turns. The sender
/// starts a turn only once the receiver finished the previous one. The run
/// lasts as long as the variants would one after the other.
pub fn run_alternating<T: StreamTx, R: StreamRx>(
    ctx: &RunCtx,
    mut txs: Vec<T>,
    mut rxs: Vec<R>,
) -> Result<Vec<Measurement>, BenchError> {
    assert_eq!(txs.len(), rxs.len(), "one receiving side per sending side");
    let n = txs.len().max(1);
    let ctx = &RunCtx { warmup: ctx.warmup * n as u32, measure: ctx.measure * n as u32, ..*ctx };
    let epoch = Instant::now();
    let sinks = (0..n).map(|_| Sink::new(epoch)).collect::<Result<Vec<_>, _>>()?;
    // Turns the receiver has finished.
    let done = AtomicU64::new(0);
    let done = &done;
    let send = move |w: &mut Waiter<'_>| {
        let mut srcs: Vec<Source> = (0..n).map(|_| Source::new(epoch, ctx, STAMP_EVERY).with_turns(TURN)).collect();
        for turn in 0u64.. {
            let v = (turn % n as u64) as usize;
            // SYNC: Acquire; pairs with the receiver's Release increment: the
            // previous turn is consumed before this one starts, so no message
            // waits in a ring for the receiver to come back to it (that
            // would count the other transports' turns as its latency).
            while done.load(Ordering::Acquire) < turn {
                w.wait()?;
            }
            let others_sampled = srcs.iter().enumerate().all(|(i, s)| i == v || s.has_samples());
            srcs[v].set_may_stop(others_sampled);
            while !txs[v].send_batch(&mut srcs[v], w)? {}
            if srcs[v].stopped() {
                break;
            }
        }
        Ok(())
    };
    let recv = move |w: &mut Waiter<'_>| {
        let mut sinks = sinks;
        for turn in 0u64.. {
            let v = (turn % n as u64) as usize;
            while !rxs[v].recv_batch(&mut sinks[v], w)? {}
            // SYNC: Release; pairs with the sender's Acquire above.
            done.fetch_add(1, Ordering::Release);
            if sinks[v].stopped() {
                break;
            }
        }
        Ok(sinks.into_iter().map(Sink::finish).collect())
    };
    let ((), m) = run_pair(ctx, send, recv)?;
    Ok(m)
}

/// One of two transports, for [`run_alternating`] over variants of
/// different types.
impl<A: StreamTx, B: StreamTx> StreamTx for Either<A, B> {
    #[inline]
    fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        match self {
            Either::Left(a) => a.send_batch(src, w),
            Either::Right(b) => b.send_batch(src, w),
        }
    }
}

impl<A: StreamRx, B: StreamRx> StreamRx for Either<A, B> {
    #[inline]
    fn recv_batch(&mut self, sink: &mut Sink, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        match self {
            Either::Left(a) => a.recv_batch(sink, w),
            Either::Right(b) => b.recv_batch(sink, w),
        }
    }
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

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
    use std::time::Duration;

    use super::*;
    use crate::wire::Template;

    struct Tx(SyncSender<[u8; 64]>, Template<64>);
    struct Rx(Receiver<[u8; 64]>);

    impl StreamTx for Tx {
        fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
            let msg = src.next_msg();
            let mut bytes = msg.to_array(&self.1);
            loop {
                match self.0.try_send(bytes) {
                    Ok(()) => return Ok(msg.ends_turn()),
                    Err(TrySendError::Full(back)) => {
                        bytes = back;
                        w.wait()?;
                    }
                    Err(TrySendError::Disconnected(_)) => return Err(BenchError::Disconnected { what: "test" }),
                }
            }
        }
    }

    impl StreamRx for Rx {
        fn recv_batch(&mut self, sink: &mut Sink, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
            match self.0.try_recv() {
                // A message of another variant breaks this sink's numbering.
                Ok(m) => sink.on_bytes(&m),
                Err(TryRecvError::Empty) => w.wait().map(|()| false),
                Err(TryRecvError::Disconnected) => Err(BenchError::Disconnected { what: "test" }),
            }
        }
    }

    /// Variants take turns, each numbered and measured on its own, and the
    /// stop message ends the receiver wherever it falls.
    #[test]
    fn alternating_streams_are_measured_apart() {
        let ctx = RunCtx { measure: Duration::from_millis(30), ..RunCtx::for_tests() };
        let (txs, rxs): (Vec<Tx>, Vec<Rx>) = (0..3)
            .map(|_| {
                let (tx, rx) = sync_channel(64);
                (Tx(tx, Template::new()), Rx(rx))
            })
            .unzip();
        let ms = run_alternating(&ctx, txs, rxs).expect("run");
        assert_eq!(ms.len(), 3);
        for m in &ms {
            assert!(m.msgs > 0 && !m.hist.is_empty() && m.elapsed > Duration::ZERO, "{} msgs", m.msgs);
        }
    }
}
