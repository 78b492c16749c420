//! The ringflow impls of scenario `remote`: a flow between two engines
//! ([`RemoteEngine`]) over TCP loopback, one engine per pinned thread, as two
//! hosts would run it. Side B binds a listener and starts the listening
//! engine, side A starts its own and allocates `bench@127.0.0.1:port`; the
//! application ends are ordinary flows, used through the public API as in
//! scenario `flow`.
//!
//! Each side is built on its own pinned thread
//! ([`pingpong::run_built_alternating`], [`stream::run_built`]): in invoker
//! mode that thread runs its engine, so the engine must be made there. A
//! case's ping-pong impls take turns in one run, kernel TCP and tokio
//! included. Neither set-up nor teardown is ever measured (side A's first
//! message, [`READY`], ends the set-up), and a side never drops its engine
//! while its last message may still be on its way (see [`End`]'s `Drop`).

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringflow_api::remote::RemoteEngine;
use ringflow_api::{Flow, Listener, ListenerOptions, Qos, RecvError, SendBuf, SendError};
use ringflow_core::config::{EngineConfig, IdleStrategy, ThreadingMode};

use crate::error::BenchError;
use crate::flow::{echo_with, err, recv_with, DirGuard};
use crate::measure::{Measurement, RunCtx};
use crate::os::{check_after_timeout, Wait, BLOCK_TIMEOUT};
use crate::pair::Waiter;
use crate::pingpong::{self, PingSide, PongSide};
use crate::stream::{self, StreamRx, StreamTx};
use crate::wire::{word, Sink, Source, Template};

/// The listener's name on side B.
const NAME: &str = "bench";
/// The longest set-up step (engine start, alloc, accept) may take.
const SETUP: Duration = Duration::from_secs(10);
/// How long the side that sent the last message waits for the other side
/// to hang up before it stops its engine anyway.
const LINGER: Duration = Duration::from_secs(5);
/// How long a stopping engine may take to flush what is in flight (the
/// other side's acknowledgements, this side's `Close`).
const FLUSH: Duration = Duration::from_secs(2);
/// What side A sends once its flows are open, before anything measured.
const READY: &[u8] = b"ready";
/// The QoS of the flows a case opens beside the measured one: reliable,
/// as the measured one, with the smallest rings (they carry nothing).
const IDLE_QOS: Qos = Qos::data().with_ring_bytes(4 << 10).with_max_msg(64);
/// Messages per stream batch, as in scenario `flow`.
const BATCH: usize = 32;

/// How the application's threads wait. In invoker mode their calls run the
/// engine, so they busy-poll the `try_` forms (one busy thread per core).
/// In dedicated mode the engine threads share the two cores with them (an
/// engine thread inherits its side's pinning), so they block and leave the
/// core to the engine.
fn wait_for(mode: ThreadingMode) -> Wait {
    match mode {
        ThreadingMode::Invoker => Wait::Spin,
        ThreadingMode::Dedicated => Wait::Block,
    }
}

/// One engine's configuration: `mode`, listening at `listen` if given. A
/// dedicated engine thread backs off and parks (at most 50 us, so an idle
/// engine notices new work soon), never spins: two cores are all there is.
fn engine_config(mode: ThreadingMode, listen: Option<&str>, key: Option<&KeyFile>) -> Result<EngineConfig, BenchError> {
    let builder = EngineConfig::builder().mode(mode).listen(listen).key_file(key.map(KeyFile::path));
    let builder = match mode {
        ThreadingMode::Dedicated => {
            builder.idle(IdleStrategy::Backoff { spins: 100, yields: 10, park: Duration::from_micros(50) })
        }
        // Each side drives its engine from the one thread that started it:
        // the single-issuer ring with deferred task run is allowed.
        ThreadingMode::Invoker => builder.single_issuer(true).defer_taskrun(true),
    };
    let mut config = builder.build().map_err(|e| err("EngineConfig::build", e))?;
    // The host's RINGFLOW_IO_URING_* / RINGFLOW_FLOW_* / RINGFLOW_NET_BACKEND
    // overrides apply, so `ringflow bench remote` measures them (tuning.md);
    // the engine's mode, threads and addresses stay the scenario's.
    let vars = ringflow_core::config::process_vars().map_err(|e| err("RINGFLOW_* variables", e))?;
    let tuning = vars.into_iter().filter(|(k, _)| {
        k.starts_with("RINGFLOW_IO_URING_") || k.starts_with("RINGFLOW_FLOW_") || k == "RINGFLOW_NET_BACKEND"
    });
    config.apply_env(tuning).map_err(|e| err("RINGFLOW_* variables", e))?;
    Ok(config)
}

/// Whether the two engines share a key (`net.key_file`): the `-key` impls
/// measure what proving it costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// No key.
    None,
    /// Both engines hold the same fresh key.
    Key,
}

/// A fresh key in a file only this user can read, removed on drop.
struct KeyFile {
    path: std::path::PathBuf,
    _dir: DirGuard,
}

impl KeyFile {
    fn new() -> Result<KeyFile, BenchError> {
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let dir = DirGuard::new();
        let made = std::fs::DirBuilder::new().mode(0o700).create(dir.path()).map_err(|e| err("mkdir (key)", e));
        made?;
        let random = |_| ringflow_core::remote::random_nonce().map_err(|e| err("getrandom", e));
        let bytes: Vec<u8> = (0..2).map(random).collect::<Result<Vec<_>, _>>()?.concat();
        let path = dir.path().join("key");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| err("create (key)", e))?;
        file.write_all(&bytes).map_err(|e| err("write (key)", e))?;
        Ok(KeyFile { path, _dir: dir })
    }

    fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// One side: its end of the flow and everything that carries it. Fields
/// drop in order: the flow closes before its engine stops, so the engine
/// still tells the other side.
pub(crate) struct End {
    flow: Flow,
    wait: Wait,
    /// This side sent the stop message: on drop, it waits (at most
    /// [`LINGER`]) for the other side to hang up, so its engine still runs
    /// until the stop message is through.
    sent_stop: bool,
    /// Flows opened beside the measured one and never used (the cases
    /// that show an engine's cost with many flows open); closed before
    /// the engine stops.
    _idle: Vec<Flow>,
    _engine: Stopping,
    /// Side B's listener and its runtime directory.
    _listener: Option<(Listener, DirGuard)>,
}

impl Drop for End {
    fn drop(&mut self) {
        // Once the other side has hung up, having read everything, this
        // side's engine has nothing left to flush.
        if self.sent_stop && self.linger() {
            self._engine.flush = Duration::ZERO;
        }
    }
}

/// An engine that runs while its flow does (in invoker mode, inside the
/// flow's calls) and on drop flushes (within `flush`) and stops.
struct Stopping {
    engine: Option<RemoteEngine>,
    flush: Duration,
}

impl Drop for Stopping {
    fn drop(&mut self) {
        // Stopped explicitly, never dropped running: a running engine's drop
        // locks stderr, which `ringflow bench` holds while the benchmark
        // threads run, so that drop would never return. An error at teardown
        // changes no figure, and a drop has nobody to tell.
        if let Some(engine) = self.engine.take() {
            let _ = engine.shutdown_within(self.flush);
        }
    }
}

impl End {
    /// Waits, at most [`LINGER`], for the other side to hang up, which it
    /// does once it has the stop message: its flow closes, its engine
    /// closes the remote flow, ours ends this flow. Returns whether it did.
    fn linger(&mut self) -> bool {
        let until = Instant::now() + LINGER;
        while Instant::now() < until {
            match self.flow.recv_ref_timeout(BLOCK_TIMEOUT) {
                Ok(_) | Err(RecvError::WouldBlock | RecvError::TimedOut) => {}
                Err(RecvError::Closed) => return true,
                Err(_) => return false,
            }
        }
        false
    }
}

/// Sends `msg`, waiting as `wait` says while the flow is full; `retry` runs
/// before each new attempt (to renew a timestamp).
#[inline]
fn send_with(
    flow: &mut Flow,
    wait: Wait,
    msg: &mut [u8],
    w: &mut Waiter<'_>,
    mut retry: impl FnMut(&mut [u8]),
) -> Result<(), BenchError> {
    loop {
        let r = match wait {
            Wait::Spin => flow.try_send(msg),
            Wait::Block => flow.send_timeout(msg, BLOCK_TIMEOUT),
        };
        match r {
            Ok(()) => return Ok(()),
            Err(SendError::WouldBlock) => w.wait()?,
            Err(SendError::TimedOut) => check_after_timeout(w)?,
            Err(e) => return Err(err("Flow::send", e)),
        }
        retry(msg);
    }
}

/// The two sides' builders: side A (allocating) and side B (listening),
/// each run on its own thread; B tells A its engine's address.
/// `idle` more flows are opened after the measured one (with the smallest
/// rings: they carry nothing) and kept open, unused, while it runs.
pub(crate) fn builders(
    mode: ThreadingMode,
    qos: Qos,
    auth: Auth,
    idle: usize,
) -> (impl FnOnce() -> Result<End, BenchError> + Send, impl FnOnce() -> Result<End, BenchError> + Send) {
    let (addr_tx, addr_rx) = mpsc::channel::<SocketAddr>();
    let wait = wait_for(mode);
    // Made here, before either side runs; each engine reads it as it starts.
    let key: Result<Option<std::sync::Arc<KeyFile>>, String> = match auth {
        Auth::Key => KeyFile::new().map(|k| Some(std::sync::Arc::new(k))).map_err(|e| e.to_string()),
        Auth::None => Ok(None),
    };
    let key_b = key.clone();
    let alloc = move || {
        // B gone before it said where: B's own error is the one reported.
        let addr = addr_rx.recv().map_err(|_| BenchError::Aborted)?;
        let key = key.map_err(|e| err("key file", e))?;
        let config = engine_config(mode, None, key.as_deref())?;
        let engine = RemoteEngine::start(&config, None).map_err(|e| err("RemoteEngine::start", e))?;
        let ((flow, idle), engine) = set_up(engine, |engine| {
            let alloc = |qos: &Qos| {
                engine.alloc_timeout(&format!("{NAME}@{addr}"), qos, SETUP).map_err(|e| err("RemoteEngine::alloc", e))
            };
            let mut flow = alloc(&qos)?;
            let idle = (0..idle).map(|_| alloc(&IDLE_QOS)).collect::<Result<Vec<_>, _>>()?;
            // Every open answered: B may stop driving its engine for them.
            flow.send_timeout(READY, SETUP).map_err(|e| err("Flow::send (ready)", e))?;
            Ok((flow, idle))
        })?;
        Ok(End { flow, wait, sent_stop: false, _idle: idle, _engine: engine, _listener: None })
    };
    let accept = move || {
        let dir = DirGuard::new();
        let key = key_b.map_err(|e| err("key file", e))?;
        let config = engine_config(mode, Some("127.0.0.1:0"), key.as_deref())?;
        let engine =
            RemoteEngine::start(&config, Some(dir.path().to_path_buf())).map_err(|e| err("RemoteEngine::start", e))?;
        // Told of its engine: in invoker mode the accept drives it.
        let opts = ListenerOptions::new().remote(true).runtime_dir(dir.path()).engine(&engine);
        let mut listener = match Listener::bind_with(NAME, opts) {
            Ok(l) => l,
            Err(e) => {
                let _ = engine.shutdown();
                return Err(err("Listener::bind", e));
            }
        };
        let ((flow, idle), engine) = set_up(engine, |engine| {
            let addr =
                engine.listen_addr().ok_or_else(|| err("RemoteEngine::listen_addr", "the engine does not listen"))?;
            addr_tx.send(addr).map_err(|_| BenchError::Aborted)?;
            let mut accept = || listener.accept_timeout(SETUP).map_err(|e| err("Listener::accept", e));
            let mut flow = accept()?;
            let idle = (0..idle).map(|_| accept()).collect::<Result<Vec<_>, _>>()?;
            // Drives this engine until A has the answers to all its opens
            // (in invoker mode nothing else would, should this thread build
            // another transport next).
            let ready = flow.recv_ref_timeout(SETUP).map_err(|e| err("Flow::recv (ready)", e))?;
            if &*ready != READY {
                return Err(err("Flow::recv (ready)", "the first message is not the set-up's"));
            }
            drop(ready);
            Ok((flow, idle))
        })?;
        Ok(End { flow, wait, sent_stop: false, _idle: idle, _engine: engine, _listener: Some((listener, dir)) })
    };
    (alloc, accept)
}

/// Runs the rest of a side's set-up with its started `engine`, which is
/// stopped (see [`Stopping`]) if that fails.
fn set_up<T>(
    engine: RemoteEngine,
    rest: impl FnOnce(&RemoteEngine) -> Result<T, BenchError>,
) -> Result<(T, Stopping), BenchError> {
    let done = rest(&engine);
    let engine = Stopping { engine: Some(engine), flush: FLUSH };
    done.map(|t| (t, engine))
}

impl<const N: usize> PingSide<N> for End {
    #[inline]
    fn send(&mut self, msg: &[u8; N], w: &mut Waiter<'_>) -> Result<(), BenchError> {
        let mut copy = *msg;
        send_with(&mut self.flow, self.wait, &mut copy, w, |_| {})?;
        self.sent_stop = pingpong::is_stop(msg);
        Ok(())
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        recv_with(&mut self.flow, self.wait, w, |m| word(m, 0))
    }
}

impl<const N: usize> PongSide<N> for End {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let wait = self.wait;
        echo_with::<N>(&mut self.flow, wait, w, |flow, copy, w| send_with(flow, wait, copy, w, |_| {}))
    }
}

/// Round trip of an N-byte message between two engines running in `mode`
/// (the impls of the scenario take turns: [`pingpong_turns`]).
#[cfg(test)]
fn pingpong<const N: usize>(ctx: &RunCtx, mode: ThreadingMode, auth: Auth) -> Result<Measurement, BenchError> {
    let (alloc, accept) = builders(mode, Qos::data(), auth, 0);
    pingpong::run_built::<N, End, End>(ctx, alloc, accept)
}

/// Case `pingpong-64B`'s impls taking turns every `pingpong::BLOCK` round
/// trips in one run, so that their ratios are taken under the same moods
/// of the machine: kernel TCP busy-polled (`tcp-spin`), ringflow without
/// and with a key, blocking TCP, and tokio when built in; one measurement
/// each, in that order.
pub fn pingpong_turns<const N: usize>(ctx: &RunCtx, mode: ThreadingMode) -> Result<Vec<Measurement>, BenchError> {
    use crate::pingpong::{PingSide as P, PongSide as Q};
    let (spin_ping, spin_pong) = crate::os::tcp::pingpong_sides::<N>(Wait::Spin)?;
    let (block_ping, block_pong) = crate::os::tcp::pingpong_sides::<N>(Wait::Block)?;
    #[cfg(feature = "peers")]
    let (tokio_ping, tokio_pong) = crate::peers::tokio::pingpong_sides::<N>().map(|(p, q)| (Some(p), Some(q)))?;
    #[cfg(not(feature = "peers"))]
    let (tokio_ping, tokio_pong): (Option<End>, Option<End>) = (None, None);
    let turns = 4 + usize::from(tokio_ping.is_some());
    let (alloc, accept) = builders(mode, Qos::data(), Auth::None, 0);
    let (alloc_key, accept_key) = builders(mode, Qos::data(), Auth::Key, 0);
    let make_pings = move || -> Result<Vec<Box<dyn P<N>>>, BenchError> {
        let mut sides: Vec<Box<dyn P<N>>> =
            vec![Box::new(spin_ping), Box::new(alloc()?), Box::new(alloc_key()?), Box::new(block_ping)];
        sides.extend(tokio_ping.map(|t| Box::new(t) as Box<dyn P<N>>));
        Ok(sides)
    };
    let make_pongs = move || -> Result<Vec<Box<dyn Q<N>>>, BenchError> {
        let mut sides: Vec<Box<dyn Q<N>>> =
            vec![Box::new(spin_pong), Box::new(accept()?), Box::new(accept_key()?), Box::new(block_pong)];
        sides.extend(tokio_pong.map(|t| Box::new(t) as Box<dyn Q<N>>));
        Ok(sides)
    };
    pingpong::run_built_alternating::<N, _, _>(ctx, turns, make_pings, make_pongs)
}

/// Case `pingpong-64B-x1000`'s impls taking turns in one run: one flow
/// alone between two engines, and one flow among `idle + 1` between two
/// other engines (the others opened after it and never used): what the
/// silent flows cost the one that carries.
pub fn pingpong_among_turns<const N: usize>(
    ctx: &RunCtx,
    mode: ThreadingMode,
    idle: usize,
) -> Result<Vec<Measurement>, BenchError> {
    let (alloc, accept) = builders(mode, Qos::data(), Auth::None, 0);
    let (alloc_many, accept_many) = builders(mode, Qos::data(), Auth::None, idle);
    let make_pings = move || Ok(vec![alloc()?, alloc_many()?]);
    let make_pongs = move || Ok(vec![accept()?, accept_many()?]);
    pingpong::run_built_alternating::<N, End, End>(ctx, 2, make_pings, make_pongs)
}

impl crate::rpc::Holds for End {
    #[inline]
    fn flow(&mut self) -> &mut Flow {
        &mut self.flow
    }

    fn sent_stop(&mut self) {
        self.sent_stop = true;
    }
}

/// Case `call-64B-remote`'s impls (scenario `rpc`) taking turns every
/// `pingpong::BLOCK` round trips in one run: kernel TCP busy-polled
/// (`tcp-spin`), a call over a remote flow (`ringflow`), and a ping-pong
/// over another remote flow (`flow-pingpong`); one measurement each, in
/// that order.
pub fn call_turns<const N: usize>(ctx: &RunCtx, mode: ThreadingMode) -> Result<Vec<Measurement>, BenchError> {
    use crate::pingpong::{PingSide as P, PongSide as Q};
    use crate::rpc::{Client, Server};
    let (spin_ping, spin_pong) = crate::os::tcp::pingpong_sides::<N>(Wait::Spin)?;
    let (alloc_call, accept_call) = builders(mode, Qos::data(), Auth::None, 0);
    let (alloc, accept) = builders(mode, Qos::data(), Auth::None, 0);
    let wait = wait_for(mode);
    let make_pings = move || -> Result<Vec<Box<dyn P<N>>>, BenchError> {
        let client = Client::<N, End>::new(alloc_call()?, wait);
        Ok(vec![Box::new(spin_ping), Box::new(client), Box::new(alloc()?)])
    };
    let make_pongs = move || -> Result<Vec<Box<dyn Q<N>>>, BenchError> {
        let server = Server::<N, End>::new(accept_call()?, wait);
        Ok(vec![Box::new(spin_pong), Box::new(server), Box::new(accept()?)])
    };
    pingpong::run_built_alternating::<N, _, _>(ctx, 3, make_pings, make_pongs)
}

struct Tx<const N: usize> {
    end: End,
    template: Template<N>,
    /// Where each message is written before it is sent.
    msg: Box<[u8]>,
}

impl<const N: usize> StreamTx for Tx<N> {
    #[inline]
    fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        for _ in 0..BATCH {
            let header = src.next_msg();
            header.write(&mut self.msg, self.template.bytes());
            send_with(&mut self.end.flow, self.end.wait, &mut self.msg, w, |m| src.restamp(m))?;
            if header.ends_turn() {
                self.end.sent_stop = true;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The in-place form of [`Tx`]: each message is written where it travels
/// (`Flow::loan`: the same header and template that `Tx` writes into its
/// own buffer first), so the application's copy into the ring is gone.
struct LoanTx<const N: usize> {
    end: End,
    template: Template<N>,
}

impl<const N: usize> StreamTx for LoanTx<N> {
    #[inline]
    fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        for _ in 0..BATCH {
            let header = src.next_msg();
            let template = self.template.bytes();
            loan_with(&mut self.end.flow, self.end.wait, N, w, |mut loan| {
                header.write(&mut loan, template);
                // Stamped as it is written: after any wait for room.
                src.restamp(&mut loan);
                loan.send().map_err(|e| err("SendBuf::send", e))
            })?;
            if header.ends_turn() {
                self.end.sent_stop = true;
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Loans `len` bytes, waiting as `wait` says while the flow is full, and
/// hands the loan to `fill` (which sends it).
#[inline]
fn loan_with<T>(
    flow: &mut Flow,
    wait: Wait,
    len: usize,
    w: &mut Waiter<'_>,
    fill: impl FnOnce(SendBuf<'_>) -> Result<T, BenchError>,
) -> Result<T, BenchError> {
    loop {
        let r = match wait {
            Wait::Spin => flow.try_loan(len),
            Wait::Block => flow.loan_timeout(len, BLOCK_TIMEOUT),
        };
        match r {
            Ok(loan) => return fill(loan),
            Err(SendError::WouldBlock) => w.wait()?,
            Err(SendError::TimedOut) => check_after_timeout(w)?,
            Err(e) => return Err(err("Flow::loan", e)),
        }
    }
}

struct Rx {
    end: End,
}

impl StreamRx for Rx {
    #[inline]
    fn recv_batch(&mut self, sink: &mut Sink, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        // The first message waiting as the side waits, the rest of the batch
        // only if already there.
        if recv_with(&mut self.end.flow, self.end.wait, w, |m| sink.on_bytes(m))?? {
            return Ok(true);
        }
        for _ in 1..BATCH {
            match self.end.flow.try_recv_ref() {
                Ok(m) => {
                    if sink.on_bytes(&m)? {
                        return Ok(true);
                    }
                }
                Err(RecvError::WouldBlock) => return Ok(false),
                Err(e) => return Err(err("Flow::try_recv_ref", e)),
            }
        }
        Ok(false)
    }
}

/// One-way stream of N-byte messages between two engines running in
/// `mode`: the sender copies each in with `try_send` (or `send_timeout`),
/// the receiver reads each in place; `ring_bytes` per direction of each
/// local flow.
pub fn stream<const N: usize>(
    ctx: &RunCtx,
    mode: ThreadingMode,
    ring_bytes: usize,
    auth: Auth,
) -> Result<Measurement, BenchError> {
    stream_with::<N>(ctx, mode, Qos::data().with_ring_bytes(ring_bytes), auth)
}

/// [`stream`] with each message written in place (`Flow::loan`) instead
/// of copied in: what the zero-copy form saves a large message's sender.
pub fn stream_inplace<const N: usize>(
    ctx: &RunCtx,
    mode: ThreadingMode,
    ring_bytes: usize,
) -> Result<Measurement, BenchError> {
    let (alloc, accept) = builders(mode, Qos::data().with_ring_bytes(ring_bytes), Auth::None, 0);
    let make_tx = move || Ok(LoanTx::<N> { end: alloc()?, template: Template::new() });
    stream::run_built(ctx, make_tx, move || Ok(Rx { end: accept()? }))
}

/// [`stream`] with every frame checked by CRC32C (`Qos::checksum`): what
/// the checksum costs, in the same run.
pub fn stream_checksum<const N: usize>(
    ctx: &RunCtx,
    mode: ThreadingMode,
    ring_bytes: usize,
) -> Result<Measurement, BenchError> {
    stream_with::<N>(ctx, mode, Qos::data().with_ring_bytes(ring_bytes).with_checksum(true), Auth::None)
}

fn stream_with<const N: usize>(
    ctx: &RunCtx,
    mode: ThreadingMode,
    qos: Qos,
    auth: Auth,
) -> Result<Measurement, BenchError> {
    let (alloc, accept) = builders(mode, qos, auth, 0);
    let make_tx = move || Ok(Tx::<N> { end: alloc()?, template: Template::new(), msg: vec![0; N].into_boxed_slice() });
    stream::run_built(ctx, make_tx, move || Ok(Rx { end: accept()? }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two dedicated-mode engines carry a ping-pong and streams of small
    /// and large messages end to end, and every run stops cleanly (the stop
    /// message gets through before the sender's engine stops).
    #[test]
    fn dedicated_engines_carry_pingpong_and_streams() {
        let _machine = crate::scenarios::smoke::one_at_a_time();
        // Engine threads keep their statistics in the default runtime directory.
        ringflow_testkit::isolate_runtime_dir();
        let mode = ThreadingMode::Dedicated;
        let m = pingpong::<64>(&RunCtx::for_tests(), mode, Auth::None).expect("pingpong");
        assert!(m.msgs > 0);
        let m = pingpong::<64>(&RunCtx::for_tests(), mode, Auth::Key).expect("pingpong with a key");
        assert!(m.msgs > 0);
        for (size, m) in [
            ("64B", stream::<64>(&RunCtx::for_tests(), mode, 256 << 10, Auth::None)),
            ("64KiB", stream::<{ 64 << 10 }>(&RunCtx::for_tests(), mode, 1 << 20, Auth::Key)),
        ] {
            let m = m.unwrap_or_else(|e| panic!("{size}: {e}"));
            assert!(m.msgs > 0 && !m.hist.is_empty(), "{size}");
        }
    }
}
