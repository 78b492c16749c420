//! io_uring for the engine: whether it is usable here and why not
//! ([`mod@probe`]), one ring's duty cycle ([`UringDriver`]), and a TCP transport
//! over it ([`TcpDriver`]: multishot accept, multishot recv into provided
//! buffers, sends from driver-owned memory).
//!
//! Nothing here spins or blocks on its own: callers drive `poll` (or `wait`
//! when parking). Shared-memory flows never depend on this module.

mod bufring;
pub(crate) mod conns;
pub mod events;
mod fixed;
pub mod probe;
pub mod ring;
pub mod tcp;

#[cfg(test)]
mod direct_tests;
#[cfg(test)]
mod fixed_tests;
#[cfg(test)]
mod tests;

pub use events::{CloseReason, ConnId, RecvBuf, TcpError, TcpEvent, TcpStats};
pub use probe::{probe, probe_with, SetupFlags, Support, UringUnavailable};
pub use ring::{DriverStats, RingState, UringDriver};
pub use tcp::{TcpDriver, MAX_FUTEX_WAITS};

/// A cheap identity of the calling thread: the address of a thread-local
/// (unique among live threads; `thread::current()` costs more in a
/// spinning loop). Which thread submitted a request matters to io_uring:
/// without a single issuer, its completion's task work runs there.
pub(crate) fn this_thread() -> usize {
    thread_local!(static MARK: u8 = const { 0 });
    MARK.with(|m| m as *const u8 as usize)
}
