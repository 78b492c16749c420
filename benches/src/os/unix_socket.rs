//! `unix-socket`: ping-pong over a connected pair of Unix stream sockets
//! (`socketpair(AF_UNIX, SOCK_STREAM)`), one socket per side.

use super::fd;
use super::link::{Ends, SocketLink};
use super::Wait;
use crate::error::BenchError;
use crate::measure::{Measurement, RunCtx};
use crate::pingpong;

/// Round trip of an N-byte message over a Unix socket pair, both sides
/// waiting as `wait` says.
pub fn pingpong<const N: usize>(ctx: &RunCtx, wait: Wait) -> Result<Measurement, BenchError> {
    let (a, b) = fd::unix_socketpair().map_err(|source| BenchError::Os { call: "socketpair(AF_UNIX)", source })?;
    let ping = Ends::<_, N>::new(SocketLink::new(a, wait)?, wait, "unix-socket");
    let pong = Ends::<_, N>::new(SocketLink::new(b, wait)?, wait, "unix-socket");
    pingpong::run::<N>(ctx, ping, pong)
}
