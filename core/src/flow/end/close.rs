//! Closing a flow end: the lingering `dealloc`, and the drop that closes
//! every side at once.

use std::mem::ManuallyDrop;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::Deadline;

use super::{send, shared, FlowEnd, Wakers};
use crate::flow::error::DeallocError;

/// How long a lingering `dealloc` sleeps at most between looks when no
/// process-wide barrier is available (see [`linger_barrier`]).
const LINGER_SLICE: Duration = Duration::from_millis(10);

/// The lingering sender's side of the linger handshake
/// (`ringflow_ring::linger`): the receiver orders its consumed count before
/// its look at our closed flag with a compiler fence only, so after our
/// sleeper announcement a process-wide barrier must put the missing fence
/// into its instruction stream before we re-read the count. Without
/// membarrier (seccomp, `nohz_full`), each sleep is capped instead, so a
/// count the barrier would have shown is seen one slice later.
fn linger_barrier(wp: &ringflow_ring::WaitPoint<'_>) -> std::io::Result<Option<Duration>> {
    match crate::membarrier::barrier_all(wp.needs_membarrier()) {
        Ok(()) => Ok(None),
        Err(_) => Ok(Some(LINGER_SLICE)),
    }
}

/// The sender's side of the close handshake of a flow bridged to another
/// host: whether the engine says it handed the end of our direction to the
/// kernel after all `sent` of our messages.
///
/// ```text
/// engine (receiver of our direction):     sender (dealloc):
///   takes every message, sees closed         close its side
///   Close frame queued on the connection     linger until all consumed
///   the kernel took it (send completion,     WaitPoint::prepare (sleeper++, fence)
///     or a direct send(2) returned)          re-read the word: 1 + sent? done
///   word = 1 + messages taken (Release)      else futex_wait(token) beside the
///   WaitPoint::alert (fence, bump) + wake       flow's alarm (the engine's death)
/// ```
///
/// The word is the engine's report in memory it writes, trusted for this
/// wait only: a wrong value either ends the wait early (the far side may
/// then see a death instead of a close, as without the handshake) or keeps
/// it to its deadline, or until the engine's end goes (its hang-up wakes
/// the sender through the flow's alarm, whatever the word says).
fn close_handed(word: &std::sync::atomic::AtomicU64, sent: u64) -> bool {
    // SYNC: Acquire; pairs with the Release in `FlowEnd::confirm_close_handed`.
    word.load(std::sync::atomic::Ordering::Acquire) == sent.saturating_add(1)
}

impl FlowEnd {
    /// Closes the flow, first waiting until the peer has consumed every
    /// message sent (a reliable flow's linger), or `deadline` passes, or the
    /// peer leaves. The peer then reads everything and gets end of flow.
    /// Under [`Deadline::Now`] it does not linger: messages still unread are
    /// [`DeallocError::WouldBlock`] rather than `TimedOut`.
    ///
    /// A flow to another host also waits for its engine to hand the flow's
    /// end to the network (the close handshake, see [`close_handed`]): once
    /// this returns `Ok`, the process may exit at once and the remote
    /// application still sees a clean end of flow. If everything was
    /// consumed but the end was not handed by the deadline, that is
    /// [`DeallocError::CloseNotSent`]; if the engine let go of the flow
    /// first, [`DeallocError::PeerGone`] with nothing unconsumed.
    pub fn dealloc(mut self, deadline: Deadline) -> Result<(), DeallocError> {
        self.close_tx();
        let sent = self.sent_count();
        let consumed = self.shared.memory.tx_consumed(self.shared.role);
        let handed = self.shared.memory.tx_close_handed(self.shared.role);
        let bridged = self.crosses_hosts;
        // A figure the peer reports: trusted only for this wait (a lie ends
        // the linger early, or lets it run to its deadline or the peer's end).
        let unconsumed = || sent.saturating_sub(ringflow_ring::linger::consumed(consumed));
        // Nothing to wait for on this host; across hosts, the engine's word.
        let end_out = || !bridged || close_handed(handed, sent);
        let outcome = if let Some(invoker) = self.invoker.clone() {
            // Invoker mode: the acknowledgements arrive, and the end leaves,
            // as this thread runs the engine.
            let (tx, _) = self.sides.tx();
            let shared = &self.shared;
            let done = || (unconsumed() == 0 && end_out()) || tx.is_consumer_closed() || shared.state() != shared::LIVE;
            Ok(if invoker.drive_until(done, Duration::ZERO, deadline) {
                crate::WaitOutcome::Ready
            } else {
                crate::WaitOutcome::TimedOut
            })
        } else {
            let (tx, _) = self.sides.tx();
            let shared = &self.shared;
            // The engine alerts the space wait point after writing the word
            // (`confirm_close_handed`), and its death wakes through the
            // alarm: the wait ends on either, never on the word alone.
            crate::wait_until_with(
                || tx.space_wait(),
                || (unconsumed() == 0 && end_out()) || tx.is_consumer_closed() || shared.state() != shared::LIVE,
                Duration::ZERO,
                deadline,
                Some(shared.alarm()),
                linger_barrier,
            )
        };
        let reader_closed = self.sides.tx().0.is_consumer_closed();
        // On this host a reader that closed needs nothing more; across
        // hosts only the engine's word says the far side was told (it also
        // writes it when the far side reset the flow).
        let settled = end_out() || (!bridged && reader_closed);
        match (outcome, unconsumed()) {
            (_, 0) if settled => Ok(()),
            // The engine let go of the flow (stopped, or died) before the
            // end left: the far side will take it for a death.
            (_, 0) if reader_closed || self.shared.state() != shared::LIVE => {
                Err(DeallocError::PeerGone { unconsumed: 0 })
            }
            (Err(e), 0) => Err(DeallocError::Wait { unconsumed: 0, errno: e.raw_os_error().unwrap_or(0) }),
            (_, 0) => Err(DeallocError::CloseNotSent),
            (Ok(crate::WaitOutcome::TimedOut), n) if deadline == Deadline::Now => {
                Err(DeallocError::WouldBlock { unconsumed: n })
            }
            (Ok(crate::WaitOutcome::TimedOut), n) => Err(DeallocError::TimedOut { unconsumed: n }),
            (Err(e), n) => Err(DeallocError::Wait { unconsumed: n, errno: e.raw_os_error().unwrap_or(0) }),
            (_, n) if reader_closed => Err(DeallocError::Closed { unconsumed: n }),
            (_, n) => Err(DeallocError::PeerGone { unconsumed: n }),
        }
    }

    /// Closes the sending sides and wakes a peer asleep waiting for data
    /// (or waiting on its readiness descriptor).
    pub(crate) fn close_tx(&mut self) {
        let s = self.sides.get();
        s.tx_bulk.close();
        let notify = s.tx.close();
        send::published(
            notify,
            &self.wakers,
            &self.slot,
            self.shared.memory.tx_armed(self.shared.role),
            self.conn.as_raw_fd(),
        );
    }
}

impl Drop for FlowEnd {
    /// Closes every side at once, without waiting (use
    /// [`dealloc`](FlowEnd::dealloc) to linger), and wakes the peer's sleepers.
    fn drop(&mut self) {
        if self.abandoned {
            // SAFETY: `sides` is taken once, here in drop, and never used after.
            unsafe { ManuallyDrop::take(&mut self.sides) }.abandon();
            return;
        }
        self.record_pending();
        self.close_tx();
        let s = self.sides.get();
        let a = s.rx.close();
        let b = s.rx_bulk.close();
        if a.is_wake() {
            Wakers::wake(self.wakers.peer_space[0]);
        }
        if b.is_wake() {
            Wakers::wake(self.wakers.peer_space[1]);
        }
        // SAFETY: dropped once, here in drop, and never used after.
        unsafe { ManuallyDrop::drop(&mut self.sides) };
    }
}
