//! `pipe`: ping-pong over two pipes, one per direction.
//!
//! Pipes have no receive timeout, so a blocking side sleeps in `poll(2)`
//! (at most [`BLOCK_TIMEOUT`](super::BLOCK_TIMEOUT)) and then `read`s: two
//! system calls per blocking receive, where a socket needs one.

use std::io::{self, ErrorKind};

use super::fd::{self, Fd};
use super::link::{Ends, Link};
use super::{Wait, BLOCK_TIMEOUT};
use crate::error::BenchError;
use crate::measure::{Measurement, RunCtx};
use crate::pingpong;

/// One side's two pipe ends: it reads one pipe and writes the other.
struct PipeLink {
    rx: Fd,
    tx: Fd,
    wait: Wait,
}

impl PipeLink {
    /// Prepares both ends for `wait`: O_NONBLOCK to spin, as they are to
    /// block.
    fn new(rx: Fd, tx: Fd, wait: Wait) -> Result<Self, BenchError> {
        if wait == Wait::Spin {
            for end in [&rx, &tx] {
                end.set_nonblocking().map_err(|source| BenchError::Os { call: "fcntl(O_NONBLOCK)", source })?;
            }
        }
        Ok(PipeLink { rx, tx, wait })
    }
}

impl Link for PipeLink {
    const RECV_CALL: &'static str = "read";
    const SEND_CALL: &'static str = "write";

    #[inline]
    fn recv_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.wait == Wait::Block && !self.rx.poll_readable(BLOCK_TIMEOUT)? {
            return Err(ErrorKind::WouldBlock.into());
        }
        self.rx.read(buf)
    }

    /// Blocking or not, a write of one message into a pipe with at most one
    /// other message in it never waits; a gone reader is EPIPE.
    #[inline]
    fn send_some(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.write(buf)
    }
}

/// Round trip of an N-byte message over two pipes, both sides waiting as
/// `wait` says.
pub fn pingpong<const N: usize>(ctx: &RunCtx, wait: Wait) -> Result<Measurement, BenchError> {
    let pipe = || fd::pipe().map_err(|source| BenchError::Os { call: "pipe2", source });
    let (to_pong_rx, to_pong_tx) = pipe()?;
    let (to_ping_rx, to_ping_tx) = pipe()?;
    let ping = Ends::<_, N>::new(PipeLink::new(to_ping_rx, to_pong_tx, wait)?, wait, "pipe");
    let pong = Ends::<_, N>::new(PipeLink::new(to_pong_rx, to_ping_tx, wait)?, wait, "pipe");
    pingpong::run::<N>(ctx, ping, pong)
}
