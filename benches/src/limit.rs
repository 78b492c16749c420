//! The physical limit of each case: the same message work with no queue
//! logic beyond one sequence word per cache line or slot. Every ratio in a
//! report is taken against these, measured in the same run. They must stay
//! minimal: anything added here raises the floor and flatters the others.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::BenchError;
use crate::measure::{Measurement, RunCtx};
use crate::pair::Waiter;
use crate::pingpong::{PingSide, PongSide};
use crate::stream::{self, StreamRx, StreamTx};
use crate::wire::{self, Msg, Sink, Source, Template, MARK_AT, STOP};

/// Words of a ping-pong line after its sequence word.
const LINE_WORDS: usize = 7;

/// One message of the ping-pong limit: a sequence word and 56 bytes, alone
/// in a 128-byte block (the adjacent-line prefetcher pairs 64-byte lines).
#[repr(C, align(128))]
#[derive(Default)]
struct Line {
    seq: AtomicU64,
    words: [AtomicU64; LINE_WORDS],
}

impl Line {
    /// Writes the 56 bytes after the header's sequence word, then publishes
    /// `stamp` (never zero).
    #[inline]
    fn publish(&self, msg: &[u8], stamp: u64) {
        for (i, w) in self.words.iter().enumerate() {
            // SYNC: Relaxed; published by the Release store of `seq` below,
            // read after the peer's Acquire load in `wait_for`.
            w.store(wire::word(msg, 8 + 8 * i), Ordering::Relaxed);
        }
        // SYNC: Release; pairs with the Acquire in `wait_for`: the words are
        // visible to a side that sees this stamp.
        self.seq.store(stamp, Ordering::Release);
    }

    /// Spins until the sequence word equals `stamp`.
    #[inline]
    fn wait_for(&self, stamp: u64, w: &mut Waiter<'_>) -> Result<(), BenchError> {
        // SYNC: Acquire; pairs with the Release in `publish`.
        while self.seq.load(Ordering::Acquire) != stamp {
            w.wait()?;
        }
        Ok(())
    }

    /// Spins until the sequence word differs from `last`; returns it.
    #[inline]
    fn wait_change(&self, last: u64, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        loop {
            // SYNC: Acquire; pairs with the Release in `publish`.
            let stamp = self.seq.load(Ordering::Acquire);
            if stamp != last {
                return Ok(stamp);
            }
            w.wait()?;
        }
    }

    /// The word after the sequence word (the message's mark).
    #[inline]
    fn first_word(&self) -> u64 {
        // SYNC: Relaxed; ordered after the Acquire in `wait_for`.
        self.words[0].load(Ordering::Relaxed)
    }
}

/// Both lines; ping writes `a` and pong writes `b`.
#[derive(Default)]
pub(crate) struct Lines {
    a: Line,
    b: Line,
}

struct Ping<'a> {
    lines: &'a Lines,
    stamp: u64,
}

impl<const N: usize> PingSide<N> for Ping<'_> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        // Stamps start at 1: zero is the initial value.
        self.stamp = wire::word(msg, 0) + 1;
        self.lines.a.publish(msg, self.stamp);
        Ok(())
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        self.lines.b.wait_for(self.stamp, w)?;
        Ok(self.stamp - 1)
    }
}

struct Pong<'a> {
    lines: &'a Lines,
    stamp: u64,
}

impl<const N: usize> PongSide<N> for Pong<'_> {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        // The next message, whatever its number: among other variants
        // (`pingpong::run_alternating`) this side does not see them all.
        self.stamp = self.lines.a.wait_change(self.stamp, w)?;
        if self.lines.a.first_word() == STOP {
            return Ok(false);
        }
        for (src, dst) in self.lines.a.words.iter().zip(&self.lines.b.words) {
            // SYNC: Relaxed both; the load is ordered after the Acquire in
            // `wait_change`, the store is published by the Release below.
            dst.store(src.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        // SYNC: Release; pairs with the Acquire in ping's `wait_for` on b.
        self.lines.b.seq.store(self.stamp, Ordering::Release);
        Ok(true)
    }
}

/// The two sides of [`pingpong`] over `lines`, for a driver that runs them
/// among other variants.
pub(crate) fn pingpong_sides(lines: &Lines) -> (impl PingSide<64> + '_, impl PongSide<64> + '_) {
    (Ping { lines, stamp: 0 }, Pong { lines, stamp: 0 })
}

/// One N-byte message slot of the stream limit. Its first 8 bytes are the
/// sequence word, accessed only atomically; bytes 8..N are the rest of the
/// message, owned by the producer until it stores the sequence word and by
/// the consumer from then until it publishes a position past the slot.
#[repr(C, align(64))]
struct Slot<const N: usize> {
    bytes: UnsafeCell<[u8; N]>,
}

// SAFETY: concurrent access follows the slot protocol: the sequence word is
// only accessed atomically, and the other bytes belong to one side at a time
// (producer until the Release of the sequence word, consumer until the
// Release of its position), so no byte is accessed non-atomically by two
// threads at once.
unsafe impl<const N: usize> Sync for Slot<N> {}

impl<const N: usize> Slot<N> {
    const CHECK: () = assert!(N >= 16 && N % 64 == 0, "slots hold whole 64-byte lines");

    fn new() -> Self {
        let () = Self::CHECK;
        Slot { bytes: UnsafeCell::new([0; N]) }
    }

    #[inline]
    fn seq(&self) -> &AtomicU64 {
        // Bytes 0..8 are only ever accessed through this atomic: `tail` and
        // `tail_mut` start at byte 8.
        // SAFETY: 64-byte aligned slot (repr), so aligned for AtomicU64;
        // lives as long as `self`; never accessed non-atomically (above).
        unsafe { AtomicU64::from_ptr(self.bytes.get().cast::<u64>()) }
    }

    /// Bytes 8..N, read by the consumer.
    ///
    /// # Safety
    /// The caller is the consumer, has seen this slot's sequence word for
    /// its position (Acquire), and has not yet released the position.
    #[inline]
    unsafe fn tail(&self) -> &[u8] {
        // SAFETY: bytes 8..N lie inside the slot; the caller's contract
        // means the producer does not write them while this borrow lives.
        unsafe { std::slice::from_raw_parts(self.bytes.get().cast::<u8>().add(8), N - 8) }
    }

    /// Bytes 8..N, written by the producer.
    ///
    /// # Safety
    /// The caller is the producer, the consumer has released this slot's
    /// previous lap (seen with Acquire), and the sequence word of this lap
    /// is not stored yet.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    unsafe fn tail_mut(&self) -> &mut [u8] {
        // SAFETY: bytes 8..N lie inside the slot; by the caller's contract no
        // other reference to them exists while this one lives.
        unsafe { std::slice::from_raw_parts_mut(self.bytes.get().cast::<u8>().add(8), N - 8) }
    }
}

/// The consumer's published position, alone in its block.
#[repr(C, align(128))]
#[derive(Default)]
struct Position(AtomicU64);

/// A power-of-two array of slots and the consumer's position.
pub(crate) struct SlotRing<const N: usize> {
    slots: Box<[Slot<N>]>,
    mask: u64,
    head: Position,
}

struct Tx<'a, const N: usize> {
    ring: &'a SlotRing<N>,
    pos: u64,
    cached_head: u64,
    batch: usize,
    template: Template<N>,
}

impl<const N: usize> StreamTx for Tx<'_, N> {
    #[inline]
    fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let capacity = self.ring.mask + 1;
        for _ in 0..self.batch {
            while self.pos >= self.cached_head + capacity {
                // SYNC: Acquire; pairs with the consumer's Release of its
                // position: it is done with every slot before it.
                self.cached_head = self.ring.head.0.load(Ordering::Acquire);
                if self.pos >= self.cached_head + capacity {
                    w.wait()?;
                }
            }
            let slot = &self.ring.slots[(self.pos & self.ring.mask) as usize];
            let msg = src.next_msg();
            // SAFETY: we are the producer, the consumer released this slot's
            // previous lap (checked just above) and this lap's sequence word
            // is stored only below, after the last use of the slice.
            let tail = unsafe { slot.tail_mut() };
            tail.copy_from_slice(&self.template.bytes()[8..]);
            wire::set_word(tail, MARK_AT - 8, msg.mark);
            // SYNC: Release; pairs with the Acquire in `Rx::recv_batch`: the
            // tail bytes are visible to a consumer that sees this word.
            slot.seq().store(self.pos + 1, Ordering::Release);
            self.pos += 1;
            if msg.ends_turn() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

struct Rx<'a, const N: usize> {
    ring: &'a SlotRing<N>,
    pos: u64,
    batch: usize,
}

impl<const N: usize> StreamRx for Rx<'_, N> {
    #[inline]
    fn recv_batch(&mut self, sink: &mut Sink, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let mut stop = false;
        let mut read = 0;
        while read < self.batch && !stop {
            let slot = &self.ring.slots[(self.pos & self.ring.mask) as usize];
            // SYNC: Acquire; pairs with the Release in `Tx::send_batch`.
            if slot.seq().load(Ordering::Acquire) != self.pos + 1 {
                break;
            }
            // SAFETY: we are the consumer, saw this lap's sequence word with
            // Acquire, and release the position only after this borrow ends.
            let tail = unsafe { slot.tail() };
            let msg = Msg { seq: self.pos, mark: wire::word(tail, MARK_AT - 8) };
            stop = sink.on_msg(msg, wire::touch(tail))?;
            self.pos += 1;
            read += 1;
        }
        if read == 0 {
            w.wait()?;
        } else {
            // SYNC: Release; pairs with the producer's Acquire in
            // `Tx::send_batch`: our reads of these slots come first.
            self.ring.head.0.store(self.pos, Ordering::Release);
        }
        Ok(stop)
    }
}

/// A raw stream of N-byte slots (`slots` a power of two), the consumer
/// publishing its position every `batch` messages.
pub fn stream<const N: usize>(ctx: &RunCtx, slots: usize, batch: usize) -> Result<Measurement, BenchError> {
    let ring = stream_ring::<N>(slots);
    let (tx, rx) = stream_sides(&ring, batch);
    stream::run(ctx, tx, rx)
}

/// The slots of [`stream`] (`slots` rounded up to a power of two).
pub(crate) fn stream_ring<const N: usize>(slots: usize) -> SlotRing<N> {
    let slots = slots.next_power_of_two();
    SlotRing { slots: (0..slots).map(|_| Slot::new()).collect(), mask: slots as u64 - 1, head: Position::default() }
}

/// The two sides of [`stream`] over `ring`, for `stream::run_alternating`.
pub(crate) fn stream_sides<const N: usize>(
    ring: &SlotRing<N>,
    batch: usize,
) -> (impl StreamTx + '_, impl StreamRx + '_) {
    (Tx { ring, pos: 0, cached_head: 0, batch, template: Template::<N>::new() }, Rx { ring, pos: 0, batch })
}
