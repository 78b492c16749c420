//! crossbeam-channel (bounded MPMC channel): `try_send` / `try_recv` of
//! `[u8; N]` by value, one message at a time (it has no batch API).

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};

use crate::error::BenchError;

use crate::pair::Waiter;
use crate::pingpong::{self, PingSide, PongSide};
use crate::stream::{StreamRx, StreamTx};
use crate::wire::{self, Sink, Source, Template};

const GONE: BenchError = BenchError::Disconnected { what: "crossbeam-channel" };

#[inline]
fn send<const N: usize>(tx: &Sender<[u8; N]>, msg: [u8; N], w: &mut Waiter<'_>) -> Result<(), BenchError> {
    let mut msg = msg;
    loop {
        match tx.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(back)) => {
                msg = back;
                w.wait()?;
            }
            Err(TrySendError::Disconnected(_)) => return Err(GONE),
        }
    }
}

#[inline]
fn recv<const N: usize>(rx: &Receiver<[u8; N]>, w: &mut Waiter<'_>) -> Result<[u8; N], BenchError> {
    loop {
        match rx.try_recv() {
            Ok(msg) => return Ok(msg),
            Err(TryRecvError::Empty) => w.wait()?,
            Err(TryRecvError::Disconnected) => return Err(GONE),
        }
    }
}

struct Ends<const N: usize> {
    tx: Sender<[u8; N]>,
    rx: Receiver<[u8; N]>,
}

impl<const N: usize> PingSide<N> for Ends<N> {
    #[inline]
    fn send(&mut self, msg: &[u8; N], w: &mut Waiter<'_>) -> Result<(), BenchError> {
        send(&self.tx, *msg, w)
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        let reply = recv(&self.rx, w)?;
        Ok(wire::word(&reply, 0))
    }
}

impl<const N: usize> PongSide<N> for Ends<N> {
    #[inline]
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        let msg = recv(&self.rx, w)?;
        if pingpong::is_stop(&msg) {
            return Ok(false);
        }
        send(&self.tx, msg, w)?;
        Ok(true)
    }
}

/// Round trip of an N-byte message over two channels of `slots` messages:
/// its two sides, for `pingpong::run_alternating`.
pub fn pingpong_sides<const N: usize>(slots: usize) -> (impl PingSide<N>, impl PongSide<N>) {
    let (ping_tx, pong_rx) = bounded::<[u8; N]>(slots);
    let (pong_tx, ping_rx) = bounded::<[u8; N]>(slots);
    (Ends { tx: ping_tx, rx: ping_rx }, Ends { tx: pong_tx, rx: pong_rx })
}

struct Tx<const N: usize> {
    tx: Sender<[u8; N]>,
    batch: usize,
    template: Template<N>,
}

impl<const N: usize> StreamTx for Tx<N> {
    #[inline]
    fn send_batch(&mut self, src: &mut Source, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        for _ in 0..self.batch {
            let msg = src.next_msg();
            let mut value = msg.to_array(&self.template);
            loop {
                match self.tx.try_send(value) {
                    Ok(()) => break,
                    Err(TrySendError::Full(back)) => {
                        value = back;
                        w.wait()?;
                        // Other impls take the timestamp once there is room;
                        // so does this one.
                        src.restamp(&mut value);
                    }
                    Err(TrySendError::Disconnected(_)) => return Err(GONE),
                }
            }
            if msg.ends_turn() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

struct Rx<const N: usize> {
    rx: Receiver<[u8; N]>,
    batch: usize,
}

impl<const N: usize> StreamRx for Rx<N> {
    #[inline]
    fn recv_batch(&mut self, sink: &mut Sink, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        for read in 0..self.batch {
            match self.rx.try_recv() {
                Ok(msg) => {
                    if sink.on_bytes(&msg)? {
                        return Ok(true);
                    }
                }
                Err(TryRecvError::Empty) => {
                    if read == 0 {
                        w.wait()?;
                    }
                    return Ok(false);
                }
                Err(TryRecvError::Disconnected) => return Err(GONE),
            }
        }
        Ok(false)
    }
}

/// One-way stream of N-byte messages over a channel of `slots` messages.
/// `batch` only bounds how many messages one driver call handles. Its two
/// sides, for `stream::run_alternating`.
pub fn stream_sides<const N: usize>(slots: usize, batch: usize) -> (impl StreamTx, impl StreamRx) {
    let (tx, rx) = bounded::<[u8; N]>(slots);
    (Tx { tx, batch, template: Template::<N>::new() }, Rx { rx, batch })
}
