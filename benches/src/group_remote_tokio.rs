//! Scenario `group-remote`'s `tokio` fan-out: what one would do without a
//! group that crosses hosts, one TCP connection per receiving host
//! (TCP_NODELAY, loopback) and every message written to each in turn.
//! Each side owns a current-thread runtime and its connections, as in
//! `peers/tokio.rs`; a publish is one `block_on` writing the message whole
//! to every connection, a subscriber's drain one `block_on` reading what
//! has arrived (as the stream's receiver does).

use std::io::ErrorKind;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::{Builder, Runtime};

use crate::error::BenchError;
use crate::fanout::{FanRx, FanTx};
use crate::framing::Frames;
use crate::os::tcp::connect;
use crate::pair::Waiter;
use crate::wire::{Msg, Sink, Source, Template};

/// A tokio I/O error as the harness names it (see `peers/tokio.rs`).
fn io_err(call: &'static str, e: std::io::Error) -> BenchError {
    match e.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => {
            BenchError::Disconnected { what: "tokio" }
        }
        _ => BenchError::Peer { call, error: e.to_string() },
    }
}

fn runtime() -> Result<Runtime, BenchError> {
    Builder::new_current_thread().enable_io().build().map_err(|e| io_err("runtime::Builder::build", e))
}

/// `stream` registered with `rt`.
fn register(rt: &Runtime, stream: std::net::TcpStream) -> Result<TcpStream, BenchError> {
    stream.set_nonblocking(true).map_err(|source| BenchError::Os { call: "fcntl(O_NONBLOCK)", source })?;
    let _in_runtime = rt.enter();
    TcpStream::from_std(stream).map_err(|e| io_err("TcpStream::from_std", e))
}

/// The publisher: a connection to each receiving host.
pub(crate) struct Tx {
    rt: Runtime,
    hosts: Vec<TcpStream>,
    template: Template<64>,
}

impl FanTx for Tx {
    #[inline]
    fn publish(&mut self, msg: Msg, _src: &Source, _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        let bytes = msg.to_array(&self.template);
        let Tx { rt, hosts, .. } = self;
        rt.block_on(async {
            for host in hosts.iter_mut() {
                host.write_all(&bytes).await.map_err(|e| io_err("write_all", e))?;
            }
            Ok(())
        })
    }
}

/// A receiving host.
pub(crate) struct Rx {
    rt: Runtime,
    stream: TcpStream,
    frames: Frames<64>,
}

impl FanRx for Rx {
    #[inline]
    fn drain(&mut self, sink: &mut Sink, max: usize) -> Result<usize, BenchError> {
        let Rx { rt, stream, frames } = self;
        let spare = frames.spare();
        let room = spare.len().min(max * 64);
        match rt.block_on(stream.read(&mut spare[..room])).map_err(|e| io_err("read", e))? {
            0 => Err(BenchError::Disconnected { what: "tokio" }),
            n => {
                frames.take(n, sink)?;
                // Messages completed by this read, at least one: what the
                // driver counts to decide whether the queue was emptied.
                Ok(n.div_ceil(64).min(max))
            }
        }
    }
}

/// The publisher and `hosts` receivers, each on a connection of its own.
pub(crate) fn fanout_sides(hosts: usize) -> Result<(Tx, Vec<Rx>), BenchError> {
    let rt = runtime()?;
    let mut out = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..hosts {
        let (client, server) = connect()?;
        out.push(register(&rt, client)?);
        let rx_rt = runtime()?;
        let stream = register(&rx_rt, server)?;
        rxs.push(Rx { rt: rx_rt, stream, frames: Frames::new(crate::framing::RECV_CHUNK) });
    }
    Ok((Tx { rt, hosts: out, template: Template::new() }, rxs))
}
