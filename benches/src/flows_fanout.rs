//! N unicast flows as a fan-out, what a group is compared with in scenario
//! `group`: the publisher holds one flow per subscriber and sends each
//! message into every one of them. A message counts as published once it
//! was offered to every flow.
//!
//! Lossy (`Qos::with_reliable(false)`): a flow whose ring is full refuses
//! the message at once (`SendError::Full`) and that subscriber loses it;
//! the publisher never waits, as a lapping group's never does. Reliable:
//! the publisher waits for room in each flow in turn. Zero-copy: the
//! publisher loans the message in each flow's shared memory and writes it
//! there, once per flow.

use std::time::Duration;

use ringflow_api::{Flow, Qos};

use crate::error::BenchError;
use crate::fanout::{FanRx, FanTx};
use crate::flow::{err, pair, send_waiting, with_loan, DirGuard, Rx};
use crate::pair::Waiter;
use crate::wire::{Msg, Sink, Source, Template};

/// The flows of a fan-out: the publisher's ends, the subscribers' ends, and
/// their runtime directories (removed when dropped).
pub struct Flows {
    pub txs: Vec<Flow>,
    pub rxs: Vec<Flow>,
    pub dirs: Vec<DirGuard>,
}

/// `subscribers` flows of `qos`, each in its own runtime directory.
pub fn flows(qos: Qos, subscribers: usize) -> Result<Flows, BenchError> {
    let mut flows = Flows { txs: Vec::new(), rxs: Vec::new(), dirs: Vec::new() };
    for _ in 0..subscribers {
        let (tx, rx, dir) = pair(qos, Duration::ZERO)?;
        flows.txs.push(tx);
        flows.rxs.push(rx);
        flows.dirs.push(dir);
    }
    Ok(flows)
}

/// Copies each N-byte message into every flow (`try_send`).
pub struct CopyTx<const N: usize> {
    pub flows: Vec<Flow>,
    pub template: Template<N>,
}

impl<const N: usize> FanTx for CopyTx<N> {
    #[inline]
    fn publish(&mut self, msg: Msg, src: &Source, w: &mut Waiter<'_>) -> Result<(), BenchError> {
        let mut bytes = msg.to_array(&self.template);
        for flow in &mut self.flows {
            send_waiting(flow, &mut bytes, src, w)?;
        }
        Ok(())
    }
}

/// Loans each message in every flow, writes it whole from `source` and
/// sends it (waiting for room).
pub struct LoanTx {
    pub flows: Vec<Flow>,
    pub source: Box<[u8]>,
}

impl FanTx for LoanTx {
    #[inline]
    fn publish(&mut self, msg: Msg, src: &Source, w: &mut Waiter<'_>) -> Result<(), BenchError> {
        for flow in &mut self.flows {
            with_loan(flow, self.source.len(), w, |mut loan| {
                loan.copy_from_slice(&self.source);
                msg.stamp(&mut loan[..16]);
                src.restamp(&mut loan[..16]);
                loan.send().map_err(|e| err("SendBuf::send", e))
            })?;
        }
        Ok(())
    }
}

/// A subscriber's flow, read in place.
impl FanRx for Rx {
    #[inline]
    fn drain(&mut self, sink: &mut Sink, max: usize) -> Result<usize, BenchError> {
        self.take(sink, max).map(|(took, _)| took)
    }
}
