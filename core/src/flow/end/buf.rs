//! Zero-copy buffers: [`SendBuf`], a loan of the flow's shared memory written
//! in place and published by `send`; [`RecvBuf`], a received message read in
//! place and released on drop.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::AtomicU64;

use ringflow_ring::pool::{self, ReadSlot, WriteSlot};
use ringflow_ring::spsc::{Claim, Consumer, Peeked};
use ringflow_ring::Notify;
use ringflow_ring::RawRegion;

use crate::stats::{self, FlowCounter};

use super::send::{count_sent, published};
use super::turn::Turn;
use super::Wakers;
use crate::flow::error::SendError;
use crate::flow::FLAG_PART;
use crate::remote::Invoker;

pub(crate) enum Loan<'a> {
    Inline(Claim<'a, RawRegion>),
    Bulk { slot: WriteSlot<'a, RawRegion>, desc: Claim<'a, RawRegion> },
}

/// Shared memory lent for one outgoing message (Ouroboros/iceoryx2 `loan`):
/// write the message in place, then [`send`](Self::send) it. Dropping it
/// without sending abandons it and leaves no trace. Like every byte of the
/// flow's memory, the peer's process can see (and a hostile one could read)
/// what you write here before you send it.
pub struct SendBuf<'a> {
    pub(crate) loan: Loan<'a>,
    /// A call's loan (`loan_request`, `loan_reply`): its send hands the
    /// turn over, which this state records.
    pub(crate) turn: Option<&'a mut Turn>,
    /// The invoker-mode engine to drive once the message is published.
    pub(crate) invoker: Option<&'a Invoker>,
    pub(crate) wakers: Wakers,
    pub(crate) slot: &'a stats::Slot,
    /// Stamp the message as it is published.
    pub(crate) latency: bool,
    pub(crate) armed: &'a AtomicU64,
    pub(crate) peer_event: i32,
}

impl SendBuf<'_> {
    /// Publishes the message. It never waits: the room was claimed by the
    /// loan. A call's loan (`loan_request`, `loan_reply`) hands the turn
    /// over with it: wait for the answer with `receive_more` (or its
    /// in-place and descriptor forms).
    pub fn send(self) -> Result<(), SendError> {
        let stamp = if self.latency { crate::clock::now() } else { 0 };
        let len = self.len();
        let notify = match self.loan {
            Loan::Inline(mut c) => {
                c.set_meta(stamp);
                c.commit()
            }
            Loan::Bulk { slot, mut desc } => {
                desc.set_meta(stamp);
                commit_bulk(slot, desc)
            }
        };
        if let Some(turn) = self.turn {
            turn.handed_over(len);
        }
        count_sent(self.slot, len);
        published(notify, &self.wakers, self.slot, self.armed, self.peer_event);
        if let Some(invoker) = self.invoker {
            invoker.invoke_after_send(len as u64);
        }
        Ok(())
    }
}

impl Deref for SendBuf<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.loan {
            Loan::Inline(c) => c.payload(),
            Loan::Bulk { slot, .. } => slot.payload(),
        }
    }
}

impl DerefMut for SendBuf<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.loan {
            Loan::Inline(c) => c.payload_mut(),
            Loan::Bulk { slot, .. } => slot.payload_mut(),
        }
    }
}

/// A received message, read in place in the flow's shared memory. Dropping
/// it consumes the message and hands its room back to the sender.
///
/// The bytes live in memory the peer's process maps writable. An honest
/// peer never touches a message it sent until you drop this buffer; a buggy
/// or hostile one may change the bytes while you read them (formally a data
/// race in Rust's model, which no library can exclude for memory shared
/// with a process it does not control). What ringflow guarantees: none of
/// its own lengths, offsets or loop bounds comes from these bytes. What you
/// may rely on: the length is fixed and checked, the bytes are not. With a
/// peer you do not trust, read each byte once (parse once), copy out what
/// you validate and act on the copy, or receive with `recv_into`, which
/// copies the message out first.
pub struct RecvBuf<'a> {
    pub(crate) rx: &'a mut Consumer<RawRegion>,
    pub(crate) frame: Peeked,
    /// Where the bytes handed out begin (a call's answer resumed in place
    /// after part of it was copied out: `receive_more_ref`).
    pub(crate) start: usize,
    pub(crate) bulk: Option<ReadSlot<'a, RawRegion>>,
    pub(crate) wakers: &'a Wakers,
    pub(crate) slot: &'a stats::Slot,
}

impl Deref for RecvBuf<'_> {
    type Target = [u8];

    #[inline(always)]
    fn deref(&self) -> &[u8] {
        let all = match &self.bulk {
            Some(b) => b.payload(),
            None => self.rx.payload_of(&self.frame),
        };
        // `start` is at most the frame's length (see `FlowEnd::receive_turn_ref`).
        all.get(self.start..).unwrap_or_default()
    }
}

impl RecvBuf<'_> {
    /// Whether this is a piece of a call's request or reply that more
    /// pieces follow (sent with `send_part`): read them with
    /// `receive_more_ref`. False for plain messages and for the last frame
    /// of a call's message.
    pub fn more_follows(&self) -> bool {
        self.frame.flags() & FLAG_PART != 0
    }

    /// A plain message in the inline ring (no descriptors, no call, not in
    /// the bulk area): one a receive batch may go on after.
    pub(crate) fn is_plain_inline(&self) -> bool {
        self.bulk.is_none() && self.frame.flags() == 0
    }
}

impl Drop for RecvBuf<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        count_consumed(self.slot, self.wakers.consumed());
        if let Some(b) = self.bulk.take() {
            consume_bulk(b, self.wakers);
        }
        consume(self.rx, &self.frame, self.wakers);
    }
}

/// Consumes `frame`; hands its room back (a release: one store, and a
/// check for a sleeping sender) once a quarter of the ring has been consumed
/// since the last release, or at once when the sender has closed (it may be
/// lingering in `dealloc` until we have read everything). The receive paths
/// also release whenever they find the ring empty (`FlowEnd::locate`), so a
/// sender waiting for room learns of it at the latest when we run dry; a
/// stream pays one release per quarter ring.
#[inline(always)]
pub(crate) fn consume(rx: &mut Consumer<RawRegion>, frame: &Peeked, wakers: &Wakers) {
    rx.consume(frame);
    if rx.unreleased() >= rx.capacity() / 4 || rx.is_producer_closed() {
        release(rx, wakers);
    }
}

/// [`consume`] for a bulk slot.
#[inline]
pub(crate) fn consume_bulk(slot: ReadSlot<'_, RawRegion>, wakers: &Wakers) {
    let pool = slot.consume();
    if pool.unreleased() >= pool.capacity() / 4 {
        release_bulk(pool, wakers);
    }
}

/// Releases the bulk slots consumed, wakes a sender asleep for room and
/// signals one that waits for room through its readiness descriptor (as
/// [`release`] does for the ring: a large send waits for either).
#[inline]
pub(crate) fn release_bulk(pool: &mut pool::Consumer<RawRegion>, wakers: &Wakers) {
    if pool.release().is_wake() {
        Wakers::wake(wakers.peer_space[1]);
    }
    wakers.room_released();
}

/// Publishes a bulk message: the slot is committed (its bytes published,
/// the pool's for good), then its descriptor (the slot's position and
/// length) is written into the inline frame and committed.
#[inline]
pub(crate) fn commit_bulk(slot: WriteSlot<'_, RawRegion>, mut desc: Claim<'_, RawRegion>) -> Notify {
    // The slot first: the pool's consumer opens only committed slots.
    let d = slot.commit();
    desc.write(0, &d.pos().to_le_bytes());
    desc.write(8, &(d.len() as u64).to_le_bytes());
    desc.commit()
}

/// Releases what was consumed, wakes a sender asleep for room and signals
/// one that waits for room through its readiness descriptor.
#[inline]
pub(crate) fn release(rx: &mut Consumer<RawRegion>, wakers: &Wakers) {
    let released = rx.unreleased() > 0;
    if rx.release().is_wake() {
        Wakers::wake(wakers.peer_space[0]);
    }
    if released {
        wakers.room_released();
    }
}

/// Counts one more message consumed, where the sender can read it: exact on
/// every message (for `PeerGone { delivered }` and `dealloc`'s linger), on a
/// line only we write. Called before the consume's load of the sender's
/// closed flag and its release, whose wake-up tells a lingering sender to
/// look at it (the linger handshake: `ringflow_ring::linger`).
#[inline(always)]
pub(crate) fn count_consumed(slot: &stats::Slot, consumed: &AtomicU64) {
    let received = slot.get(FlowCounter::Received as usize) + 1;
    slot.set(FlowCounter::Received as usize, received);
    ringflow_ring::linger::store_consumed(consumed, received);
}
