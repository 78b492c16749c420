//! The readiness arm handshake: how a receiver that polls a readiness
//! descriptor (epoll, tokio) learns of a message published after it last
//! looked, without the sender paying a system call per message.
//!
//! ```text
//! receiver (found nothing):  drain its descriptor
//!                            arm(word)             sender: commit (Release)
//!                            [heavy barrier]               notify's fence
//!                            re-check the ring             take_arm(word)? -> signal
//!                            found something: signal itself
//! ```
//!
//! A Dekker pair: [`arm`]'s store and fence against the fence the sender's
//! commit ran in `WaitPoint::notify` before [`take_arm`] loads the word.
//! Either the receiver's re-check sees the message, or the sender sees the
//! arm and signals. In [`WakeMode::Membarrier`](crate::WakeMode) the
//! sender's fence is only a compiler fence: the receiver then issues the
//! heavy barrier (membarrier) between `arm` and its re-check, as a waiter
//! does after `WaitPoint::prepare`.
//!
//! The word is in shared memory: the sender can write anything to the
//! receiver's word (it can always withhold a signal anyway; a death is
//! signalled by the watcher, never through this word), and the receiver's
//! scribbles on a sender's word only cause extra signals. Nothing here
//! makes a system call: the caller drains and signals.

use crate::sync::{fence, AtomicU64, Ordering};

/// Receiver: announces that it waits for a signal on its descriptor. The
/// caller then (in membarrier mode) issues the heavy barrier and re-checks
/// the ring; finding something, it signals itself.
#[inline]
pub fn arm(word: &AtomicU64) {
    // SYNC: SeqCst store + fence; pairs with the fence of the sender's
    // commit (`WaitPoint::notify`) before `take_arm` loads this word.
    word.store(1, Ordering::SeqCst);
    fence(Ordering::SeqCst);
}

/// Sender, after a commit (whose notify ran its fence): whether the
/// receiver armed; disarms it. True means: signal its descriptor once.
#[inline]
pub fn take_arm(word: &AtomicU64) -> bool {
    // SYNC: Relaxed load, ordered after our commit by the fence in the
    // ring's notify (or by the receiver's heavy barrier in membarrier mode);
    // pairs with the SeqCst store + fence in `arm`. The swap (AcqRel) makes
    // one signal per arming when several threads could race (they cannot on
    // a flow: one sender), and is skipped when nobody armed: the common case
    // costs one load of a line the receiver rarely writes.
    word.load(Ordering::Relaxed) != 0 && word.swap(0, Ordering::AcqRel) != 0
}
