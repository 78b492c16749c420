//! A flow's counters and latency histograms, as this side sees them.

use hdrhistogram::Histogram;

use crate::stats::{FlowCounter, FLOW_LATENCY};

use super::FlowEnd;

/// Counters and latency histograms of one flow (this side's view), as
/// `Flow::stats` copies them. The same figures are published live in the
/// process's stats file, where `ringflow stat` reads them.
#[derive(Clone, Debug)]
pub struct FlowStats {
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Messages refused because the ring was full (lossy QoS).
    pub dropped: u64,
    /// Messages lost on their way to this side (a lossy flow between hosts:
    /// lost on the network, or dropped by the receiving engine when this
    /// side's ring stayed full), as the engine counted them.
    pub lost: u64,
    /// Times this side woke its sleeping peer (a futex wake each).
    pub wakeups: u64,
    /// Times this side slept, waiting for a message or for room.
    pub parked: u64,
    /// Times a send found the ring full (it waited, or failed).
    pub backpressure: u64,
    /// Received messages whose send stamp could not give a latency (not
    /// stamped: the sender records no latency; or a clock not shared).
    pub unstamped: u64,
    /// One-way latency of every received message, in nanoseconds: from
    /// the sender's stamp (taken as it published) to the moment a receive
    /// call handed the message over. Empty when recording is off.
    pub latency: Histogram<u64>,
}

impl FlowEnd {
    /// This side's counters and a snapshot of its latency histograms.
    pub fn stats(&self) -> FlowStats {
        // SYNC: Relaxed; a count for reports, nothing rides on it (its
        // writer, `report_lost`, stores Relaxed too).
        let lost = self.shared.memory.rx_lost(self.shared.role).load(std::sync::atomic::Ordering::Relaxed);
        self.slot.set(FlowCounter::Lost as usize, lost);
        let c = |k: FlowCounter| self.slot.get(k as usize);
        let mut stats = FlowStats {
            sent: c(FlowCounter::Sent).saturating_sub(self.preamble.sent),
            received: c(FlowCounter::Received).saturating_sub(self.preamble.received),
            bytes_sent: c(FlowCounter::BytesSent),
            bytes_received: c(FlowCounter::BytesReceived),
            dropped: c(FlowCounter::Dropped),
            lost,
            wakeups: c(FlowCounter::Wakeups),
            parked: c(FlowCounter::Parked),
            backpressure: c(FlowCounter::Backpressure),
            unstamped: c(FlowCounter::Unstamped),
            latency: self.slot.hist(FLOW_LATENCY).snapshot(),
        };
        // The last message's latency, not in shared memory yet.
        match self.pending.map(|p| p.latency_ns()) {
            Some(Some(ns)) => stats.latency.saturating_record(ns),
            Some(None) => stats.unstamped += 1,
            None => {}
        }
        stats
    }

    /// Empties this side's latency histograms (counters keep counting):
    /// the start of a new measurement interval.
    pub fn reset_latency(&mut self) {
        self.pending = None;
        self.slot.reset_hists();
    }

    /// Whether this side stamps and records latencies.
    pub fn records_latency(&self) -> bool {
        self.latency
    }

    /// Messages sent so far (cheap: no histogram copy).
    pub(crate) fn sent_count(&self) -> u64 {
        self.slot.get(FlowCounter::Sent as usize)
    }

    /// Messages received so far.
    pub(crate) fn received_count(&self) -> u64 {
        self.slot.get(FlowCounter::Received as usize)
    }
}
