//! Zero-copy buffers: [`SendBuf`], a loan of the flow's shared memory written
//! in place and published by `send`; [`RecvBuf`], a received message read in
//! place and released on drop.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};

use ringflow_ring::spsc::{Claim, Consumer, Peeked};
use ringflow_ring::RawRegion;

use super::send::published;
use super::Wakers;
use crate::error::SendError;

pub(crate) enum Loan<'a> {
    Inline(Claim<'a, RawRegion>),
    Bulk { data: Claim<'a, RawRegion>, desc: Claim<'a, RawRegion> },
}

/// Shared memory lent for one outgoing message (Ouroboros/iceoryx2 `loan`):
/// write the message in place, then [`send`](Self::send) it. Dropping it
/// without sending abandons it and leaves no trace.
pub struct SendBuf<'a> {
    pub(crate) loan: Loan<'a>,
    pub(crate) wakers: Wakers,
    pub(crate) sent: &'a mut u64,
    pub(crate) armed: &'a AtomicU64,
    pub(crate) peer_event: i32,
}

impl SendBuf<'_> {
    /// Publishes the message. It never waits: the room was claimed by the loan.
    pub fn send(self) -> Result<(), SendError> {
        let notify = match self.loan {
            Loan::Inline(c) => c.commit(),
            Loan::Bulk { data, desc } => {
                let _ = data.commit();
                desc.commit()
            }
        };
        *self.sent += 1;
        published(notify, &self.wakers, self.armed, self.peer_event);
        Ok(())
    }
}

impl Deref for SendBuf<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.loan {
            Loan::Inline(c) | Loan::Bulk { data: c, .. } => c.payload(),
        }
    }
}

impl DerefMut for SendBuf<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.loan {
            Loan::Inline(c) | Loan::Bulk { data: c, .. } => c.payload_mut(),
        }
    }
}

/// A received message, read in place in the flow's shared memory. Dropping
/// it consumes the message and hands its room back to the sender.
pub struct RecvBuf<'a> {
    pub(crate) rx: &'a mut Consumer<RawRegion>,
    pub(crate) rx_bulk: &'a mut Consumer<RawRegion>,
    pub(crate) frame: Peeked,
    pub(crate) bulk: Option<Peeked>,
    pub(crate) wakers: Wakers,
    pub(crate) received: &'a mut u64,
    pub(crate) consumed: &'a AtomicU64,
}

impl Deref for RecvBuf<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.bulk {
            Some(b) => self.rx_bulk.payload_of(b),
            None => self.rx.payload_of(&self.frame),
        }
    }
}

impl Drop for RecvBuf<'_> {
    fn drop(&mut self) {
        if let Some(b) = &self.bulk {
            consume(self.rx_bulk, b, self.wakers.peer_space[1]);
        }
        consume(self.rx, &self.frame, self.wakers.peer_space[0]);
        count_consumed(self.received, self.consumed);
    }
}

/// Consumes `frame`; hands its room back (a release: one store, and a
/// check for a sleeping sender) only once a quarter of the ring has been
/// consumed, or when nothing follows — so a stream pays one release per
/// quarter ring, and a sender waiting for room (or lingering until we have
/// read everything) learns of it at the latest when we run dry.
#[inline]
pub(crate) fn consume(rx: &mut Consumer<RawRegion>, frame: &Peeked, peer_space: usize) {
    rx.consume(frame);
    if (rx.unreleased() >= rx.capacity() / 4 || rx.peek().is_err()) && rx.release().is_wake() {
        Wakers::wake(peer_space);
    }
}

/// Counts one more message consumed, where the sender can read it: exact on
/// every message (for `PeerGone { delivered }`), on a line only we write.
#[inline]
pub(crate) fn count_consumed(received: &mut u64, consumed: &AtomicU64) {
    *received += 1;
    // SYNC: Relaxed; a statistic the sender reads after our death or close,
    // ordered by then through the kernel (the socket hang-up).
    consumed.store(*received, Ordering::Relaxed);
}
