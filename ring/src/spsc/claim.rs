//! The SPSC claim: room for one frame, written in place, then pushed or
//! committed; dropping it abandons the frame with no trace in the ring.

use super::producer::Producer;
use crate::frame;
use crate::region::Region;
use crate::wake::Notify;

/// Room for one frame, claimed and not yet published. Write the payload, then
/// [`push`](Claim::push) or [`commit`](Claim::commit) it; dropping the claim
/// abandons it.
pub struct Claim<'a, R: Region> {
    pub(super) producer: &'a mut Producer<R>,
    pub(super) pad: u64,
    pub(super) start: u64,
    pub(super) len: usize,
    pub(super) meta: u64,
    pub(super) flags: u8,
}

impl<R: Region> Claim<'_, R> {
    #[inline(always)]
    fn payload_offset(&self) -> usize {
        self.producer.payload_off(self.start)
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The payload as written so far, in place.
    #[cfg(not(loom))]
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let off = self.payload_offset();
        // SAFETY: `try_claim` reserved the frame inside the data area, the
        // consumer reads it only after the commit, and this shared view
        // borrows `self`, so no write through the claim happens while it lives.
        unsafe { frame::claimed_payload(&self.producer.region, off, self.len) }
    }

    /// The payload, writable in place (zero-copy).
    #[cfg(not(loom))]
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let off = self.payload_offset();
        // SAFETY: `try_claim` reserved the frame inside the data area, the
        // consumer reads it only after the commit, and `self` borrows the
        // producer mutably: this is the only view of those bytes.
        unsafe { frame::claimed_payload_mut(&self.producer.region, off, self.len) }
    }

    /// Copies `bytes` into the payload at `at`. Panics if it does not fit.
    #[inline]
    pub fn write(&mut self, at: usize, bytes: &[u8]) {
        frame::write_claimed(&self.producer.region, self.payload_offset(), self.len, at, bytes)
    }

    /// Sets the frame's metadata word (a send timestamp, for instance).
    #[inline(always)]
    pub fn set_meta(&mut self, meta: u64) {
        self.meta = meta;
    }

    /// Sets the frame's flags (free for the layers above).
    #[inline(always)]
    pub fn set_flags(&mut self, flags: u8) {
        self.flags = flags;
    }

    /// Adds the frame to the pending batch; [`Producer::commit`] publishes it.
    #[inline]
    pub fn push(self) {
        let Claim { producer, pad, start, len, meta, flags } = self;
        producer.push_frame(pad, start, len, meta, flags);
    }

    /// Publishes the frame, with any frames pushed before it.
    #[inline(always)]
    pub fn commit(self) -> Notify {
        let Claim { producer, pad, start, len, meta, flags } = self;
        producer.push_frame(pad, start, len, meta, flags);
        producer.commit()
    }
}
