//! tokio (async runtime) over TCP loopback, TCP_NODELAY: each side owns a
//! current-thread runtime (one per thread, as a thread-per-core server runs
//! it) and its `TcpStream`. Ping-pong: `write_all` and `read_exact` of one
//! message. Stream: `write_all` of one message per call; the receiver
//! `read`s whatever has arrived and splits it into messages.
//!
//! Each call the harness makes on a side runs one `block_on` (a round trip
//! is two; a stream batch is one), so the futures are tokio's own and only
//! the outermost poll loop is the harness's.
//!
//! A side blocked in tokio does not see the harness's abort flag; it learns
//! that the other side failed when that side's socket closes (end of stream
//! or reset), which happens as soon as the failed side returns.

use std::io::ErrorKind;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::{Builder, Runtime};

use crate::error::BenchError;
use crate::framing::{Frames, RECV_CHUNK};
use crate::measure::{Measurement, RunCtx};
use crate::os::tcp::connect;
use crate::pair::Waiter;
use crate::pingpong::{self, PingSide, PongSide};
use crate::stream::{self, StreamRx, StreamTx};
use crate::wire::{self, Sink, Source, Template};

/// Messages per [`StreamTx::send_batch`] call (one `block_on`).
const BATCH: usize = 32;

/// A tokio I/O error as the harness names it: a closed or reset peer is a
/// disconnect, anything else the call's failure.
fn io_err(call: &'static str, e: std::io::Error) -> BenchError {
    match e.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => {
            BenchError::Disconnected { what: "tokio" }
        }
        _ => BenchError::Peer { call, error: e.to_string() },
    }
}

/// One side's runtime and its end of the connection, registered with that
/// runtime.
struct End {
    rt: Runtime,
    stream: TcpStream,
}

impl End {
    fn new(stream: std::net::TcpStream) -> Result<End, BenchError> {
        let rt = Builder::new_current_thread().enable_io().build().map_err(|e| io_err("runtime::Builder::build", e))?;
        stream.set_nonblocking(true).map_err(|source| BenchError::Os { call: "fcntl(O_NONBLOCK)", source })?;
        let stream = {
            let _in_runtime = rt.enter();
            TcpStream::from_std(stream).map_err(|e| io_err("TcpStream::from_std", e))?
        };
        Ok(End { rt, stream })
    }
}

/// A ping-pong side: where the last message was received.
struct Ends<const N: usize> {
    end: End,
    buf: Box<[u8; N]>,
}

impl<const N: usize> PingSide<N> for Ends<N> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        let End { rt, stream } = &mut self.end;
        rt.block_on(stream.write_all(msg)).map_err(|e| io_err("write_all", e))
    }

    #[inline]
    fn recv(&mut self, _w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        let End { rt, stream } = &mut self.end;
        rt.block_on(stream.read_exact(&mut self.buf[..])).map_err(|e| io_err("read_exact", e))?;
        Ok(wire::word(&self.buf[..], 0))
    }
}

impl<const N: usize> PongSide<N> for Ends<N> {
    #[inline]
    fn echo(&mut self, _w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let End { rt, stream } = &mut self.end;
        let buf = &mut self.buf[..];
        rt.block_on(async {
            stream.read_exact(buf).await.map_err(|e| io_err("read_exact", e))?;
            if pingpong::is_stop(buf) {
                return Ok(false);
            }
            stream.write_all(buf).await.map_err(|e| io_err("write_all", e))?;
            Ok(true)
        })
    }
}

/// The two sides of a round trip of an N-byte message over TCP loopback
/// through tokio, for a driver that runs them in turns with other
/// transports (scenario `remote`, `remote::pingpong_turns`).
pub(crate) fn pingpong_sides<const N: usize>() -> Result<(impl PingSide<N>, impl PongSide<N>), BenchError> {
    let (client, server) = connect()?;
    let ping = Ends::<N> { end: End::new(client)?, buf: Box::new([0; N]) };
    let pong = Ends::<N> { end: End::new(server)?, buf: Box::new([0; N]) };
    Ok((ping, pong))
}

struct Tx<const N: usize> {
    end: End,
    template: Template<N>,
    /// Where each message is written before it is sent.
    msg: Box<[u8]>,
}

impl<const N: usize> StreamTx for Tx<N> {
    #[inline]
    fn send_batch(&mut self, src: &mut Source, _w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let Tx { end: End { rt, stream }, template, msg } = self;
        rt.block_on(async {
            for _ in 0..BATCH {
                let header = src.next_msg();
                header.write(msg, template.bytes());
                stream.write_all(msg).await.map_err(|e| io_err("write_all", e))?;
                if header.ends_turn() {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }
}

struct Rx<const N: usize> {
    end: End,
    frames: Frames<N>,
}

impl<const N: usize> StreamRx for Rx<N> {
    #[inline]
    fn recv_batch(&mut self, sink: &mut Sink, _w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let End { rt, stream } = &mut self.end;
        match rt.block_on(stream.read(self.frames.spare())).map_err(|e| io_err("read", e))? {
            0 => Err(BenchError::Disconnected { what: "tokio" }),
            n => self.frames.take(n, sink),
        }
    }
}

/// One-way stream of N-byte messages over TCP loopback through tokio.
pub fn stream<const N: usize>(ctx: &RunCtx) -> Result<Measurement, BenchError> {
    let (client, server) = connect()?;
    let tx = Tx::<N> { end: End::new(client)?, template: Template::new(), msg: vec![0; N].into_boxed_slice() };
    let rx = Rx::<N> { end: End::new(server)?, frames: Frames::new(RECV_CHUNK) };
    stream::run(ctx, tx, rx)
}

#[cfg(test)]
mod tests {

    use super::*;

    /// Ping-pong and both stream sizes complete and stop cleanly.
    #[test]
    fn tokio_round_trips_and_streams() {
        let (ping, pong) = pingpong_sides::<64>().expect("sides");
        let m = pingpong::run::<64>(&RunCtx::for_tests(), ping, pong).expect("pingpong");
        assert!(m.msgs > 0);
        for (size, m) in
            [("64B", stream::<64>(&RunCtx::for_tests())), ("64KiB", stream::<{ 64 << 10 }>(&RunCtx::for_tests()))]
        {
            let m = m.unwrap_or_else(|e| panic!("{size}: {e}"));
            assert!(m.msgs > 0 && !m.hist.is_empty(), "{size}");
        }
    }

    /// A side whose peer is gone fails as a disconnect instead of waiting.
    #[test]
    fn a_closed_peer_is_a_disconnect() {
        let (client, server) = connect().expect("connect");
        drop(server);
        let mut ping = Ends::<64> { end: End::new(client).expect("end"), buf: Box::new([0; 64]) };
        let r = crate::pair::run_pair(&RunCtx::for_tests(), |w| PingSide::<64>::recv(&mut ping, w), |_| Ok(()));
        assert!(matches!(r, Err(BenchError::Disconnected { what: "tokio" })), "{r:?}");
    }
}
