//! The fan-out driver: one publisher, pinned to the first core, sends
//! back-to-back messages for the measured window while several subscribers,
//! sharing the second core, each take what reached them in batches and
//! sleep [`IDLE`] once they emptied their queue (on a two-core host they
//! cannot all spin). An impl supplies its transport ([`FanTx`], [`FanRx`]);
//! numbering, timestamps and the window come from [`Source`] and [`Sink`],
//! as in the stream driver.
//!
//! The figures: `msgs` over `elapsed` is the publisher's rate (messages it
//! published in its measured window); `delivered` is what each subscriber
//! received of those, on average; the histogram holds every subscriber's
//! one-way latencies of stamped messages. On a lossy transport a
//! subscriber may miss any message, the stop message too: once the
//! publisher is done, a subscriber that finds nothing more stops.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::measure::{new_histogram, Measurement, RunCtx};
use crate::pair::{run_fan, Waiter};
use crate::stream::STAMP_EVERY;
use crate::wire::{Msg, Sink, Source, STOP, WARMUP};

/// The most messages a subscriber takes before it looks at the run again
/// (finding fewer means it emptied its queue, and it sleeps).
pub const DRAIN_MAX: usize = 256;

/// How long a subscriber that emptied its queue sleeps before it looks
/// again: far less than the time the publisher takes to fill a queue of a
/// few thousand messages, long enough that idle subscribers do not keep
/// the publisher's lines moving between the cores.
pub const IDLE: Duration = Duration::from_micros(50);

/// The publishing side.
pub trait FanTx {
    /// Publishes one message with header `msg`. A lossy transport never
    /// waits (a subscriber without room loses the message); a reliable one
    /// waits with `w`, renewing a timestamp with `src` (`Source::restamp`)
    /// if it had to.
    fn publish(&mut self, msg: Msg, src: &Source, w: &mut Waiter<'_>) -> Result<(), BenchError>;
}

/// One subscriber.
pub trait FanRx {
    /// Hands the messages that are there now, at most `max`, to `sink`;
    /// stops after the message that stops the run. Returns how many it took.
    fn drain(&mut self, sink: &mut Sink, max: usize) -> Result<usize, BenchError>;
}

/// Runs `tx` against `rxs`, all built beforehand. `lossy`: the
/// subscribers' sinks accept gaps.
pub fn run<T: FanTx + Send, R: FanRx + Send>(
    ctx: &RunCtx,
    tx: T,
    rxs: Vec<R>,
    lossy: bool,
) -> Result<Measurement, BenchError> {
    let makers = rxs.into_iter().map(|rx| move || Ok(rx)).collect();
    run_built(ctx, move || Ok(tx), makers, lossy)
}

/// [`run`] for transports whose ports belong to the thread that uses them:
/// each side is built by its closure on its own thread; the publisher
/// starts once every side is built (its warm-up starts then).
pub fn run_built<T: FanTx, R: FanRx>(
    ctx: &RunCtx,
    make_tx: impl FnOnce() -> Result<T, BenchError> + Send,
    make_rxs: Vec<impl FnOnce() -> Result<R, BenchError> + Send>,
    lossy: bool,
) -> Result<Measurement, BenchError> {
    let subscribers = make_rxs.len();
    let epoch = Instant::now();
    let built = Barrier::new(subscribers + 1);
    let finished = AtomicBool::new(false);
    let running = AtomicUsize::new(subscribers);
    let (built, finished, running) = (&built, &finished, &running);
    let publish = move |w: &mut Waiter<'_>| {
        let tx = make_tx();
        // Every side passes the barrier, built or not, so that no thread
        // waits for one that failed.
        built.wait();
        let mut tx = tx?;
        let window = publish_loop(ctx, epoch, &mut tx, w)?;
        // SYNC: Release; pairs with the Acquire in `subscribe_loop`: every
        // message published is visible to a subscriber that sees this.
        finished.store(true, Ordering::Release);
        // The transport stays open until every subscriber is done: closing
        // it under one that lost the stop message would read as an error.
        // SYNC: Acquire; pairs with the Release in `Running::drop`.
        while running.load(Ordering::Acquire) > 0 {
            w.wait()?;
        }
        drop(tx);
        Ok(window)
    };
    let sinks = (0..subscribers)
        .map(|_| Sink::new(epoch).map(|s| if lossy { s.lossy() } else { s }))
        .collect::<Result<Vec<_>, _>>()?;
    let subscribe: Vec<_> = make_rxs
        .into_iter()
        .zip(sinks)
        .map(|(make, sink)| {
            move |w: &mut Waiter<'_>| {
                let _done = Running(running);
                let rx = make();
                built.wait();
                subscribe_loop(rx?, sink, finished, w)
            }
        })
        .collect();
    let ((msgs, elapsed), received) = run_fan(ctx, publish, subscribe)?;
    let mut hist = new_histogram()?;
    let mut delivered = 0;
    for m in &received {
        hist.add(&m.hist).map_err(|e| BenchError::Histogram(format!("merging the subscribers' histograms: {e:?}")))?;
        delivered += m.msgs;
    }
    Ok(Measurement { hist, msgs, elapsed, delivered: Some(delivered / subscribers.max(1) as u64) })
}

/// Publishes until the source stops; returns the messages published in the
/// measured window and its length (from the first measured message to the
/// stop message).
fn publish_loop(
    ctx: &RunCtx,
    epoch: Instant,
    tx: &mut impl FanTx,
    w: &mut Waiter<'_>,
) -> Result<(u64, std::time::Duration), BenchError> {
    // Timestamps stay relative to `epoch`, shared with the sinks; the
    // window starts later by the time set-up took.
    let ctx = RunCtx { warmup: ctx.warmup + epoch.elapsed(), ..*ctx };
    let mut src = Source::new(epoch, &ctx, STAMP_EVERY);
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let msg = src.next_msg();
        if first.is_none() && msg.mark != WARMUP {
            first = Some((Instant::now(), msg.seq));
        }
        tx.publish(msg, &src, w)?;
        if msg.mark == STOP {
            let end = Instant::now();
            // The stop message is not WARMUP: `first` is set by now.
            let (start, from) = first.unwrap_or((end, msg.seq));
            return Ok((msg.seq - from, end.saturating_duration_since(start)));
        }
    }
}

/// Counts a subscriber out when it ends, however it ends.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        // SYNC: Release; pairs with the publisher's Acquire in `run_built`.
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// Takes batches until the stop message, or until the publisher is done
/// and nothing is left (a lossy subscriber may miss the stop message).
fn subscribe_loop(
    mut rx: impl FanRx,
    mut sink: Sink,
    finished: &AtomicBool,
    w: &mut Waiter<'_>,
) -> Result<Measurement, BenchError> {
    loop {
        // Read before draining: a drain that comes after the publisher was
        // done and finds nothing has seen everything.
        // SYNC: Acquire; pairs with the Release in `run_built`.
        let done = finished.load(Ordering::Acquire);
        let took = rx.drain(&mut sink, DRAIN_MAX)?;
        if sink.stopped() || (done && took == 0) {
            return Ok(sink.finish());
        }
        if took < DRAIN_MAX {
            // Emptied: sleep a little (not runnable, the others on this
            // core and the scheduler's balancing see an idle thread), then
            // look at the run again.
            std::thread::sleep(IDLE);
            w.wait()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
    use std::time::Duration;

    use super::*;
    use crate::wire::Template;

    /// A channel per subscriber; the publisher copies each message into
    /// every channel with room (lossy) or waits for room (reliable).
    struct Tx {
        subs: Vec<SyncSender<[u8; 64]>>,
        lossy: bool,
        template: Template<64>,
    }

    impl FanTx for Tx {
        fn publish(&mut self, msg: Msg, src: &Source, w: &mut Waiter<'_>) -> Result<(), BenchError> {
            let mut bytes = msg.to_array(&self.template);
            for sub in &self.subs {
                loop {
                    match sub.try_send(bytes) {
                        Ok(()) => break,
                        Err(TrySendError::Full(_)) if self.lossy => break,
                        Err(TrySendError::Full(_)) => {
                            w.wait()?;
                            src.restamp(&mut bytes);
                        }
                        Err(TrySendError::Disconnected(_)) => return Err(BenchError::Disconnected { what: "test" }),
                    }
                }
            }
            Ok(())
        }
    }

    struct Rx(Receiver<[u8; 64]>);

    impl FanRx for Rx {
        fn drain(&mut self, sink: &mut Sink, max: usize) -> Result<usize, BenchError> {
            for took in 0..max {
                match self.0.try_recv() {
                    Ok(m) => {
                        if sink.on_bytes(&m)? {
                            return Ok(took + 1);
                        }
                    }
                    // Disconnected: the publisher is done (and may have
                    // dropped the stop message), nothing more will come.
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(took),
                }
            }
            Ok(max)
        }
    }

    fn fan(subscribers: usize, lossy: bool) -> (Tx, Vec<Rx>) {
        let (subs, rxs) = (0..subscribers).map(|_| sync_channel(8)).unzip::<_, _, Vec<_>, Vec<_>>();
        (Tx { subs, lossy, template: Template::new() }, rxs.into_iter().map(Rx).collect())
    }

    /// A reliable fan-out delivers every message of the window to every
    /// subscriber; a lossy one never more than was published.
    #[test]
    fn every_subscriber_is_counted() {
        let ctx = RunCtx { measure: Duration::from_millis(20), ..RunCtx::for_tests() };
        let (tx, rxs) = fan(3, false);
        let m = run(&ctx, tx, rxs, false).expect("reliable run");
        assert!(m.msgs > 0 && !m.hist.is_empty() && m.elapsed > Duration::ZERO);
        assert_eq!(m.delivered, Some(m.msgs));
        let (tx, rxs) = fan(3, true);
        let m = run(&ctx, tx, rxs, true).expect("lossy run");
        assert!(m.msgs > 0 && m.delivered.is_some_and(|d| d <= m.msgs), "{} / {:?}", m.msgs, m.delivered);
    }
}
