//! Kernel transports as ping-pong peers: a Unix stream socket pair, two
//! pipes, and TCP over loopback (also as a one-way stream). They show what
//! a round trip through the kernel costs next to shared memory, measured in
//! the same run.
//!
//! Each runs in one of two [`Wait`] modes: spinning (nonblocking fds, the
//! receiver busy-polls) or blocking (the thread sleeps in the kernel). This
//! module must never buffer or batch in user space on the sending side: one
//! message is one write. A ping-pong side reads one message per read unless
//! the kernel splits it; a stream's receiver reads what has arrived, as its
//! users do ([`oneway`]).

mod fd;
mod link;
mod oneway;
pub mod pipe;
pub mod tcp;
pub mod unix_socket;

use std::time::Duration;

use crate::error::BenchError;
use crate::pair::Waiter;

/// How a side waits for its peer's message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Nonblocking fds: on EAGAIN the receiver calls [`Waiter::wait`] and
    /// tries again, like the rings spin.
    Spin,
    /// Blocking fds: the thread sleeps in the kernel until data arrives, or
    /// until [`BLOCK_TIMEOUT`] passes and it checks its [`Waiter`].
    Block,
}

/// The longest a blocked side sleeps before it checks whether the other side
/// failed or the run stalled.
pub const BLOCK_TIMEOUT: Duration = Duration::from_millis(200);

/// Calls of [`Waiter::wait`] within which it surely checks the abort flag
/// and the deadline: it checks on every 4096th call (every 16th when
/// yielding). Keep in step with `pair.rs`.
const WAITS_PER_CHECK: u32 = 4096;

/// After a timed-out sleep in the kernel: makes the [`Waiter`] check whether
/// the other side failed or the run is past its deadline. A single
/// `wait()` would check only every few thousand timeouts, minutes apart;
/// this burst (a few thousand spin hints or yields, paid only after a
/// 200 ms sleep) forces one check without touching the Waiter's internals.
pub(crate) fn check_after_timeout(w: &mut Waiter<'_>) -> Result<(), BenchError> {
    for _ in 0..WAITS_PER_CHECK {
        w.wait()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::measure::RunCtx;
    use crate::pin::Pins;

    /// Every transport in both modes completes round trips and stops cleanly.
    #[test]
    fn every_transport_round_trips_in_both_modes() {
        let ctx = RunCtx {
            pins: Pins::unpinned(),
            warmup: Duration::from_millis(1),
            measure: Duration::from_millis(4),
            yielding: true,
        };
        for wait in [Wait::Spin, Wait::Block] {
            for (name, m) in [
                ("unix-socket", unix_socket::pingpong::<64>(&ctx, wait)),
                ("pipe", pipe::pingpong::<64>(&ctx, wait)),
                ("tcp", tcp::pingpong::<64>(&ctx, wait)),
            ] {
                let m = m.unwrap_or_else(|e| panic!("{name} {wait:?}: {e}"));
                assert!(m.msgs > 0, "{name} {wait:?}");
            }
        }
    }
}
