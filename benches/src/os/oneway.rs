//! One-way streams of N-byte messages over a kernel byte stream, driven as
//! the stream's users drive it: the sender writes each message with its own
//! call (more only when the kernel takes part of it), the receiver reads
//! whatever has arrived, up to [`RECV_CHUNK`] bytes a call, and splits it
//! into messages ([`Frames`]).

use super::link::{on_error, send_all, Link};
use super::Wait;
use crate::error::BenchError;
use crate::framing::{Frames, RECV_CHUNK};
use crate::pair::Waiter;
use crate::stream::{StreamRx, StreamTx};
use crate::wire::{Sink, Source, Template};

/// Messages per [`StreamTx::send_batch`] call.
const BATCH: usize = 32;

/// The sending end: one message per call.
pub(super) struct Tx<L, const N: usize> {
    link: L,
    wait: Wait,
    what: &'static str,
    template: Template<N>,
    /// Where each message is written before it is sent.
    msg: Box<[u8]>,
}

impl<L: Link, const N: usize> Tx<L, N> {
    pub(super) fn new(link: L, wait: Wait, what: &'static str) -> Self {
        Tx { link, wait, what, template: Template::new(), msg: vec![0; N].into_boxed_slice() }
    }
}

impl<L: Link, const N: usize> StreamTx for Tx<L, N> {
    #[inline]
    fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        for _ in 0..BATCH {
            let msg = src.next_msg();
            msg.write(&mut self.msg, self.template.bytes());
            send_all(&mut self.link, self.wait, self.what, &self.msg, w)?;
            if msg.ends_turn() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The receiving end: reads in large chunks, counts whole messages.
pub(super) struct Rx<L, const N: usize> {
    link: L,
    wait: Wait,
    what: &'static str,
    frames: Frames<N>,
}

impl<L: Link, const N: usize> Rx<L, N> {
    pub(super) fn new(link: L, wait: Wait, what: &'static str) -> Self {
        Rx { link, wait, what, frames: Frames::new(RECV_CHUNK) }
    }
}

impl<L: Link, const N: usize> StreamRx for Rx<L, N> {
    #[inline]
    fn recv_batch(&mut self, sink: &mut Sink, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        match self.link.recv_some(self.frames.spare()) {
            Ok(0) => Err(BenchError::Disconnected { what: self.what }),
            Ok(n) => self.frames.take(n, sink),
            Err(e) => on_error(e, L::RECV_CALL, self.what, self.wait, w).map(|()| false),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{tcp, Wait};
    use crate::measure::RunCtx;
    use crate::pin::Pins;

    /// A TCP stream in both modes, small and large messages, delivers
    /// measured messages and ends on the stop message.
    #[test]
    fn tcp_streams_deliver_and_stop_in_both_modes() {
        let ctx = RunCtx {
            pins: Pins::unpinned(),
            warmup: Duration::from_millis(1),
            measure: Duration::from_millis(4),
            yielding: true,
        };
        for wait in [Wait::Spin, Wait::Block] {
            for (size, m) in
                [("64B", tcp::stream::<64>(&ctx, wait)), ("64KiB", tcp::stream::<{ 64 << 10 }>(&ctx, wait))]
            {
                let m = m.unwrap_or_else(|e| panic!("{size} {wait:?}: {e}"));
                assert!(m.msgs > 0 && !m.hist.is_empty(), "{size} {wait:?}");
            }
        }
    }
}
