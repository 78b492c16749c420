//! Invoker mode (Aeron's INVOKER): no engine thread; the application's own
//! threads run the engine's duty cycle inside their flow and listener calls.
//!
//! A flow allocated through an invoker-mode [`super::RemoteEngine`] drives
//! it: after every send, on every receive that finds nothing, and while a
//! blocking call waits (where it spins for the flow's spin time, then
//! sleeps in the engine's io_uring for at most [`WAIT_CAP`] at a time).
//! A listener told of the engine (`ListenerOptions::invoker`) drives it
//! while its accept waits, since an incoming remote flow can only arrive
//! through it; the flow the engine allocated to that listener (the far end
//! of the remote flow) is found again by its segment's inode in this
//! engine's own set when the listener accepts it, and drives the engine the
//! same way. There is no process-wide list of engines.
//!
//! Two threads never run one engine at once: a caller that finds the engine
//! busy moves on (the other thread is making progress for both).
//!
//! While the application is elsewhere (between bursts, in other work), a
//! thread of the engine's own, the *minder*, runs a duty cycle whenever
//! none ran for [`MIND_EVERY`] (or the cluster's tick, if shorter): the
//! engine's timers (a link's keepalives, the cluster node's ticks and
//! heartbeats) keep going, and what arrives for a crossing group's members
//! reaches their log, without the application's calls. It never runs while
//! the application drives the engine (it looks at a count of duty cycles,
//! not a clock: the application's loop reads no clock for it), so it costs
//! a spinning application nothing but a wake-up of a parked thread per
//! period. It is not started when the io_uring has a single issuer (only
//! the thread that started the engine may drive it then).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::Deadline;

/// The longest one idle wait in the engine's io_uring. Bounds how late a
/// message sent by another thread of this process (which found the engine
/// busy with this thread's wait) leaves.
pub const WAIT_CAP: Duration = Duration::from_millis(1);

/// The longest the minder (see the module doc) lets an engine go without
/// a duty cycle, unless its cluster ticks more often.
pub const MIND_EVERY: Duration = Duration::from_millis(10);

/// How long sends batch in invoker mode. A send runs a duty cycle if the
/// last send-triggered one started at least this long ago and the
/// application has had at least this long (or that cycle's own length, if
/// shorter) to itself since it ended. Otherwise its message leaves with the
/// next call that drives this engine (a send, receive or wait on one
/// of its flows, or [`super::RemoteEngine::invoke`]). A stream of sends
/// thus pays one socket write per this much of its own time, not one per
/// message, however long a socket write takes; a lone send, or one after
/// a receive, leaves at once (see `SendGate::due`).
pub const SEND_BATCH: Duration = Duration::from_micros(5);

/// How long sends batch after a send-triggered duty cycle that carried at
/// least [`LARGE_SEND`] bytes: in place of [`SEND_BATCH`] in its rule (the
/// application's own time since the cycle ended, up to the cycle's
/// length). A stream of large messages then leaves in socket writes of
/// several messages each, which the kernel's TCP takes much faster per
/// byte than one write per 64 KiB message (tuning.md, "Send batching in
/// invoker mode"); small messages batch as before.
pub const LARGE_BATCH: Duration = Duration::from_micros(40);

/// The most duty cycles a send that answers runs (see
/// `Invoker::invoke_after_send`): they stop at the first that finds
/// nothing to do and holds nothing back (`Engine::holds_back`). The
/// longest way out is a flow gone cold right after a direct read: the
/// first cycle makes the kernel entry the read owed (its task work posts
/// the doorbell's completion), the second reaps the doorbell, the third
/// forwards the message, the fourth is idle; two more leave room.
const ANSWER_CYCLES: u32 = 6;

/// The bytes sent between two send-triggered duty cycles from which the
/// next ones batch for [`LARGE_BATCH`].
pub const LARGE_SEND: u64 = 64 << 10;

/// When a send runs a duty cycle (see [`SEND_BATCH`]): times are
/// nanoseconds on the invoker's clock. Only the sending thread's calls
/// read and write it in a stream; another thread's send at worst runs a
/// cycle more or less.
#[derive(Debug, Default)]
struct SendGate {
    /// When the last send-triggered duty cycle started and ended.
    start: AtomicU64,
    end: AtomicU64,
    /// Bytes sent since the last send-triggered duty cycle.
    bytes: AtomicU64,
    /// Whether the last send-triggered duty cycle carried at least
    /// [`LARGE_SEND`] bytes (then [`LARGE_BATCH`] applies).
    large: AtomicBool,
    /// Whether, since the last send-triggered duty cycle, the application
    /// took a message (`Invoker::note_received`) or a cycle ran for
    /// something other than a send (a receive or a wait, a call of
    /// `invoke`, the minder): the next send then answers, or follows a
    /// pause, and runs cycles whatever the clock says (see `answering`).
    heard: AtomicBool,
}

impl SendGate {
    /// Whether a send at `now` runs a duty cycle.
    ///
    /// Counted from the last cycle's start alone (as before 2026-12-07), a
    /// cycle longer than `SEND_BATCH` (a slow socket write) made the very
    /// next send of a stream run another: one write per message. Counted
    /// from its end alone, and for as long as the cycle took, an answer
    /// sent after a long (preempted) cycle stayed in the ring until the
    /// application's next call, which at the end of a bench's turn never
    /// came. A stream's next send comes right after the cycle; an answer
    /// comes after the far side's cycles, each about as long as this
    /// side's, and the network's way back.
    ///
    /// After a cycle that carried [`LARGE_SEND`] bytes or more, the
    /// application's own time may be up to [`LARGE_BATCH`] instead. An
    /// answer still leaves at once: it comes a round trip after the last
    /// send, which a large message's makes longer than its own cycle.
    ///
    /// Asked only of a send that does not answer (`answering` is asked
    /// first: an answer runs its cycles whatever the times). Timed alone, an answer on a fast host, where a
    /// round trip is little more than two duty cycles, stayed in the ring
    /// once in a while, for the application's next call into this engine;
    /// a thread that then waited on another engine (a bench's turn over,
    /// a server's next client elsewhere) never made it, and both sides of
    /// the flow waited for each other until the peer timeout.
    #[inline]
    fn due(&self, now: u64) -> bool {
        let batch = SEND_BATCH.as_nanos() as u64;
        // SYNC: Relaxed (all three); a hint for batching, no data rides on
        // it (pairs with the Relaxed stores in `ran`).
        let (start, end) = (self.start.load(Ordering::Relaxed), self.end.load(Ordering::Relaxed));
        let cap = if self.large.load(Ordering::Relaxed) { LARGE_BATCH.as_nanos() as u64 } else { batch };
        let cost = end.saturating_sub(start);
        let own = now.saturating_sub(end);
        now.saturating_sub(start) >= batch && own >= cost.min(cap)
    }

    /// Counts a send of `bytes`; returns the bytes sent since the last
    /// send-triggered duty cycle, this one included.
    #[inline]
    fn sent(&self, bytes: u64) -> u64 {
        // SYNC: Relaxed load and store, not an RMW: only the sending
        // thread's calls touch it in a stream (see the type); another
        // thread's send at worst miscounts one batch's size. Pairs with
        // the Relaxed store in `ran`.
        let total = self.bytes.load(Ordering::Relaxed).saturating_add(bytes);
        self.bytes.store(total, Ordering::Relaxed);
        total
    }

    /// A send-triggered duty cycle ran from `start` to `end`, carrying the
    /// `bytes` sent since the one before.
    #[inline]
    fn ran(&self, start: u64, end: u64, bytes: u64) {
        // SYNC: Relaxed; see `due`, `sent` and `answering`.
        self.start.store(start, Ordering::Relaxed);
        self.end.store(end, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.large.store(bytes >= LARGE_SEND, Ordering::Relaxed);
        self.heard.store(false, Ordering::Relaxed);
    }

    /// Whether the next send answers (see `heard`).
    #[inline]
    fn answering(&self) -> bool {
        // SYNC: Relaxed; a hint, no data rides on it (pairs with the
        // Relaxed stores in `heard` and `ran`): a receive on another thread
        // that this send does not see yet makes the next send answer.
        self.heard.load(Ordering::Relaxed)
    }

    /// The application took a message, or a duty cycle ran for something
    /// other than a send.
    #[inline]
    fn heard(&self) {
        // SYNC: Relaxed; see `answering`. Loaded first: a spinning receive calls
        // this every round, and a store would keep the line dirty.
        if !self.heard.load(Ordering::Relaxed) {
            self.heard.store(true, Ordering::Relaxed);
        }
    }
}

/// An engine in invoker mode, driven by whoever calls.
pub struct Invoker {
    /// `None` once shut down.
    engine: Mutex<Option<Engine>>,
    /// When a send may run the next duty cycle (nanoseconds since `born`).
    gate: SendGate,
    born: Instant,
    /// With io_uring's single issuer: the one thread that may drive it
    /// (see `this_thread`).
    owner: Option<usize>,
    /// Segments of flows this engine is allocating to listeners of this
    /// process, by (device, inode): the accepting side looks its segment up
    /// to learn that it must drive this engine.
    segments: Mutex<HashSet<SegmentKey>>,
    /// Duty cycles run (by any thread): the minder compares it across a
    /// period. Written by the thread holding `engine`.
    cycles: AtomicU64,
    /// The minder, if started (see the module doc).
    minder: Mutex<Option<Minder>>,
}

/// The minder thread and its stop flag.
#[derive(Debug)]
struct Minder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker").field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl Invoker {
    pub(crate) fn new(engine: Engine, owner: Option<usize>) -> Arc<Invoker> {
        Arc::new(Invoker {
            engine: Mutex::new(Some(engine)),
            gate: SendGate::default(),
            born: Instant::now(),
            owner,
            segments: Mutex::new(HashSet::new()),
            cycles: AtomicU64::new(0),
            minder: Mutex::new(None),
        })
    }

    /// Starts the minder (see the module doc), running a duty cycle when
    /// none ran for `every`. Not with a single-issuer ring: returns false.
    pub(crate) fn start_minder(self: &Arc<Self>, every: Duration) -> std::io::Result<bool> {
        if self.owner.is_some() {
            return Ok(false);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let me: Weak<Invoker> = Arc::downgrade(self);
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("ringflow-minder".into()).spawn(move || {
            let mut seen = u64::MAX;
            // SYNC: Relaxed; the flag `stop_minder` sets (Relaxed) publishes
            // nothing: it only ends this loop, and `take` takes the engine
            // under its mutex after joining this thread.
            while !flag.load(Ordering::Relaxed) {
                std::thread::park_timeout(every);
                let Some(invoker) = me.upgrade() else { return };
                // SYNC: Relaxed; a count compared with itself one period
                // later, nothing read through it (the engine's state is
                // behind its mutex).
                if invoker.cycles.load(Ordering::Relaxed) == seen && !flag.load(Ordering::Relaxed) {
                    invoker.invoke();
                }
                // SYNC: Relaxed; as above.
                seen = invoker.cycles.load(Ordering::Relaxed);
            }
        })?;
        *self.minder.lock().unwrap_or_else(PoisonError::into_inner) = Some(Minder { stop, thread });
        Ok(true)
    }

    /// Stops the minder and waits for it (unless this is the minder: the
    /// last handle of the invoker was its own).
    fn stop_minder(&self) {
        let Some(m) = self.minder.lock().unwrap_or_else(PoisonError::into_inner).take() else { return };
        // SYNC: Relaxed; pairs with the Relaxed loads in `start_minder`'s
        // loop (the flag publishes nothing; the unpark ends its park).
        m.stop.store(true, Ordering::Relaxed);
        m.thread.thread().unpark();
        if m.thread.thread().id() != std::thread::current().id() {
            let _ = m.thread.join();
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// After a send of `bytes`: one duty cycle, unless the last
    /// send-triggered one ended too recently (see [`SEND_BATCH`] and
    /// [`LARGE_BATCH`]).
    #[inline]
    pub fn invoke_after_send(&self, bytes: u64) {
        let pending = self.gate.sent(bytes);
        if self.gate.answering() {
            // An answer runs its cycles whatever the clock says: no reading
            // before them, one after (`ran` needs a time to batch from).
            // Cycles until one finds nothing to do and holds nothing back
            // for the next (at most ANSWER_CYCLES): a message whose way out
            // takes more than one (a flow gone cold: its doorbell seen, then
            // the message forwarded; after a direct read, the entry the read
            // owed made first) has left when the call returns. The last,
            // idle one runs after the message left, while the peer works.
            for _ in 0..ANSWER_CYCLES {
                let (work, held) = self.run_cycle_then(Engine::holds_back);
                if work == 0 && !held {
                    break;
                }
            }
            let end = self.now();
            self.gate.ran(end, end, pending);
            return;
        }
        let now = self.now();
        if self.gate.due(now) {
            self.run_cycle();
            self.gate.ran(now, self.now(), pending);
        }
    }

    /// The application took a message from one of this engine's flows:
    /// its next send answers it and runs a duty cycle at once, even if no
    /// cycle ran since the last send's (the message was already in the
    /// ring: the engine brought it during that send's cycle).
    #[inline]
    pub fn note_received(&self) {
        self.gate.heard();
    }

    /// One duty cycle, unless another thread is running one; the work done.
    /// The next send runs a cycle at once (see `SendGate::due`).
    #[inline]
    pub fn invoke(&self) -> usize {
        self.gate.heard();
        self.run_cycle()
    }

    #[inline]
    fn run_cycle(&self) -> usize {
        self.run_cycle_then(|_| false).0
    }

    /// [`run_cycle`](Self::run_cycle), then `then` on the engine under the
    /// same lock: the work done and what `then` said (false when no cycle
    /// ran: another thread holds the engine, or it is shut down).
    #[inline]
    fn run_cycle_then(&self, then: impl FnOnce(&mut Engine) -> bool) -> (usize, bool) {
        if self.owner.is_some_and(|o| o != this_thread()) {
            return (0, false); // a single-issuer ring: only its owner may drive it
        }
        let mut engine = match self.engine.try_lock() {
            Ok(engine) => engine,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return (0, false),
        };
        // SYNC: Relaxed; the minder's count (see `start_minder`). Only the
        // holder of `engine` writes it, so a load and a store suffice.
        self.cycles.store(self.cycles.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        match engine.as_mut() {
            Some(engine) => {
                let work = engine.invoke();
                (work, then(engine))
            }
            None => (0, false),
        }
    }

    /// Sleeps in the engine's event source for at most `timeout` (capped
    /// at [`WAIT_CAP`]); yields if another thread is running the engine.
    pub fn wait(&self, timeout: Duration) {
        let timeout = timeout.min(WAIT_CAP);
        if self.owner.is_some_and(|o| o != this_thread()) {
            return std::thread::sleep(timeout.min(Duration::from_micros(50)));
        }
        let mut engine = match self.engine.try_lock() {
            Ok(engine) => engine,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return std::thread::yield_now(),
        };
        match engine.as_mut() {
            Some(engine) => engine.invoke_wait(timeout),
            None => std::thread::sleep(timeout),
        }
    }

    /// Takes the engine out to shut it down; flows that still drive it
    /// find nothing to run from then on.
    pub(crate) fn take(&self) -> Option<Engine> {
        self.stop_minder();
        self.engine.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Drives the engine until `ready` says yes or `deadline` passes:
    /// spins (invoking) for `spin`, then sleeps in the engine between
    /// duty cycles. Returns whether `ready` said yes.
    pub fn drive_until(&self, mut ready: impl FnMut() -> bool, spin: Duration, deadline: Deadline) -> bool {
        drive_until(|| self.invoke(), |t| self.wait(t), &mut ready, spin, deadline)
    }
}

impl Drop for Invoker {
    fn drop(&mut self) {
        self.stop_minder();
    }
}

pub(crate) use crate::uring::this_thread;

fn drive_until(
    mut invoke: impl FnMut() -> usize,
    mut wait: impl FnMut(Duration),
    ready: &mut dyn FnMut() -> bool,
    spin: Duration,
    deadline: Deadline,
) -> bool {
    if deadline == Deadline::Now {
        invoke();
        return ready();
    }
    // The clock is read once every CLOCK_EVERY rounds while spinning.
    const CLOCK_EVERY: u32 = 64;
    let spin_until = Instant::now() + spin;
    let mut round = 0u32;
    loop {
        let work = invoke();
        if ready() {
            return true;
        }
        round = round.wrapping_add(1);
        if work > 0 || (round % CLOCK_EVERY != 0 && spin > Duration::ZERO) {
            std::hint::spin_loop();
            continue;
        }
        let left = match deadline.remaining() {
            Some(Duration::ZERO) => return false,
            Some(left) => left,
            None => WAIT_CAP,
        };
        if Instant::now() < spin_until {
            std::hint::spin_loop();
        } else {
            wait(left);
        }
    }
}

/// A segment's (device, inode).
type SegmentKey = (u64, u64);

/// The (device, inode) of an fd.
pub(crate) fn inode_of(fd: std::os::fd::BorrowedFd<'_>) -> Option<SegmentKey> {
    use std::os::unix::fs::MetadataExt as _;
    let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

impl Invoker {
    /// Records that the flow over the segment `key` is this engine's.
    pub(crate) fn register_segment(&self, key: SegmentKey) {
        self.segments.lock().unwrap_or_else(PoisonError::into_inner).insert(key);
    }

    /// Forgets a segment (its allocation failed, or nobody here accepts it).
    pub(crate) fn forget_segment(&self, key: SegmentKey) {
        self.segments.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
    }

    /// Whether the accepted flow over segment `key` is this engine's (each
    /// segment is accepted once, so the entry goes).
    pub(crate) fn claim_segment(&self, key: SegmentKey) -> bool {
        self.segments.lock().unwrap_or_else(PoisonError::into_inner).remove(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH: u64 = SEND_BATCH.as_nanos() as u64;

    /// Sends of a stream, `gap` ns apart from `from` until (excluding) `to`:
    /// the first that runs a cycle, if any.
    fn first_due(gate: &SendGate, from: u64, to: u64, gap: u64) -> Option<u64> {
        (from..to).step_by(gap as usize).find(|&t| gate.due(t))
    }

    #[test]
    fn a_stream_batches_as_before_after_a_short_cycle() {
        let gate = SendGate::default();
        assert!(gate.due(BATCH), "the first send runs a cycle");
        let end = BATCH + 1_000;
        gate.ran(BATCH, end, 0);
        // As before: SEND_BATCH after the cycle's start.
        assert_eq!(first_due(&gate, end + 100, end + 2 * BATCH, 100), Some(2 * BATCH));
    }

    #[test]
    fn a_stream_has_send_batch_to_itself_after_a_long_cycle() {
        let gate = SendGate::default();
        gate.ran(BATCH, 5 * BATCH, 0);
        assert_eq!(first_due(&gate, 5 * BATCH + 100, 10 * BATCH, 100), Some(6 * BATCH));
    }

    /// A ping-pong's answer runs a cycle at once: the far side's cycles
    /// make the round trip at least as long as this side's cycle plus
    /// `SEND_BATCH`, fast host or slow.
    #[test]
    fn an_answer_runs_a_cycle_at_once() {
        // A fast host: a 1.5 us cycle, a 6.4 us round trip.
        let gate = SendGate::default();
        gate.ran(0, 1_500, 0);
        assert!(gate.due(6_400));
        // A slow host: an 8 us cycle, a 20 us round trip.
        gate.ran(100_000, 108_000, 0);
        assert!(gate.due(120_000));
        // A cycle preempted for 4 ms, answered 10 us after it ended.
        gate.ran(200_000, 4_200_000, 0);
        assert!(gate.due(4_210_000));
    }

    /// A send after a cycle run for anything else (a receive's, say) runs
    /// one, however soon after the last send-triggered cycle; the send
    /// after it batches again. The bench's turns stalled without it: the
    /// answer stayed in the ring while its thread waited on another engine.
    #[test]
    fn a_send_after_a_receive_runs_a_cycle_whatever_the_clock() {
        let gate = SendGate::default();
        gate.ran(0, 4_000, 0);
        assert!(!gate.answering() && !gate.due(5_000), "timed alone, this send would wait");
        gate.heard();
        assert!(gate.answering());
        gate.ran(5_000, 6_000, 0);
        assert!(!gate.answering() && !gate.due(7_000), "the next send of a stream batches");
    }

    /// Sends 3 us apart with 1 us cycles batch in pairs, as before.
    #[test]
    fn sparse_sends_with_fast_cycles_batch_as_before() {
        let gate = SendGate::default();
        gate.ran(0, 1_000, 0);
        assert!(!gate.due(3_000));
        assert!(gate.due(6_000));
    }

    /// A stream of 64 KiB messages (a send every 4 us, duty cycles of
    /// 10 us plus 4 us per message they carry) leaves in writes of about
    /// ten messages once a cycle has carried one; the same sends of 64
    /// bytes keep `SEND_BATCH`'s pairs.
    #[test]
    fn large_messages_batch_for_large_batch() {
        let per_cycle = |bytes: u64| {
            let gate = SendGate::default();
            let (mut now, mut cycles) = (0u64, 0u64);
            let sends = 10_000u64;
            for _ in 0..sends {
                now += 4_000;
                let pending = gate.sent(bytes);
                if gate.due(now) {
                    let start = now;
                    now += 10_000 + 4_000 * pending / bytes;
                    cycles += 1;
                    gate.ran(start, now, pending);
                }
            }
            sends / cycles
        };
        let large = per_cycle(LARGE_SEND);
        assert!((8..=12).contains(&large), "{large} messages of 64 KiB per duty cycle");
        let small = per_cycle(64);
        assert!(small <= 3, "{small} messages of 64 bytes per duty cycle");
    }

    /// After a large cycle, an answer a round trip later (longer than the
    /// cycle) still runs a cycle at once; a send right after it waits.
    #[test]
    fn an_answer_after_a_large_cycle_runs_a_cycle_at_once() {
        let gate = SendGate::default();
        gate.ran(0, 20_000, LARGE_SEND);
        assert!(!gate.due(26_000), "a stream's next send waits");
        assert!(gate.due(45_000), "an answer 25 us after the cycle leaves");
        // A small cycle after it: SEND_BATCH again.
        gate.ran(100_000, 120_000, 64);
        assert!(gate.due(126_000));
    }

    /// What made the remote 64-byte stream run at one socket write per
    /// message on a host where a write took longer than `SEND_BATCH`: a
    /// sender whose sends cost 100 ns and whose duty cycles cost 1.2x
    /// `SEND_BATCH` must still carry many messages per cycle.
    #[test]
    fn slow_cycles_still_carry_batches_of_sends() {
        let (send, cycle) = (100, BATCH * 6 / 5);
        let gate = SendGate::default();
        let (mut now, mut cycles) = (0u64, 0u64);
        let sends = 100_000u64;
        for _ in 0..sends {
            now += send;
            if gate.due(now) {
                let start = now;
                now += cycle;
                cycles += 1;
                gate.ran(start, now, 0);
            }
        }
        let per_cycle = sends / cycles;
        // SEND_BATCH (5 us) of sending after each cycle: 50 sends of 100 ns.
        assert!(per_cycle >= 45, "{per_cycle} sends per duty cycle");
        // The sender keeps over 40% of its time for sending.
        assert!(cycles * cycle * 10 <= now * 6, "{cycles} cycles in {now} ns");
    }
}
