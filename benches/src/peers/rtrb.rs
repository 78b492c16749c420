//! rtrb (wait-free SPSC ring of `T`): ping-pong with `push`/`pop`, stream
//! with `write_chunk_uninit`/`read_chunk` batches of `[u8; N]`.

use rtrb::chunks::ChunkError;
use rtrb::{Consumer, PopError, Producer, PushError, RingBuffer};

use crate::error::BenchError;

use crate::pair::Waiter;
use crate::pingpong::{self, PingSide, PongSide};
use crate::stream::{StreamRx, StreamTx};
use crate::wire::{self, Sink, Source, Template};

#[inline]
fn push<const N: usize>(tx: &mut Producer<[u8; N]>, msg: [u8; N], w: &mut Waiter<'_>) -> Result<(), BenchError> {
    let mut msg = msg;
    loop {
        match tx.push(msg) {
            Ok(()) => return Ok(()),
            Err(PushError::Full(back)) => {
                if tx.is_abandoned() {
                    return Err(BenchError::Disconnected { what: "rtrb" });
                }
                msg = back;
                w.wait()?;
            }
        }
    }
}

#[inline]
fn pop<const N: usize>(rx: &mut Consumer<[u8; N]>, w: &mut Waiter<'_>) -> Result<[u8; N], BenchError> {
    loop {
        match rx.pop() {
            Ok(msg) => return Ok(msg),
            Err(PopError::Empty) => {
                if rx.is_abandoned() {
                    return Err(BenchError::Disconnected { what: "rtrb" });
                }
                w.wait()?;
            }
        }
    }
}

struct Ends<const N: usize> {
    tx: Producer<[u8; N]>,
    rx: Consumer<[u8; N]>,
}

impl<const N: usize> PingSide<N> for Ends<N> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], w: &mut Waiter<'_>) -> Result<(), BenchError> {
        push(&mut self.tx, *msg, w)
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        let reply = pop(&mut self.rx, w)?;
        Ok(wire::word(&reply, 0))
    }
}

impl<const N: usize> PongSide<N> for Ends<N> {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let msg = pop(&mut self.rx, w)?;
        if pingpong::is_stop(&msg) {
            return Ok(false);
        }
        push(&mut self.tx, msg, w)?;
        Ok(true)
    }
}

/// Round trip of an N-byte message over two rings of `slots` messages:
/// its two sides, for `pingpong::run_alternating`.
pub fn pingpong_sides<const N: usize>(slots: usize) -> (impl PingSide<N>, impl PongSide<N>) {
    let (ping_tx, pong_rx) = RingBuffer::<[u8; N]>::new(slots);
    let (pong_tx, ping_rx) = RingBuffer::<[u8; N]>::new(slots);
    (Ends { tx: ping_tx, rx: ping_rx }, Ends { tx: pong_tx, rx: pong_rx })
}

struct Tx<const N: usize> {
    tx: Producer<[u8; N]>,
    batch: usize,
    template: Template<N>,
}

impl<const N: usize> StreamTx for Tx<N> {
    #[inline]
    fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let mut chunk = match self.tx.write_chunk_uninit(self.batch) {
            Ok(chunk) => chunk,
            Err(ChunkError::TooFewSlots(0)) => {
                if self.tx.is_abandoned() {
                    return Err(BenchError::Disconnected { what: "rtrb" });
                }
                w.wait()?;
                return Ok(false);
            }
            Err(ChunkError::TooFewSlots(n)) => {
                self.tx.write_chunk_uninit(n).map_err(|_| BenchError::Disconnected { what: "rtrb (slots vanished)" })?
            }
        };
        let mut filled = 0;
        let mut stop = false;
        let (first, second) = chunk.as_mut_slices();
        for slot in first.iter_mut().chain(second.iter_mut()) {
            let msg = src.next_msg();
            // The same work as every impl: copy the template in place (one
            // copy, no temporary), then write the header.
            let template = self.template.bytes();
            // SAFETY: the slot is N writable bytes of the ring, the template a
            // separate allocation of N bytes, so the ranges cannot overlap.
            unsafe { std::ptr::copy_nonoverlapping(template.as_ptr(), slot.as_mut_ptr().cast::<u8>(), N) };
            // SAFETY: all N bytes of the slot were initialised just above.
            msg.stamp(unsafe { slot.assume_init_mut() });
            filled += 1;
            if msg.ends_turn() {
                stop = true;
                break;
            }
        }
        // SAFETY: the first `filled` slots of the chunk were initialised in
        // the loop above.
        unsafe { chunk.commit(filled) };
        Ok(stop)
    }
}

struct Rx<const N: usize> {
    rx: Consumer<[u8; N]>,
    batch: usize,
}

impl<const N: usize> StreamRx for Rx<N> {
    #[inline]
    fn recv_batch(&mut self, sink: &mut Sink, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let chunk = match self.rx.read_chunk(self.batch) {
            Ok(chunk) => chunk,
            Err(ChunkError::TooFewSlots(0)) => {
                if self.rx.is_abandoned() {
                    return Err(BenchError::Disconnected { what: "rtrb" });
                }
                w.wait()?;
                return Ok(false);
            }
            Err(ChunkError::TooFewSlots(n)) => {
                self.rx.read_chunk(n).map_err(|_| BenchError::Disconnected { what: "rtrb (slots vanished)" })?
            }
        };
        let mut stop = false;
        let (first, second) = chunk.as_slices();
        for msg in first.iter().chain(second) {
            stop = sink.on_bytes(msg)?;
            if stop {
                break;
            }
        }
        chunk.commit_all();
        Ok(stop)
    }
}

/// One-way stream of N-byte messages over a ring of `slots` messages, in
/// chunks of up to `batch`: its two sides, for `stream::run_alternating`.
pub fn stream_sides<const N: usize>(slots: usize, batch: usize) -> (impl StreamTx, impl StreamRx) {
    let (tx, rx) = RingBuffer::<[u8; N]>::new(slots);
    (Tx { tx, batch, template: Template::<N>::new() }, Rx { rx, batch })
}
