//! The engine's side of a bridged flow: what the cross-host bridge
//! (`crate::remote`) does with the end it holds, and nothing a user calls.

use crate::stats::FLOW_RTT;

use super::{FlowEnd, Wakers};

/// The engine's side of a bridged flow.
impl FlowEnd {
    /// Engine side: records one round trip of this flow (a message's
    /// departure to its acknowledgement), in the engine's end: `ringflow
    /// stat` shows it with the engine's process.
    pub(crate) fn record_rtt(&self, ns: u64) {
        self.slot.hist(FLOW_RTT).record(ns);
    }

    /// Engine side: reports `total` messages lost on their way to the
    /// local peer (see [`FlowStats::lost`](super::FlowStats::lost)).
    pub(crate) fn report_lost(&self, total: u64) {
        // SYNC: Relaxed; see `stats`.
        self.shared.memory.tx_lost(self.shared.role).store(total, std::sync::atomic::Ordering::Relaxed);
    }

    /// Engine side: tells the local sender that `total` of its messages
    /// have been consumed (by the remote application), for its linger.
    pub(crate) fn confirm_consumed(&self, total: u64) {
        ringflow_ring::linger::store_consumed(self.shared.memory.rx_consumed(self.shared.role), total);
        // A sender lingering in `dealloc` sleeps on its space word: woken
        // unconditionally here.
        Wakers::wake(self.wakers.peer_space[0]);
    }

    /// Engine side: tells the local sender, lingering in `dealloc`, that
    /// the end of its direction (the wire's `Close`, after the `taken`
    /// messages this end took from it, counted from the flow's start) is in
    /// the kernel's hands: its process may exit now without the remote side
    /// taking that for a death. Wakes it whatever the peer-writable sleeper
    /// count says.
    pub(crate) fn confirm_close_handed(&self, taken: u64) {
        let word = self.shared.memory.rx_close_handed(self.shared.role);
        // SYNC: Release; pairs with the Acquire in `close::close_handed`
        // (the sender's linger reads it after its sleeper announcement).
        word.store(taken.saturating_add(1), std::sync::atomic::Ordering::Release);
        // The sender sleeps on its space wait point (our receiving ring's):
        // `alert` orders the store above before its bump of the futex word
        // (pairs with the fence in `WaitPoint::prepare`), so the sender's
        // re-check sees the word or its futex wait returns at once.
        let wp = self.sides.rx().0.space_wait();
        let _ = wp.alert();
        // SAFETY: the futex word is in our receiving ring's region, which
        // `self` keeps mapped (the wait point borrows it).
        let _ = unsafe { crate::futex::wake(wp.futex_word(), u32::MAX) };
    }

    /// Engine side: how many of our messages the local peer says it has
    /// consumed (never more than we sent).
    pub(crate) fn peer_consumed(&self) -> u64 {
        // SYNC: Acquire; pairs with the Release in `count_consumed` on the peer.
        self.shared
            .memory
            .tx_consumed(self.shared.role)
            .load(std::sync::atomic::Ordering::Acquire)
            .min(self.sent_count())
    }

    /// Engine side: whether the local peer has closed its sending side (a
    /// flag in memory it writes: a hint for a bounded wait, nothing more).
    pub(crate) fn peer_stopped_sending(&self) -> bool {
        self.sides.rx().0.is_producer_closed()
    }

    /// Engine side: whether the local peer has closed its receiving side
    /// (it dropped its flow): nothing more we send will be read.
    pub(crate) fn peer_stopped_reading(&self) -> bool {
        self.sides.tx().0.is_consumer_closed()
    }

    /// Engine side: the descriptor that becomes readable once the local
    /// peer publishes after [`arm_doorbell`](Self::arm_doorbell), or the
    /// flow ends (the control socket, which carries the peer's readiness
    /// signals and hangs up when it dies): how an engine learns of a
    /// message on a flow it stopped looking at.
    pub(crate) fn doorbell(&self) -> std::os::fd::BorrowedFd<'_> {
        self.readiness_fd()
    }

    /// Engine side: asks the local peer's next publish to make
    /// [`doorbell`](Self::doorbell) readable. False if a message (or the
    /// end) is already there: the signal for it may never come, so the
    /// caller looks at the flow now instead of waiting for the doorbell.
    pub(crate) fn arm_doorbell(&mut self) -> bool {
        !self.arm()
    }

    /// Engine side: drops this end as if its process had died (the rings
    /// stay open), so the local peer reads what is there and then gets
    /// `PeerGone`: how the death of a remote application reaches it.
    pub(crate) fn abandon(mut self) {
        self.abandoned = true;
    }
}
