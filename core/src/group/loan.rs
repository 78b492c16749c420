//! A member's loan: a frame of the group's log written in place, then
//! multicast (`GroupEnd::loan`).

use ringflow_ring::broadcast::{Claim, FrameMark};
use ringflow_ring::{RawRegion, WaitPoint};

use super::error::McastError;
use super::stats::Published;
use super::table::Counters;

/// A loaned frame of the log: write it in place, then [`send`](Self::send).
/// Dropping it aborts cleanly (the space becomes padding).
pub struct GroupLoan<'a> {
    pub(super) claim: Claim<'a, RawRegion>,
    /// Where the member keeps its last own frame (None: it loops back).
    pub(super) own: Option<&'a mut Option<FrameMark>>,
    /// The member's `answering`.
    pub(super) answering: &'a mut bool,
    pub(super) counters: &'a mut Counters,
    pub(super) published: &'a Published,
    pub(super) data: WaitPoint<'a>,
    /// The invoker-mode engine the member drives (`GroupOptions::invoker`).
    pub(super) invoker: Option<&'a crate::remote::Invoker>,
}

impl GroupLoan<'_> {
    /// The payload, writable in place; `None` on a Lap group (use `write`).
    pub fn payload_mut(&mut self) -> Option<&mut [u8]> {
        self.claim.payload_mut()
    }

    /// Copies `bytes` into the payload at `at`. Panics if it does not fit.
    pub fn write(&mut self, at: usize, bytes: &[u8]) {
        self.claim.write(at, bytes)
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        self.claim.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.claim.is_empty()
    }

    /// Publishes the message to every member.
    pub fn send(mut self) -> Result<(), McastError> {
        self.claim.set_meta(crate::clock::now());
        self.counters.sent += 1;
        self.published.sent();
        let mark = self.claim.mark();
        let len = self.claim.len() as u64;
        let n = self.claim.commit();
        if let Some(own) = self.own {
            *own = Some(mark);
        }
        *self.answering = true;
        let notified = crate::wait::notify(self.data, n).map_err(McastError::Io);
        if let Some(invoker) = self.invoker {
            invoker.invoke_after_send(len);
        }
        notified
    }
}
