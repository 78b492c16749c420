//! The benchmark message, the same for every impl, and the two ends that
//! make and check it: [`Source`] (sender side: sequence numbers, warm-up,
//! timestamps, stop) and [`Sink`] (receiver side: order check, one-way
//! latency, throughput window).
//!
//! Layout of an N-byte message (N a multiple of 64):
//!
//! ```text
//! bytes 0..8   sequence number (little-endian u64, from 0)
//! bytes 8..16  mark: WARMUP, MEASURED, STOP, SWITCH, or STAMPED | send time in ns
//! bytes 16..N  filler copied from a prepared source buffer ([`Template`])
//! ```
//!
//! A lossy transport's [`Sink`] ([`Sink::lossy`]) accepts gaps in the
//! numbering (never a step back).
//!
//! Every impl does the same work per message: the sender copies the whole
//! template and writes the two words; the receiver reads the two words and
//! one u64 per 64-byte line ([`touch`]). Nothing here may allocate after
//! construction: it runs on the hot path.

use std::time::Instant;

use hdrhistogram::Histogram;

use crate::error::BenchError;
use crate::measure::{nanos_between, new_histogram, Measurement};

/// Sent during the warm-up: not counted.
pub const WARMUP: u64 = 0;
/// Sent in the measured window, without a timestamp.
pub const MEASURED: u64 = 1;
/// The last message of a run.
pub const STOP: u64 = 2;
/// The last message of a turn: the sender moves on to the next transport
/// (`stream::run_alternating`), to come back to this one later.
pub const SWITCH: u64 = 3;
/// Set on a measured message carrying its send time in the low bits.
pub const STAMPED: u64 = 1 << 63;

/// Byte offset of the mark word.
pub const MARK_AT: usize = 8;

/// Reads the little-endian u64 at `at`.
#[inline]
pub fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Writes `value` as a little-endian u64 at `at`.
#[inline]
pub fn set_word(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Sums one u64 per 64-byte line: the receiver's per-message work, so that
/// every impl really brings the payload into its cache.
#[inline]
pub fn touch(bytes: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut at = 0;
    while at + 8 <= bytes.len() {
        sum = sum.wrapping_add(word(bytes, at));
        at += 64;
    }
    sum
}

/// Writes the templates' recognisable non-zero pattern into `bytes`.
fn fill(bytes: &mut [u8]) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i % 251) as u8 + 1;
    }
}

/// A [`Template`] of `len` bytes sized at run time (large messages, whose
/// array would not fit on a thread's stack).
pub fn large_template(len: usize) -> Box<[u8]> {
    let mut bytes = vec![0u8; len].into_boxed_slice();
    fill(&mut bytes);
    bytes
}

/// The prepared source buffer every sender copies from.
pub struct Template<const N: usize> {
    bytes: Box<[u8; N]>,
}

impl<const N: usize> Template<N> {
    /// A buffer with a recognisable non-zero pattern.
    pub fn new() -> Self {
        let mut bytes = Box::new([0u8; N]);
        fill(&mut bytes[..]);
        Template { bytes }
    }

    /// The bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8; N] {
        &self.bytes
    }
}

impl<const N: usize> Default for Template<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// One message's header: what the sender writes on top of the template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msg {
    pub seq: u64,
    pub mark: u64,
}

impl Msg {
    /// Whether this is the last message the sender sends on this transport
    /// for now: the end of the run, or of its turn among several.
    #[inline]
    pub fn ends_turn(&self) -> bool {
        self.mark == STOP || self.mark == SWITCH
    }

    /// Fills a whole message in place: template, then the two words.
    #[inline]
    pub fn write(&self, dst: &mut [u8], template: &[u8]) {
        // Not `copy_from_slice`: a 64 KiB message buffer allocated just past
        // its template put every impl's sender on `rep movsb`'s slow path
        // on this project's AMD host (ringflow_ring::copy, tuning.md).
        ringflow_ring::copy::copy_bytes(dst, template);
        self.stamp(dst);
    }

    /// Writes only the two header words (the rest is already in place).
    #[inline]
    pub fn stamp(&self, dst: &mut [u8]) {
        set_word(dst, 0, self.seq);
        set_word(dst, MARK_AT, self.mark);
    }

    /// The message as a value (for impls that build a message before sending).
    #[inline]
    pub fn to_array<const N: usize>(self, template: &Template<N>) -> [u8; N] {
        let mut m = *template.bytes();
        self.stamp(&mut m);
        m
    }

    /// Reads the header of a message.
    #[inline]
    pub fn read(bytes: &[u8]) -> Self {
        Msg { seq: word(bytes, 0), mark: word(bytes, MARK_AT) }
    }
}

/// The sender's clock: numbers messages and marks them warm-up, measured,
/// stamped (every `stamp_every`-th measured message) or stop. Reads the
/// clock only on stamping rounds, so deadlines are checked every
/// `stamp_every` messages.
pub struct Source {
    epoch: Instant,
    warm_end: Instant,
    end: Instant,
    seq: u64,
    stamp_mask: u64,
    measuring: bool,
    stamped: u64,
    /// Messages per turn, the SWITCH included (`u64::MAX`: one turn).
    turn_len: u64,
    /// Messages sent in the current turn.
    in_turn: u64,
    /// Whether the end of the window may stop the run (an alternating
    /// driver holds it back until every transport has its samples).
    may_stop: bool,
    stopped: bool,
}

impl Source {
    /// A source whose warm-up starts at `epoch`. `stamp_every` is rounded up
    /// to a power of two.
    pub fn new(epoch: Instant, ctx: &crate::measure::RunCtx, stamp_every: u64) -> Self {
        Source {
            epoch,
            warm_end: epoch + ctx.warmup,
            end: epoch + ctx.warmup + ctx.measure,
            seq: 0,
            stamp_mask: stamp_every.max(1).next_power_of_two() - 1,
            measuring: false,
            stamped: 0,
            turn_len: u64::MAX,
            in_turn: 0,
            may_stop: true,
            stopped: false,
        }
    }

    /// [`new`](Self::new), ending a turn (SWITCH) every `turn_len`
    /// messages.
    pub fn with_turns(mut self, turn_len: u64) -> Self {
        self.turn_len = turn_len.max(2);
        self
    }

    /// The header of the next message.
    #[inline]
    pub fn next_msg(&mut self) -> Msg {
        let seq = self.seq;
        self.seq += 1;
        self.in_turn += 1;
        if seq & self.stamp_mask != 0 {
            if self.in_turn >= self.turn_len {
                self.in_turn = 0;
                return Msg { seq, mark: SWITCH };
            }
            return Msg { seq, mark: if self.measuring { MEASURED } else { WARMUP } };
        }
        let now = Instant::now();
        // At least one latency sample, even if this thread was descheduled
        // for the whole window (smoke tests on a loaded machine).
        if now >= self.end && self.stamped > 0 && self.may_stop {
            self.stopped = true;
            return Msg { seq, mark: STOP };
        }
        self.measuring = self.measuring || now >= self.warm_end;
        if !self.measuring {
            return Msg { seq, mark: WARMUP };
        }
        self.stamped += 1;
        Msg { seq, mark: STAMPED | nanos_between(self.epoch, now) }
    }

    /// Whether it sent the stop message.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Whether it sent a stamped message (a latency sample) yet.
    pub fn has_samples(&self) -> bool {
        self.stamped > 0
    }

    /// Lets (or not) the end of the window stop the run.
    pub fn set_may_stop(&mut self, may: bool) {
        self.may_stop = may;
    }

    /// Renews the timestamp of a stamped message still waiting for room
    /// (for impls that must build the message before trying to send it).
    #[inline]
    pub fn restamp(&self, msg: &mut [u8]) {
        if word(msg, MARK_AT) & STAMPED != 0 {
            set_word(msg, MARK_AT, STAMPED | nanos_between(self.epoch, Instant::now()));
        }
    }
}

/// The receiver's end: checks order, records one-way latency of stamped
/// messages, and times the measured window from the first measured message
/// received to the stop message.
pub struct Sink {
    epoch: Instant,
    hist: Histogram<u64>,
    next_seq: u64,
    measured: u64,
    /// When the current turn's first measured message came.
    turn_first: Option<Instant>,
    /// The measured turns' time so far.
    spent: std::time::Duration,
    stopped: bool,
    checksum: u64,
    /// Gaps in the numbering are losses, not errors.
    lossy: bool,
}

impl Sink {
    /// A sink sharing the sender's `epoch` (timestamps are ns since it).
    pub fn new(epoch: Instant) -> Result<Self, BenchError> {
        Ok(Sink {
            epoch,
            hist: new_histogram()?,
            next_seq: 0,
            measured: 0,
            turn_first: None,
            spent: std::time::Duration::ZERO,
            stopped: false,
            checksum: 0,
            lossy: false,
        })
    }

    /// A sink for a lossy transport: a message may skip the numbers of the
    /// ones that were lost, but never come before one already taken.
    pub fn lossy(mut self) -> Self {
        self.lossy = true;
        self
    }

    /// Takes one message whose payload was read in place. Returns true on
    /// the message that ends the turn (SWITCH) or the run (STOP).
    #[inline]
    pub fn on_bytes(&mut self, payload: &[u8]) -> Result<bool, BenchError> {
        let msg = Msg::read(payload);
        self.on_msg(msg, touch(payload))
    }

    /// Takes one message given its header and the sum [`touch`] returned.
    #[inline]
    pub fn on_msg(&mut self, msg: Msg, touched: u64) -> Result<bool, BenchError> {
        if msg.seq != self.next_seq && !(self.lossy && msg.seq > self.next_seq) {
            return Err(BenchError::Protocol { expected: self.next_seq, got: msg.seq });
        }
        self.next_seq = msg.seq + 1;
        self.checksum = self.checksum.wrapping_add(touched);
        match msg.mark {
            WARMUP => {}
            MEASURED => self.count(),
            STOP | SWITCH => {
                // The turn's window runs from its first measured message to
                // this one.
                if let Some(first) = self.turn_first.take() {
                    self.spent += Instant::now().saturating_duration_since(first);
                }
                self.stopped = msg.mark == STOP;
                return Ok(true);
            }
            stamped => {
                self.count();
                let sent = stamped & !STAMPED;
                let now = nanos_between(self.epoch, Instant::now());
                self.hist.saturating_record(now.saturating_sub(sent).max(1));
            }
        }
        Ok(false)
    }

    #[inline]
    fn count(&mut self) {
        if self.turn_first.is_none() {
            self.turn_first = Some(Instant::now());
        }
        self.measured += 1;
    }

    /// Whether the stop message came (not just the end of a turn).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The figures of the measured window (of every turn).
    pub fn finish(self) -> Measurement {
        std::hint::black_box(self.checksum);
        Measurement { hist: self.hist, msgs: self.measured, elapsed: self.spent, delivered: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trips_through_its_bytes() {
        let template = Template::<64>::new();
        let msg = Msg { seq: 7, mark: STAMPED | 42 };
        let mut buf = [0u8; 64];
        msg.write(&mut buf, template.bytes());
        assert_eq!(Msg::read(&buf), msg);
        assert_eq!(buf[16..], template.bytes()[16..]);
        assert_eq!(msg.to_array(&template), buf);
    }

    #[test]
    fn sink_counts_measured_messages_and_rejects_disorder() {
        let mut sink = Sink::new(Instant::now()).unwrap();
        assert!(!sink.on_msg(Msg { seq: 0, mark: WARMUP }, 0).unwrap());
        assert!(!sink.on_msg(Msg { seq: 1, mark: MEASURED }, 0).unwrap());
        assert!(!sink.on_msg(Msg { seq: 2, mark: STAMPED | 1 }, 0).unwrap());
        assert!(matches!(
            sink.on_msg(Msg { seq: 9, mark: MEASURED }, 0),
            Err(BenchError::Protocol { expected: 3, got: 9 })
        ));
        assert!(sink.on_msg(Msg { seq: 3, mark: STOP }, 0).unwrap());
        let m = sink.finish();
        assert_eq!((m.msgs, m.hist.len()), (2, 1));
    }

    #[test]
    fn a_lossy_sink_takes_gaps_but_not_steps_back() {
        let mut sink = Sink::new(Instant::now()).unwrap().lossy();
        assert!(!sink.on_msg(Msg { seq: 0, mark: MEASURED }, 0).unwrap());
        assert!(!sink.on_msg(Msg { seq: 5, mark: MEASURED }, 0).unwrap());
        assert!(matches!(
            sink.on_msg(Msg { seq: 5, mark: MEASURED }, 0),
            Err(BenchError::Protocol { expected: 6, got: 5 })
        ));
        assert!(sink.on_msg(Msg { seq: 9, mark: STOP }, 0).unwrap());
        assert_eq!(sink.finish().msgs, 2);
    }

    #[test]
    fn touch_reads_one_word_per_line() {
        let mut buf = [0u8; 256];
        for line in 0..4 {
            set_word(&mut buf, line * 64, 1 << line);
            set_word(&mut buf, line * 64 + 8, 1000);
        }
        assert_eq!(touch(&buf), 0b1111);
    }
}
