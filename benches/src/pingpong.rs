//! The ping-pong driver: round-trip latency of one message between the two
//! pinned threads. An impl supplies only its transport ([`PingSide`],
//! [`PongSide`]); timing, warm-up and the histogram live here, identical for
//! every impl. One histogram sample per round trip.

use std::time::{Duration, Instant};

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

    /// Runs between two round trips, outside their timing (a pause that
    /// lets the other side fall asleep, for a case that measures waking).
    #[inline]
    fn between(&mut self) {}
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
    let (m, ()) = run_pair(ctx, move |w| ping_loop(ctx, &mut [ping], w), move |w| pong_loop(&mut [pong], w))?;
    Ok(only(m))
}

/// Round trips alternating between variants of one transport (e.g. with
/// and without a feature whose cost is measured): [`BLOCK`] round trips on
/// the first pair of sides, then [`BLOCK`] on the next, and so on, so every
/// variant meets the same moods of the machine (this VM's latency drifts
/// 3x within seconds, far more than a small cost). One measurement per
/// variant, in the order given; each variant's window is the time spent on
/// its own round trips, and the run lasts as long as the variants would
/// one after the other (each gets the context's measured time).
pub fn run_alternating<const N: usize, P: PingSide<N>, Q: PongSide<N>>(
    ctx: &RunCtx,
    mut pings: Vec<P>,
    mut pongs: Vec<Q>,
) -> Result<Vec<Measurement>, BenchError> {
    assert_eq!(pings.len(), pongs.len(), "one pong side per ping side");
    let turns = pings.len().max(1) as u32;
    let ctx = &RunCtx { warmup: ctx.warmup * turns, measure: ctx.measure * turns, ..*ctx };
    let (m, ()) = run_pair(ctx, move |w| ping_loop(ctx, &mut pings, w), move |w| pong_loop(&mut pongs, w))?;
    Ok(m)
}

/// [`run_alternating`] whose pong sides run elsewhere (in another process):
/// the harness's second thread runs `elsewhere`, which waits for them to
/// end without taking their core.
pub fn run_alternating_remote<const N: usize, P: PingSide<N>>(
    ctx: &RunCtx,
    mut pings: Vec<P>,
    elsewhere: impl FnOnce(&mut Waiter<'_>) -> Result<(), BenchError> + Send,
) -> Result<Vec<Measurement>, BenchError> {
    let turns = pings.len().max(1) as u32;
    let ctx = &RunCtx { warmup: ctx.warmup * turns, measure: ctx.measure * turns, ..*ctx };
    let (m, ()) = run_pair(ctx, move |w| ping_loop(ctx, &mut pings, w), elsewhere)?;
    Ok(m)
}

/// Round trips in a row on one variant before [`run_alternating`] moves to
/// the next: long enough that switching costs nothing measurable (the
/// first round trip after a switch touches cold lines), short enough
/// (well under a millisecond here) that the variants take turns hundreds
/// of times a second.
pub const BLOCK: u64 = 512;

/// The variant round trip `seq` runs on; both sides count the same way.
#[inline]
fn variant(seq: u64, variants: usize) -> usize {
    (seq / BLOCK) as usize % variants
}

/// [`run`] for transports whose state belongs to the thread that drives it
/// (an engine run by the application's thread): each side is built by its
/// closure on its own pinned thread, before its clock starts. The two
/// closures run at once and may talk to each other (one tells the other
/// where to connect).
// Only tests measure one such transport alone now (scenario remote's
// impls take turns: `run_built_alternating`).
#[cfg_attr(not(test), allow(dead_code))]
pub fn run_built<const N: usize, P: PingSide<N>, Q: PongSide<N>>(
    ctx: &RunCtx,
    make_ping: impl FnOnce() -> Result<P, BenchError> + Send,
    make_pong: impl FnOnce() -> Result<Q, BenchError> + Send,
) -> Result<Measurement, BenchError> {
    // The set-up is no stall: each side's deadline moves by its own.
    let ping = move |w: &mut Waiter<'_>| {
        let started = Instant::now();
        let side = make_ping()?;
        w.allow_setup(started.elapsed());
        ping_loop(ctx, &mut [side], w)
    };
    let pong = move |w: &mut Waiter<'_>| {
        let started = Instant::now();
        let side = make_pong()?;
        w.allow_setup(started.elapsed());
        pong_loop(&mut [side], w)
    };
    let (m, ()) = run_pair(ctx, ping, pong)?;
    Ok(only(m))
}

/// [`run_alternating`] for transports whose state belongs to the thread
/// that drives it: each side builds its variants (`turns` of them, in the
/// same order on both sides) on its own pinned thread, as
/// [`run_built`] does.
pub fn run_built_alternating<const N: usize, P: PingSide<N>, Q: PongSide<N>>(
    ctx: &RunCtx,
    turns: usize,
    make_pings: impl FnOnce() -> Result<Vec<P>, BenchError> + Send,
    make_pongs: impl FnOnce() -> Result<Vec<Q>, BenchError> + Send,
) -> Result<Vec<Measurement>, BenchError> {
    let turns = turns.max(1) as u32;
    let ctx = &RunCtx { warmup: ctx.warmup * turns, measure: ctx.measure * turns, ..*ctx };
    let ping = move |w: &mut Waiter<'_>| {
        let started = Instant::now();
        let mut sides = make_pings()?;
        w.allow_setup(started.elapsed());
        ping_loop(ctx, &mut sides, w)
    };
    let pong = move |w: &mut Waiter<'_>| {
        let started = Instant::now();
        let mut sides = make_pongs()?;
        w.allow_setup(started.elapsed());
        pong_loop(&mut sides, w)
    };
    let (m, ()) = run_pair(ctx, ping, pong)?;
    Ok(m)
}

/// A side of any transport, for [`run_built_alternating`] over variants
/// of different types.
impl<const N: usize> PingSide<N> for Box<dyn PingSide<N>> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], w: &mut Waiter<'_>) -> Result<(), BenchError> {
        (**self).send(msg, w)
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        (**self).recv(w)
    }

    #[inline]
    fn between(&mut self) {
        (**self).between()
    }
}

impl<const N: usize> PongSide<N> for Box<dyn PongSide<N>> {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        (**self).echo(w)
    }
}

/// The measurement of a run of one variant ([`ping_loop`] returns one per
/// variant).
fn only(mut m: Vec<Measurement>) -> Measurement {
    assert_eq!(m.len(), 1, "one variant, one measurement");
    m.remove(0)
}

/// Sends, waits for the echo and records the round trip, on the variant
/// whose turn it is (one variant: always the same).
fn ping_loop<const N: usize, P: PingSide<N>>(
    ctx: &RunCtx,
    pings: &mut [P],
    w: &mut Waiter<'_>,
) -> Result<Vec<Measurement>, BenchError> {
    let n = pings.len();
    let mut msg = *Template::<N>::new().bytes();
    let mut hists = (0..n).map(|_| new_histogram()).collect::<Result<Vec<_>, _>>()?;
    let mut done = vec![0u64; n];
    let mut spent = vec![Duration::ZERO; n];
    let start = Instant::now();
    let warm_end = start + ctx.warmup;
    let end = warm_end + ctx.measure;
    // The previous measured round trip's start and variant: each round
    // trip's window runs to the next one's start (loop overhead included).
    let mut prev: Option<(Instant, usize)> = None;
    let mut seq = 0u64;
    loop {
        let t0 = Instant::now();
        let v = variant(seq, n);
        if let Some((p, pv)) = prev {
            spent[pv] += t0.saturating_duration_since(p);
        }
        // At least one sample of each variant, even if this thread missed
        // the whole window.
        if t0 >= end && done.iter().all(|&d| d > 0) {
            set_word(&mut msg, 0, seq);
            set_word(&mut msg, MARK_AT, STOP);
            pings[v].send(&msg, w)?;
            let ms = hists.into_iter().zip(done).zip(spent);
            return Ok(ms
                .map(|((hist, msgs), elapsed)| Measurement { hist, msgs, elapsed, delivered: None })
                .collect());
        }
        let measuring = t0 >= warm_end;
        set_word(&mut msg, 0, seq);
        set_word(&mut msg, MARK_AT, if measuring { MEASURED } else { WARMUP });
        pings[v].send(&msg, w)?;
        let got = pings[v].recv(w)?;
        let t1 = Instant::now();
        if got != seq {
            return Err(BenchError::Protocol { expected: seq, got });
        }
        if measuring {
            hists[v].saturating_record(nanos_between(t0, t1).max(1));
            done[v] += 1;
            prev = Some((t0, v));
        }
        pings[v].between();
        seq += 1;
    }
}

/// One of two transports, for [`run_alternating`] over variants of
/// different types (a match per call, predicted: the variant changes once
/// per [`BLOCK`]).
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

impl<const N: usize, A: PingSide<N>, B: PingSide<N>> PingSide<N> for Either<A, B> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], w: &mut Waiter<'_>) -> Result<(), BenchError> {
        match self {
            Either::Left(a) => a.send(msg, w),
            Either::Right(b) => b.send(msg, w),
        }
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        match self {
            Either::Left(a) => a.recv(w),
            Either::Right(b) => b.recv(w),
        }
    }
}

impl<const N: usize, A: PongSide<N>, B: PongSide<N>> PongSide<N> for Either<A, B> {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        match self {
            Either::Left(a) => a.echo(w),
            Either::Right(b) => b.echo(w),
        }
    }
}

/// Echoes on the variant whose turn it is, counting as the ping side does.
pub(crate) fn pong_loop<const N: usize, Q: PongSide<N>>(pongs: &mut [Q], w: &mut Waiter<'_>) -> Result<(), BenchError> {
    let mut seq = 0u64;
    while pongs[variant(seq, pongs.len())].echo(w)? {
        seq += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};

    use super::*;

    /// One side of an in-process channel pair, knowing which variant it is.
    struct End {
        tx: Sender<[u8; 64]>,
        rx: Receiver<[u8; 64]>,
        index: usize,
        variants: usize,
    }

    impl End {
        fn take(&mut self, w: &mut Waiter<'_>) -> Result<[u8; 64], BenchError> {
            loop {
                match self.rx.try_recv() {
                    Ok(m) => return Ok(m),
                    Err(TryRecvError::Empty) => w.wait()?,
                    Err(TryRecvError::Disconnected) => return Err(BenchError::Disconnected { what: "test channel" }),
                }
            }
        }
    }

    impl PingSide<64> for End {
        fn send(&mut self, msg: &[u8; 64], _w: &mut Waiter<'_>) -> Result<(), BenchError> {
            self.tx.send(*msg).map_err(|_| BenchError::Disconnected { what: "test channel" })
        }

        fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
            Ok(word(&self.take(w)?, 0))
        }
    }

    impl PongSide<64> for End {
        fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
            let m = self.take(w)?;
            // Every message arrives on the variant whose turn it is.
            assert_eq!(variant(word(&m, 0), self.variants), self.index, "sequence {}", word(&m, 0));
            if is_stop(&m) {
                return Ok(false);
            }
            self.tx.send(m).map_err(|_| BenchError::Disconnected { what: "test channel" })?;
            Ok(true)
        }
    }

    fn ends(index: usize, variants: usize) -> (End, End) {
        let (a_tx, b_rx) = channel();
        let (b_tx, a_rx) = channel();
        (End { tx: a_tx, rx: a_rx, index, variants }, End { tx: b_tx, rx: b_rx, index, variants })
    }

    /// Variants take turns block by block, each measured on its own, and
    /// the stop message ends every pong side's loop wherever it falls.
    #[test]
    fn alternating_variants_are_measured_apart() {
        let ctx = RunCtx { measure: Duration::from_millis(30), ..RunCtx::for_tests() };
        let (pings, pongs): (Vec<End>, Vec<End>) = (0..3).map(|i| ends(i, 3)).unzip();
        let ms = run_alternating::<64, _, _>(&ctx, pings, pongs).expect("run");
        assert_eq!(ms.len(), 3);
        for m in &ms {
            assert!(m.msgs > 0 && m.hist.len() == m.msgs && m.elapsed > Duration::ZERO);
        }
    }
}
