//! Ping-pong through async APIs, both ends on tokio current-thread runtimes
//! (one per side, each side on its own pinned thread, as a thread-per-core
//! server runs them): ringflow's [`AsyncFlow`] (woken through the flow's
//! readiness descriptor) against tokio's own `UnixStream` (a socketpair),
//! taking turns in one run (`pingpong::run_alternating`).
//!
//! Each call the harness makes on a side runs one `block_on` (a round trip
//! is two on the ping side, one on the pong side), so the futures are the
//! libraries' own and only the outermost poll loop is the harness's. A side
//! blocked in tokio does not see the harness's abort flag; it learns that
//! the other side failed when that side's ends close.

use std::os::unix::net::UnixStream as StdUnixStream;

use ringflow_api::{AsyncFlow, Flow, Qos, RecvError, SendError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::runtime::{Builder, Runtime};

use crate::error::BenchError;
use crate::measure::{Measurement, RunCtx};
use crate::pair::Waiter;
use crate::pingpong::{self, Either, PingSide, PongSide};
use crate::wire;

/// The names of the two variants, in the order measured.
pub const NAMES: &[&str] = &["ringflow-async", "tokio-uds"];

fn runtime() -> Result<Runtime, BenchError> {
    Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| BenchError::Peer { call: "runtime::Builder::build", error: e.to_string() })
}

fn sent(call: &'static str, e: SendError) -> BenchError {
    match e {
        SendError::Closed | SendError::PeerGone { .. } => BenchError::Disconnected { what: "ringflow-async" },
        e => BenchError::Peer { call, error: e.to_string() },
    }
}

fn received(call: &'static str, e: RecvError) -> BenchError {
    match e {
        RecvError::Closed | RecvError::PeerGone { .. } => BenchError::Disconnected { what: "ringflow-async" },
        e => BenchError::Peer { call, error: e.to_string() },
    }
}

/// One side of a flow: its end, registered with its runtime. (The end is
/// declared first, so it leaves the reactor before the runtime goes.)
struct FlowSide<const N: usize> {
    flow: AsyncFlow,
    rt: Runtime,
    buf: Box<[u8; N]>,
}

impl<const N: usize> FlowSide<N> {
    fn new(flow: Flow) -> Result<Self, BenchError> {
        let rt = runtime()?;
        let flow = {
            let _in_runtime = rt.enter();
            AsyncFlow::new(flow).map_err(|e| BenchError::Peer { call: "AsyncFlow::new", error: e.to_string() })?
        };
        Ok(FlowSide { flow, rt, buf: Box::new([0; N]) })
    }
}

impl<const N: usize> PingSide<N> for FlowSide<N> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        self.rt.block_on(self.flow.send(msg)).map_err(|e| sent("AsyncFlow::send", e))
    }

    #[inline]
    fn recv(&mut self, _w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        let FlowSide { flow, rt, buf } = self;
        let n = rt.block_on(flow.recv_into(&mut buf[..])).map_err(|e| received("AsyncFlow::recv_into", e))?;
        if n != N {
            return Err(BenchError::Peer { call: "AsyncFlow::recv_into", error: format!("{n} bytes, not {N}") });
        }
        Ok(wire::word(&buf[..], 0))
    }
}

impl<const N: usize> PongSide<N> for FlowSide<N> {
    #[inline]
    fn echo(&mut self, _w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let FlowSide { flow, rt, buf } = self;
        rt.block_on(async {
            let n = flow.recv_into(&mut buf[..]).await.map_err(|e| received("AsyncFlow::recv_into", e))?;
            if pingpong::is_stop(&buf[..n]) {
                return Ok(false);
            }
            flow.send(&buf[..n]).await.map_err(|e| sent("AsyncFlow::send", e))?;
            Ok(true)
        })
    }
}

fn io_err(call: &'static str, e: std::io::Error) -> BenchError {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => {
            BenchError::Disconnected { what: "tokio-uds" }
        }
        _ => BenchError::Peer { call, error: e.to_string() },
    }
}

/// One side of a Unix socket pair, registered with its runtime.
struct UdsSide<const N: usize> {
    stream: UnixStream,
    rt: Runtime,
    buf: Box<[u8; N]>,
}

impl<const N: usize> UdsSide<N> {
    fn new(stream: StdUnixStream) -> Result<Self, BenchError> {
        let rt = runtime()?;
        stream.set_nonblocking(true).map_err(|source| BenchError::Os { call: "fcntl(O_NONBLOCK)", source })?;
        let stream = {
            let _in_runtime = rt.enter();
            UnixStream::from_std(stream).map_err(|e| io_err("UnixStream::from_std", e))?
        };
        Ok(UdsSide { stream, rt, buf: Box::new([0; N]) })
    }
}

impl<const N: usize> PingSide<N> for UdsSide<N> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        self.rt.block_on(self.stream.write_all(msg)).map_err(|e| io_err("write_all", e))
    }

    #[inline]
    fn recv(&mut self, _w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        let UdsSide { stream, rt, buf } = self;
        rt.block_on(stream.read_exact(&mut buf[..])).map_err(|e| io_err("read_exact", e))?;
        Ok(wire::word(&buf[..], 0))
    }
}

impl<const N: usize> PongSide<N> for UdsSide<N> {
    #[inline]
    fn echo(&mut self, _w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let UdsSide { stream, rt, buf } = self;
        rt.block_on(async {
            stream.read_exact(&mut buf[..]).await.map_err(|e| io_err("read_exact", e))?;
            if pingpong::is_stop(&buf[..]) {
                return Ok(false);
            }
            stream.write_all(&buf[..]).await.map_err(|e| io_err("write_all", e))?;
            Ok(true)
        })
    }
}

/// Round trips of an N-byte message: ringflow's async flow and tokio's
/// Unix socket, alternating block by block ([`NAMES`] order).
pub fn pingpong<const N: usize>(ctx: &RunCtx) -> Result<Vec<Measurement>, BenchError> {
    let (a, b) = Flow::pair(&Qos::data()).map_err(|e| BenchError::Peer { call: "Flow::pair", error: e.to_string() })?;
    let (c, d) = StdUnixStream::pair().map_err(|source| BenchError::Os { call: "socketpair", source })?;
    let pings = vec![Either::Left(FlowSide::<N>::new(a)?), Either::Right(UdsSide::<N>::new(c)?)];
    let pongs = vec![Either::Left(FlowSide::<N>::new(b)?), Either::Right(UdsSide::<N>::new(d)?)];
    pingpong::run_alternating::<N, _, _>(ctx, pings, pongs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both variants complete round trips and stop cleanly.
    #[test]
    fn both_variants_round_trip() {
        ringflow_testkit::isolate_runtime_dir();
        let m = pingpong::<64>(&RunCtx::for_tests()).expect("pingpong");
        assert_eq!(m.len(), NAMES.len());
        assert!(m.iter().all(|m| m.msgs > 0 && !m.hist.is_empty()));
    }

    /// A side whose peer is gone fails as a disconnect instead of waiting.
    #[test]
    fn a_closed_peer_is_a_disconnect() {
        ringflow_testkit::isolate_runtime_dir();
        let (a, b) = Flow::pair(&Qos::data()).expect("pair");
        drop(b);
        let mut ping = FlowSide::<64>::new(a).expect("side");
        let r = crate::pair::run_pair(&RunCtx::for_tests(), |w| PingSide::<64>::recv(&mut ping, w), |_| Ok(()));
        assert!(matches!(r, Err(BenchError::Disconnected { what: "ringflow-async" })), "{r:?}");
    }
}
