//! The ringflow impls: ping-pong over two SPSC rings and a batched stream
//! over one, generic over the memory the rings live in ([`RingMemory`]).
//! Nobody sleeps in a benchmark, so the `Notify` results are ignored.

use ringflow_ring::spsc::{self, Consumer, Producer};
use ringflow_ring::{ClaimError, ReadError, Region};

use crate::error::BenchError;

use crate::memory::RingMemory;
use crate::pair::Waiter;
use crate::pingpong::{self, PingSide, PongSide};
use crate::stream::{StreamRx, StreamTx};
use crate::wire::{Sink, Source, Template};

/// Both attached ends of one ring.
type Ends<M> = (Producer<<M as RingMemory>::Region>, Consumer<<M as RingMemory>::Region>);

/// One SPSC ring with `capacity` data bytes in `memory`, attached.
fn ring<M: RingMemory>(memory: &M, capacity: usize) -> Result<Ends<M>, BenchError> {
    let (a, b) = memory.region_pair(spsc::region_len(capacity))?;
    // The mode the library will use: membarrier where this process can
    // register for it (publishers then skip their SeqCst fence), else fenced.
    // SAFETY: `region_pair` maps or allocates new memory each call, and no
    // side is attached yet.
    unsafe { spsc::init_with(&a, ringflow_core::membarrier::preferred_wake_mode()) }?;
    Ok((Producer::attach(a)?, Consumer::attach(b)?))
}

/// Claims `msg.len()` bytes, copies `msg` in place and commits.
#[inline]
fn send_copy<R: Region>(tx: &mut Producer<R>, msg: &[u8], w: &mut Waiter<'_>) -> Result<(), BenchError> {
    loop {
        match tx.try_claim(msg.len()) {
            Ok(mut claim) => {
                claim.payload_mut().copy_from_slice(msg);
                let _ = claim.commit();
                return Ok(());
            }
            Err(ClaimError::Full) => w.wait()?,
            Err(e) => return Err(e.into()),
        }
    }
}

struct Ping<R: Region> {
    tx: Producer<R>,
    rx: Consumer<R>,
}

impl<R: Region + Send, const N: usize> PingSide<N> for Ping<R> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], w: &mut Waiter<'_>) -> Result<(), BenchError> {
        send_copy(&mut self.tx, msg, w)
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        loop {
            // The guard lives only inside this match, so that `release` can
            // borrow the consumer again afterwards.
            let seq = match self.rx.try_read() {
                Ok(guard) => Some(crate::wire::word(guard.payload(), 0)),
                Err(ReadError::Empty) => None,
                Err(e) => return Err(e.into()),
            };
            match seq {
                Some(seq) => {
                    let _ = self.rx.release();
                    return Ok(seq);
                }
                None => w.wait()?,
            }
        }
    }
}

struct Pong<R: Region> {
    rx: Consumer<R>,
    tx: Producer<R>,
}

impl<R: Region + Send, const N: usize> PongSide<N> for Pong<R> {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        loop {
            let echoed = match self.rx.try_read() {
                Ok(guard) => {
                    let msg = guard.payload();
                    if pingpong::is_stop(msg) {
                        return Ok(false);
                    }
                    // The reply is copied straight from the request frame
                    // into the reply frame: both in place.
                    send_copy(&mut self.tx, msg, w)?;
                    true
                }
                Err(ReadError::Empty) => false,
                Err(e) => return Err(e.into()),
            };
            if echoed {
                let _ = self.rx.release();
                return Ok(true);
            }
            w.wait()?;
        }
    }
}

/// Round trip of an N-byte message over two rings of `capacity` bytes
/// whose producers wrap early past `window` bytes while the other side keeps
/// up (`Producer::set_window`): its two sides, for
/// `pingpong::run_alternating`.
pub fn pingpong_sides<M: RingMemory, const N: usize>(
    memory: &M,
    capacity: usize,
    window: usize,
) -> Result<(impl PingSide<N>, impl PongSide<N>), BenchError> {
    let (mut ping_tx, pong_rx) = ring(memory, capacity)?;
    let (mut pong_tx, ping_rx) = ring(memory, capacity)?;
    ping_tx.set_window(window);
    pong_tx.set_window(window);
    Ok((Ping { tx: ping_tx, rx: ping_rx }, Pong { rx: pong_rx, tx: pong_tx }))
}

struct Tx<R: Region, const N: usize> {
    tx: Producer<R>,
    batch: usize,
    template: Template<N>,
}

impl<R: Region + Send, const N: usize> StreamTx for Tx<R, N> {
    #[inline]
    fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let template = self.template.bytes();
        let mut stop = false;
        let written = self.tx.write_batch(self.batch, N, |slot| {
            let msg = src.next_msg();
            msg.write(slot.payload_mut(), template);
            stop = msg.ends_turn();
            !stop
        });
        match written {
            Ok(_) => Ok(stop),
            Err(ClaimError::Full) => w.wait().map(|()| false),
            Err(e) => Err(e.into()),
        }
    }
}

struct Rx<R: Region> {
    rx: Consumer<R>,
    batch: usize,
}

impl<R: Region + Send> StreamRx for Rx<R> {
    #[inline]
    fn recv_batch(&mut self, sink: &mut Sink, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let mut outcome = Ok(false);
        let read = self.rx.read_batch(self.batch, |guard| {
            if matches!(outcome, Ok(false)) {
                outcome = sink.on_bytes(guard.payload());
            }
        });
        match read {
            Ok(_) => outcome,
            Err(ReadError::Empty) => w.wait().map(|()| false),
            Err(e) => Err(e.into()),
        }
    }
}

/// One-way stream of N-byte messages over one ring of `capacity` bytes,
/// committed and released in batches of `batch` frames: its two sides, for
/// `stream::run_alternating`.
pub fn stream_sides<M: RingMemory, const N: usize>(
    memory: &M,
    capacity: usize,
    batch: usize,
) -> Result<(impl StreamTx, impl StreamRx), BenchError> {
    let (tx, rx) = ring(memory, capacity)?;
    Ok((Tx { tx, batch, template: Template::<N>::new() }, Rx { rx, batch }))
}
