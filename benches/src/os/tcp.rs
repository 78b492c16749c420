//! `tcp`: ping-pong or a one-way stream over one TCP connection on loopback
//! (127.0.0.1), with TCP_NODELAY on both ends so no message waits for
//! Nagle's algorithm.
//!
//! The connection is set up with `std::net` (bind to port 0, connect,
//! accept); from then on the sockets are driven with the same `recv`/`send`
//! calls as the Unix sockets.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;

use super::link::{Ends, SocketLink};
use super::{oneway, Wait};
use crate::error::BenchError;
use crate::measure::{Measurement, RunCtx};
use crate::{pingpong, stream};

/// The two ends of a fresh loopback connection, Nagle off.
pub(crate) fn connect() -> Result<(TcpStream, TcpStream), BenchError> {
    let os = |call| move |source| BenchError::Os { call, source };
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(os("bind(127.0.0.1:0)"))?;
    let addr = listener.local_addr().map_err(os("getsockname"))?;
    let client = TcpStream::connect(addr).map_err(os("connect(127.0.0.1)"))?;
    let (server, _) = listener.accept().map_err(os("accept"))?;
    for end in [&client, &server] {
        end.set_nodelay(true).map_err(os("setsockopt(TCP_NODELAY)"))?;
    }
    Ok((client, server))
}

/// The two sides of [`pingpong`] over a fresh connection, for a driver
/// that runs them in turns with other transports.
pub(crate) fn pingpong_sides<const N: usize>(
    wait: Wait,
) -> Result<(impl pingpong::PingSide<N>, impl pingpong::PongSide<N>), BenchError> {
    let (client, server) = connect()?;
    let ping = Ends::<_, N>::new(SocketLink::new(OwnedFd::from(client).into(), wait)?, wait, "tcp");
    let pong = Ends::<_, N>::new(SocketLink::new(OwnedFd::from(server).into(), wait)?, wait, "tcp");
    Ok((ping, pong))
}

/// Round trip of an N-byte message over TCP loopback, both sides waiting as
/// `wait` says.
pub fn pingpong<const N: usize>(ctx: &RunCtx, wait: Wait) -> Result<Measurement, BenchError> {
    let (client, server) = connect()?;
    let ping = Ends::<_, N>::new(SocketLink::new(OwnedFd::from(client).into(), wait)?, wait, "tcp");
    let pong = Ends::<_, N>::new(SocketLink::new(OwnedFd::from(server).into(), wait)?, wait, "tcp");
    pingpong::run::<N>(ctx, ping, pong)
}

/// One-way stream of N-byte messages over TCP loopback: one write per
/// message, the receiver reads large chunks; both wait as `wait` says.
pub fn stream<const N: usize>(ctx: &RunCtx, wait: Wait) -> Result<Measurement, BenchError> {
    let (client, server) = connect()?;
    let tx = oneway::Tx::<_, N>::new(SocketLink::new(OwnedFd::from(client).into(), wait)?, wait, "tcp");
    let rx = oneway::Rx::<_, N>::new(SocketLink::new(OwnedFd::from(server).into(), wait)?, wait, "tcp");
    stream::run(ctx, tx, rx)
}
