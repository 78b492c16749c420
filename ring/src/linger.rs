//! The linger handshake: a sender closing a flow waits (`dealloc`) until
//! its receiver has consumed every message, and sleeps meanwhile; the
//! receiver keeps its consumed count exact on every message and wakes the
//! sender once it sees the sender closed.
//!
//! ```text
//! receiver, per message:               sender (dealloc):
//!   store_consumed(count, n)             close its side (Release)
//!   closed?  -> release + notify          WaitPoint::prepare (sleeper++, fence)
//!              (wakes a sleeper)          heavy barrier (every thread of every process)
//!                                         re-read count: all consumed? done
//!                                         else futex_wait(token)
//! ```
//!
//! The receiver's count store and its load of the closed flag against the
//! sender's closed store and its load of the count are a store-buffering
//! pair: with no barrier on either side both could miss the other, and the
//! sender would sleep until the receiver happened to call again. The
//! receiver is the hot path (every message), so it pays only a compiler
//! fence ([`store_consumed`]); the sender, once per `dealloc` sleep, runs
//! a process-wide barrier (`membarrier`) between its sleeper announcement
//! and its re-check, which puts a full barrier into the receiver's
//! instruction stream: either before the count store (then the receiver's
//! later loads see the closed flag and the sleeper, and it wakes the
//! sender), or after it (then the sender's re-check sees the count).
//! Loom cannot model membarrier: under loom the receiver runs a real SeqCst
//! fence, which stands for the barrier the sender forces on it.
//!
//! The count is the receiver's report, in memory it writes: a sender uses
//! it for its linger and for `PeerGone { delivered }` (clamped to what it
//! sent), never for memory.

use crate::sync::{AtomicU64, Ordering};

/// Receiver: records that `n` messages have been consumed, before it loads
/// the producer's closed flag (see the module documentation).
#[inline(always)]
pub fn store_consumed(count: &AtomicU64, n: u64) {
    // SYNC: Release; pairs with the Acquire in `consumed` (the sender's
    // linger and its PeerGone count).
    count.store(n, Ordering::Release);
    // SYNC: compiler fence; keeps the closed-flag load that follows after
    // this store in program order, where the sender's membarrier (its heavy
    // barrier in `dealloc`) finds it. Under loom: the fence that barrier puts
    // here.
    #[cfg(not(loom))]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(loom)]
    crate::sync::fence(Ordering::SeqCst);
}

/// Sender: how many messages the receiver says it consumed.
#[inline]
pub fn consumed(count: &AtomicU64) -> u64 {
    // SYNC: Acquire; pairs with the Release in `store_consumed`.
    count.load(Ordering::Acquire)
}
