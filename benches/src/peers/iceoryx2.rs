//! iceoryx2 (zero-copy shared-memory publish-subscribe): ping-pong over two
//! `ipc::Service` publish-subscribe services of `[u8; N]`, one per
//! direction. Each side sends with `loan_uninit → write_payload → send` and
//! busy-polls `receive()`, the way iceoryx2's own ping-pong benchmark does.
//!
//! The ping-pong services are set up as that benchmark sets them up: one
//! publisher and one subscriber each, no history, a subscriber buffer of
//! one sample. The fan-out (scenario `group`) is one service with one
//! publisher and N subscribers, each with its own buffer (safe overflow:
//! a full buffer loses its oldest sample, the publisher never waits).

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;

use crate::error::BenchError;
use crate::fanout::{self, FanRx, FanTx};
use crate::measure::{Measurement, RunCtx};
use crate::pair::Waiter;
use crate::pingpong::{self, PingSide, PongSide};
use crate::wire::{self, Msg, Sink, Source, Template};

/// Tells apart the services of successive runs in this process.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// Maps an iceoryx2 error to [`BenchError::Peer`], naming the call.
pub(super) fn peer<E: Display>(call: &'static str) -> impl FnOnce(E) -> BenchError {
    move |e| BenchError::Peer { call, error: e.to_string() }
}

/// One side's ports: it publishes on one service and subscribes to the
/// other.
struct Side<const N: usize> {
    tx: Publisher<ipc::Service, [u8; N], ()>,
    rx: Subscriber<ipc::Service, [u8; N], ()>,
}

// SAFETY: the ports of `ipc::Service` are !Send only because their local
// state sits behind an `Rc` (iceoryx2's single-threaded policy), and that
// `Rc` is cloned only into the samples the port loans or receives. A `Side`
// is built on the calling thread with no sample outstanding, so each `Rc`
// has exactly one owner, inside the `Side`; the `Side` is then moved whole,
// once, to its benchmark thread before any use, and used and dropped only
// there. No `Rc` is ever touched by two threads. (The node and service
// factories the ports came from are Send + Sync and hold no such `Rc`.)
unsafe impl<const N: usize> Send for Side<N> {}

impl<const N: usize> Side<N> {
    fn new(
        tx: &PortFactory<ipc::Service, [u8; N], ()>,
        rx: &PortFactory<ipc::Service, [u8; N], ()>,
    ) -> Result<Self, BenchError> {
        Ok(Side {
            tx: tx.publisher_builder().create().map_err(peer("iceoryx2 publisher"))?,
            rx: rx.subscriber_builder().create().map_err(peer("iceoryx2 subscriber"))?,
        })
    }

    /// Loans a sample, writes the whole message into it and sends it.
    #[inline]
    fn publish(&self, msg: &[u8; N]) -> Result<(), BenchError> {
        let sample = self.tx.loan_uninit().map_err(peer("iceoryx2 loan"))?;
        sample.write_payload(*msg).send().map_err(peer("iceoryx2 send"))?;
        Ok(())
    }
}

impl<const N: usize> PingSide<N> for Side<N> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        self.publish(msg)
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        loop {
            match self.rx.receive().map_err(peer("iceoryx2 receive"))? {
                Some(reply) => return Ok(wire::word(reply.payload(), 0)),
                None => w.wait()?,
            }
        }
    }
}

impl<const N: usize> PongSide<N> for Side<N> {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        loop {
            match self.rx.receive().map_err(peer("iceoryx2 receive"))? {
                Some(msg) if pingpong::is_stop(msg.payload()) => return Ok(false),
                Some(msg) => {
                    self.publish(msg.payload())?;
                    return Ok(true);
                }
                None => w.wait()?,
            }
        }
    }
}

/// A publish-subscribe service of `[u8; N]` for one publisher and
/// `subscribers` subscribers of `buffer` samples each, no history, a full
/// buffer losing its oldest sample.
fn service<const N: usize>(
    node: &Node<ipc::Service>,
    name: &str,
    subscribers: usize,
    buffer: usize,
) -> Result<PortFactory<ipc::Service, [u8; N], ()>, BenchError> {
    let name = ServiceName::new(name).map_err(peer("iceoryx2 service name"))?;
    node.service_builder(&name)
        .publish_subscribe::<[u8; N]>()
        .max_publishers(1)
        .max_subscribers(subscribers)
        .history_size(0)
        .subscriber_max_buffer_size(buffer)
        .enable_safe_overflow(true)
        .create()
        .map_err(peer("iceoryx2 service"))
}

/// A node of this process and a service-name prefix of its own for this run.
pub(super) fn node() -> Result<(Node<ipc::Service>, String), BenchError> {
    // Errors only, as iceoryx2's own benchmark does: its warning that no
    // config file was found (defaults used) would cut into the progress lines.
    set_log_level(LogLevel::Error);
    let node = NodeBuilder::new()
        // The harness owns the process's signals: Ctrl-C must still stop it.
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .map_err(peer("iceoryx2 node"))?;
    // SYNC: Relaxed; a counter with no data attached: only uniqueness matters.
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    Ok((node, format!("ringflow-bench/{}-{n}", std::process::id())))
}

/// Round trip of an N-byte message over two iceoryx2 services.
pub fn pingpong<const N: usize>(ctx: &RunCtx) -> Result<Measurement, BenchError> {
    let (node, run) = node()?;
    let to_pong = service::<N>(&node, &format!("{run}/ping"), 1, 1)?;
    let to_ping = service::<N>(&node, &format!("{run}/pong"), 1, 1)?;
    let ping = Side::new(&to_pong, &to_ping)?;
    let pong = Side::new(&to_ping, &to_pong)?;
    pingpong::run::<N>(ctx, ping, pong)
}

/// The fan-out's publisher: loans each sample, writes the whole message
/// into it and sends it to every subscriber.
struct FanPublisher {
    tx: Publisher<ipc::Service, [u8; 64], ()>,
    template: Template<64>,
}

impl FanTx for FanPublisher {
    #[inline]
    fn publish(&mut self, msg: Msg, _src: &Source, _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        let sample = self.tx.loan_uninit().map_err(peer("iceoryx2 loan"))?;
        sample.write_payload(msg.to_array(&self.template)).send().map_err(peer("iceoryx2 send"))?;
        Ok(())
    }
}

/// A fan-out subscriber: every sample read in place.
struct FanSubscriber {
    rx: Subscriber<ipc::Service, [u8; 64], ()>,
}

impl FanRx for FanSubscriber {
    #[inline]
    fn drain(&mut self, sink: &mut Sink, max: usize) -> Result<usize, BenchError> {
        for took in 0..max {
            match self.rx.receive().map_err(peer("iceoryx2 receive"))? {
                Some(sample) => {
                    if sink.on_bytes(sample.payload())? {
                        return Ok(took + 1);
                    }
                }
                None => return Ok(took),
            }
        }
        Ok(max)
    }
}

/// Lossy fan-out of 64-byte messages to `subscribers` subscribers of one
/// service, each buffering up to `buffer` samples. Each port is made on
/// the thread that uses it (iceoryx2's ports stay on one thread; the
/// service's factory is Send + Sync).
pub fn fanout(ctx: &RunCtx, subscribers: usize, buffer: usize) -> Result<Measurement, BenchError> {
    let (node, run) = node()?;
    let service = service::<64>(&node, &format!("{run}/fanout"), subscribers, buffer)?;
    let service = &service;
    let make_tx = move || {
        let tx = service.publisher_builder().create().map_err(peer("iceoryx2 publisher"))?;
        Ok(FanPublisher { tx, template: Template::new() })
    };
    let make_rxs = (0..subscribers)
        .map(|_| {
            move || {
                let rx = service.subscriber_builder().create().map_err(peer("iceoryx2 subscriber"))?;
                Ok(FanSubscriber { rx })
            }
        })
        .collect();
    fanout::run_built(ctx, make_tx, make_rxs, true)
}
