//! The one switch between std atomics and loom's model-checked atomics.
//! Ring code imports atomics only from here, never from std directly.

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
pub use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

/// What a retry loop does between attempts: a CPU hint on real hardware, a
/// yield under loom so the model checker can schedule the other threads.
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
