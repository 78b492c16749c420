//! Per-flow state and the data path: local rings to the link and back,
//! acknowledgements of consumption, and how a flow ends.

use super::*;

use std::sync::atomic::{AtomicUsize, Ordering};

/// A flow's received messages waiting for room in its local ring, with
/// their bytes counted here and in the engine's total (`held`, shared by
/// every flow of the bridge) for the memory budget. Dropping it takes its
/// bytes off the total, however the flow ends.
pub(super) struct Inbound {
    queue: VecDeque<(u64, CallMark, Vec<u8>)>,
    bytes: usize,
    held: Arc<AtomicUsize>,
}

impl Inbound {
    pub(super) fn new(held: Arc<AtomicUsize>) -> Inbound {
        Inbound { queue: VecDeque::new(), bytes: 0, held }
    }

    /// Payload bytes queued.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn front(&self) -> Option<&(u64, CallMark, Vec<u8>)> {
        self.queue.front()
    }

    fn push_back(&mut self, entry: (u64, CallMark, Vec<u8>)) {
        self.bytes += entry.2.len();
        // SYNC: Relaxed; a count only the bridge's thread reads and writes
        // (atomic so that the bridge stays `Send`).
        self.held.fetch_add(entry.2.len(), Ordering::Relaxed);
        self.queue.push_back(entry);
    }

    fn pop_front(&mut self) -> Option<(u64, CallMark, Vec<u8>)> {
        let entry = self.queue.pop_front()?;
        self.bytes -= entry.2.len();
        // SYNC: Relaxed; see `push_back`.
        self.held.fetch_sub(entry.2.len(), Ordering::Relaxed);
        Some(entry)
    }

    pub(super) fn clear(&mut self) {
        // SYNC: Relaxed; see `push_back`.
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
        self.bytes = 0;
        self.queue.clear();
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        self.clear();
    }
}

impl Bridged {
    pub(super) fn new(
        end: FlowEnd,
        name: String,
        flow_id: u32,
        opening: Option<Reply>,
        held: Arc<AtomicUsize>,
    ) -> Bridged {
        let qos = *end.qos();
        let window = qos.reliable.then(|| SendWindow::new(flow_id, window_limits(&qos)));
        let seq = if qos.reliable { RecvSequencer::reliable(flow_id) } else { RecvSequencer::lossy(flow_id) };
        Bridged {
            end,
            name,
            reliable: qos.reliable,
            peer_timeout: qos.peer_timeout,
            opening,
            open_qos: qos.encode(),
            window,
            next_seq: FIRST_SEQ,
            forwarded: 0,
            paused: false,
            tx: End::Open,
            close_mark: None,
            seq,
            inbound: Inbound::new(held),
            spare: Vec::new(),
            spare_bytes: 0,
            delivered: 0,
            acked: 0,
            acked_at: Instant::now(),
            rx: End::Open,
            dropped: 0,
            sent_base: 0,
            recv_base: 0,
            reported_lost: 0,
            closed_local: false,
            window_full: false,
            hot: false,
            quiet: 0,
            doorbell: None,
            checksum: if qos.checksum { Checksum::Crc32c } else { Checksum::None },
        }
        .based()
    }

    /// Takes the end's counts so far as the base of the remote numbering.
    pub(super) fn based(mut self) -> Bridged {
        (self.sent_base, self.recv_base) = (self.end.sent_count(), self.end.received_count());
        self
    }

    /// Queues a received message until the local ring has room, in a kept
    /// buffer when there is one.
    pub(super) fn queue_inbound(&mut self, stamp: u64, call: CallMark, payload: &[u8]) {
        let mut buf = self.spare.pop().unwrap_or_default();
        self.spare_bytes -= buf.capacity();
        buf.clear();
        ringflow_ring::copy::extend_bytes(&mut buf, payload);
        self.inbound.push_back((stamp, call, buf));
    }

    /// Keeps the buffer of a delivered message for the next queued one,
    /// within [`SPARE_BYTES`].
    fn keep_spare(&mut self, buf: Vec<u8>) {
        if self.spare_bytes + buf.capacity() <= SPARE_BYTES {
            self.spare_bytes += buf.capacity();
            self.spare.push(buf);
        }
    }

    /// Whether the data path has something to finish for this flow that no
    /// frame from the network and no new local message will announce: it
    /// stays hot meanwhile.
    pub(super) fn needs_attention(&self) -> bool {
        !self.inbound.is_empty()
            || self.opening.is_some()
            || self.paused
            || self.window_full
            || self.tx != End::Open
            || self.rx != End::Open
            || self.close_mark.is_some()
            || (self.reliable && self.delivered > self.acked)
    }

    /// Notes that our `Close` was just queued on `conn` (its last byte at
    /// the end of what the connection holds), for the close handshake.
    pub(super) fn close_queued(&mut self, tcp: &NetDriver, conn: ConnId) {
        self.close_mark = tcp.appended(conn).ok().map(|at| (conn, at));
    }

    /// The close handshake: once the kernel has taken our queued `Close`
    /// (`handed`: how much of `conn`'s stream the bridge has seen taken, or
    /// `None` if it no longer knows the connection), tells the local
    /// sender (its `dealloc` may return, its process exit). A mark on a
    /// connection that is gone, or no longer the link's (`current` false),
    /// is dropped untold: whether the Close made it is then the resume's
    /// business (the peer's `Resume` has it sent again, and marked again).
    pub(super) fn check_close(&mut self, conn: ConnId, handed: Option<u64>, current: bool) {
        let Some((_, mark)) = self.close_mark.filter(|(at, _)| *at == conn) else { return };
        match handed {
            Some(handed) if handed >= mark => {
                self.close_mark = None;
                self.end.confirm_close_handed(self.recv_base + self.forwarded);
            }
            Some(_) if current => {}
            _ => self.close_mark = None,
        }
    }

    /// Arms the flow's doorbell (setting it up with the network driver the
    /// first time) as it leaves the hot list; false if it has none, or if a
    /// message or the end is already there (the flow then stays hot).
    fn arm_doorbell(
        &mut self,
        key: (LinkId, u32),
        tcp: Option<&mut NetDriver>,
        doorbells: &mut HashMap<u32, (LinkId, u32), Fast>,
        next: &mut u32,
    ) -> bool {
        if self.doorbell.is_none() {
            use std::os::fd::AsRawFd as _;
            let Some(tcp) = tcp else { return false };
            let token = *next;
            // SAFETY: the descriptor is the end's, which `self` holds
            // through the submit right below.
            if !unsafe { tcp.watch(self.end.doorbell().as_raw_fd(), token) } {
                return false;
            }
            tcp.submit();
            *next = next.wrapping_add(1);
            doorbells.insert(token, key);
            self.doorbell = Some(token);
        }
        // Something already there: stay hot (no signal will announce it).
        self.end.arm_doorbell()
    }

    /// Remote messages the local application has consumed.
    pub(super) fn consumed(&self) -> u64 {
        self.end.peer_consumed().saturating_sub(self.sent_base)
    }

    /// The last sequence number sent.
    pub(super) fn last_sent(&self) -> u64 {
        match &self.window {
            Some(w) => w.last_sent(),
            None => self.next_seq - 1,
        }
    }

    /// Both directions are over: the flow can go.
    pub(super) fn finished(&self) -> bool {
        let tx_done = match self.tx {
            End::Open => false,
            End::Reset => true,
            // Our Close must have left first (its sender may be waiting for
            // that to exit; see `close_mark`).
            End::Closed(_) => self.window.as_ref().is_none_or(SendWindow::is_drained) && self.close_mark.is_none(),
            End::Gone(_) => self.window.as_ref().is_none_or(SendWindow::is_drained),
        };
        let rx_done = match self.rx {
            End::Open => false,
            End::Reset => true,
            // Every message up to the death is delivered before the end.
            End::Gone(_) => self.inbound.is_empty(),
            End::Closed(_) => {
                self.inbound.is_empty() && (self.consumed() >= self.delivered || self.end.peer_stopped_reading())
            }
        };
        tx_done && rx_done
    }
}

/// The retransmit window of a reliable flow: room for the remote ring's
/// worth of messages several times over, and always for one largest message.
pub(super) fn window_limits(qos: &Qos) -> WindowLimits {
    let bytes = (qos.ring_bytes.saturating_mul(4)).max(qos.max_msg.saturating_mul(2)).max(1 << 20);
    WindowLimits { max_bytes: bytes.min(256 << 20).max(qos.max_msg), max_messages: 1 << 18 }
}

/// Puts queued remote messages into the local ring; returns how many.
fn deliver(b: &mut Bridged) -> usize {
    let mut moved = 0;
    while let Some((stamp, call, msg)) = b.inbound.front() {
        match b.end.try_send_stamped(msg, *stamp, call.flow_flags()) {
            Ok(()) => {
                if let Some((_, _, buf)) = b.inbound.pop_front() {
                    b.keep_spare(buf);
                }
                b.delivered += 1;
                moved += 1;
            }
            Err(SendError::WouldBlock | SendError::Full) => break,
            Err(_) => {
                b.inbound.clear();
                break;
            }
        }
    }
    moved
}

impl Bridge {
    /// Moves messages between every flow's local end and its link.
    pub(super) fn flows(&mut self) -> usize {
        let mut moved = 0;
        let mut finished = std::mem::take(&mut self.scratch.finished);
        let mut frames = std::mem::take(&mut self.scratch.frames);
        // The clock is read only when needed (it shows in a spinning profile).
        let mut clock: Option<Instant> = None;
        let mut now = || *clock.get_or_insert_with(Instant::now);
        // SYNC: Relaxed; the flag orders nothing else. While draining, every
        // consumption is acknowledged at once.
        let urgent = self.shared.draining.load(std::sync::atomic::Ordering::Relaxed);
        let engine_id = self.hello.engine_id;
        // `io_uring.batch`: messages per flow per duty cycle.
        let batch = (self.cfg.batch as usize).max(1);
        // Whether a consumption may be acknowledged for its age: the clock
        // is read at most every ACK_CLOCK_EVERY cycles of a spinning engine
        // (a read per cycle was a tenth of its idle cycle), and after every
        // sleep.
        let ack_clock = self.woke || self.cycles % ACK_CLOCK_EVERY == 0;
        let mut visit = std::mem::take(&mut self.scratch.visit);
        let mut flush = std::mem::take(&mut self.scratch.flush);
        self.pick_visits(&mut visit);
        let Bridge { flows, links, conns, tcp, udp, stats, woke, hot, doorbells, next_doorbell, .. } = self;
        for &key in &visit {
            let Some(b) = flows.get_mut(&key) else { continue };
            let (link, flow_id) = key;
            let before = (moved, frames.len(), finished.len());
            'body: {
                if let Some((at, _)) = b.close_mark {
                    let current = links.get(&link).and_then(|l| l.conn) == Some(at);
                    b.check_close(at, conns.get(&at).map(|c| c.handed), current);
                }
                moved += deliver(b);
                let lost = b.seq.lost() + b.dropped;
                if lost != b.reported_lost {
                    b.end.report_lost(lost);
                    b.reported_lost = lost;
                }
                // Acknowledge what the local application consumed.
                let consumed = b.consumed().min(b.delivered);
                if b.reliable
                    && consumed > b.acked
                    && (consumed - b.acked >= ACK_EVERY
                        || urgent
                        || b.rx != End::Open
                        || (ack_clock && now() - b.acked_at >= ACK_AFTER))
                {
                    b.acked = consumed;
                    b.acked_at = now();
                    frames.push((link, Frame::Ack { flow_id, cumulative_seq: consumed }));
                }
                if b.rx == End::Open && b.end.peer_stopped_reading() {
                    b.rx = End::Reset;
                    b.inbound.clear();
                    frames.push((link, Frame::Reset { flow_id, consumed_seq: consumed }));
                }
                if let End::Gone(_) = b.rx {
                    if b.inbound.is_empty() {
                        // The peer's engine keeps the dead application's
                        // messages for a resend until they are acknowledged,
                        // and nothing here will acknowledge them once the flow
                        // is gone: say it is over, so that the far end lets go
                        // of the flow (its window, memfd and sockets).
                        frames.push((link, Frame::Reset { flow_id, consumed_seq: consumed }));
                        finished.push(key);
                        break 'body;
                    }
                }
                if let End::Closed(_) = b.rx {
                    if b.inbound.is_empty() && !b.closed_local {
                        b.end.close_tx();
                        b.closed_local = true;
                    }
                }
                if b.finished() {
                    finished.push(key);
                    break 'body;
                }
                // Local -> remote, once the remote side has accepted the flow
                // and the link is up and resumed.
                if b.opening.is_some() || b.paused || b.tx != End::Open {
                    break 'body;
                }
                let Some(conn) =
                    links.get(&link).and_then(|l| l.conn).filter(|c| conns.get(c).is_some_and(|c| c.ready))
                else {
                    break 'body;
                };
                let Some(tcp) = tcp.as_mut() else { break 'body };
                let mut link_state = links.get_mut(&link);
                let stamps = link_state.as_ref().is_some_and(|l| l.stamps);
                let mut sent = 0;
                for _ in 0..batch {
                    if tcp.unsent(conn).unwrap_or(0) > MAX_UNSENT {
                        break;
                    }
                    let (end, window, next_seq, sum) = (&mut b.end, &mut b.window, &mut b.next_seq, b.checksum);
                    let taken = end.forward(|payload, stamp, call| match window {
                        Some(w) => {
                            match w.push_call(payload, if stamps { stamp } else { 0 }, CallMark::from_flow_flags(call))
                            {
                                Ok(frame) => {
                                    put_frame(tcp, conn, &frame, sum);
                                    true
                                }
                                Err(
                                    PushError::WindowFull { .. }
                                    | PushError::TooLarge { .. }
                                    | PushError::SequenceExhausted,
                                ) => false,
                            }
                        }
                        None => {
                            // Lossy: over UDP when the link has it, else TCP.
                            let stamp = if stamps { stamp } else { 0 };
                            let call = CallMark::from_flow_flags(call);
                            let frame = Frame::Data { flow_id, seq: *next_seq, stamp, call, payload };
                            let l = link_state.as_deref_mut();
                            if !l.is_some_and(|l| udp::queue_datagram(udp.as_mut(), engine_id, l, &frame, sum)) {
                                put_frame(tcp, conn, &frame, sum);
                            }
                            *next_seq += 1;
                            true
                        }
                    });
                    match taken {
                        Ok(Some(stamp)) => {
                            b.forwarded += 1;
                            sent += 1;
                            if std::mem::take(woke) {
                                record_wake(stats.as_deref(), stamp);
                            }
                        }
                        Ok(None) => {
                            // The window is full: only an Ack (from the network)
                            // unblocks this flow.
                            b.window_full = true;
                            break;
                        }
                        Err(RecvError::WouldBlock) => break,
                        Err(e) => {
                            let last = b.last_sent();
                            let gone = matches!(e, RecvError::PeerGone { .. } | RecvError::CorruptPeer(_));
                            b.tx = if gone { End::Gone(last) } else { End::Closed(last) };
                            let frame = if gone {
                                Frame::Gone { flow_id, last_seq: last }
                            } else {
                                Frame::Close { flow_id, last_seq: last }
                            };
                            put_frame(tcp, conn, &frame, Checksum::None);
                            if !gone {
                                b.close_queued(tcp, conn);
                            }
                            if gone && b.rx == End::Open {
                                // Nobody will read what the peer sends. What the
                                // dead application consumed is final: all of it
                                // is acknowledged, not only the last Ack's worth.
                                b.rx = End::Reset;
                                b.inbound.clear();
                                b.acked = b.acked.max(b.consumed().min(b.delivered));
                                let frame = Frame::Reset { flow_id, consumed_seq: b.acked };
                                put_frame(tcp, conn, &frame, Checksum::None);
                            }
                            sent += 1;
                            break;
                        }
                    }
                }
                if sent > 0 {
                    if flush.last() != Some(&conn) {
                        flush.push(conn);
                    }
                    if let Some(c) = conns.get_mut(&conn) {
                        c.tx_seen = true;
                    }
                    if b.window.is_none() {
                        // Lossy: what left is as consumed as it will get.
                        b.end.confirm_consumed(b.recv_base + b.forwarded);
                    }
                    moved += sent;
                }
            }
            // Activity, or a state only the data path moves on, keeps the
            // flow hot; a flow quiet for long enough leaves the list.
            let active = (moved, frames.len(), finished.len()) != before;
            if active || b.needs_attention() {
                b.quiet = 0;
                if !b.hot {
                    b.hot = true;
                    hot.push(key);
                }
            } else if b.hot {
                b.quiet += 1;
                if b.quiet >= QUIET_CYCLES {
                    b.hot = !b.arm_doorbell(key, tcp.as_mut(), doorbells, next_doorbell);
                }
            }
        }
        visit.clear();
        self.scratch.visit = visit;
        for (link, frame) in frames.drain(..) {
            self.send_frame(link, &frame);
        }
        if let Some(tcp) = self.tcp.as_mut() {
            for conn in flush.drain(..) {
                tcp.flush(conn);
            }
        }
        flush.clear();
        self.scratch.flush = flush;
        self.churn += finished.len();
        for key in finished.drain(..) {
            if let Some(b) = self.flows.remove(&key) {
                if let End::Gone(_) = b.rx {
                    b.end.abandon();
                }
                if let End::Closed(last) | End::Gone(last) = b.tx {
                    if self.ended.len() == super::ENDED_KEPT {
                        self.ended.pop_front();
                    }
                    self.ended.push_back((key, matches!(b.tx, End::Gone(_)), last));
                }
            }
        }
        (self.scratch.finished, self.scratch.frames) = (finished, frames);
        let flows = &self.flows;
        self.hot.retain(|k| flows.get(k).is_some_and(|b| b.hot));
        moved
    }

    /// The flows this duty cycle walks: every hot one, and every
    /// [`SWEEP_EVERY`] cycles one other, taken in turn from a list of every
    /// flow's key that is rebuilt whenever the sweep reaches its end.
    fn pick_visits(&mut self, visit: &mut Vec<(LinkId, u32)>) {
        visit.clear();
        visit.extend_from_slice(&self.hot);
        if self.flows.len() == self.hot.len() || self.cycles % SWEEP_EVERY != 0 {
            return;
        }
        // Bounded: one pass over the list, rebuilt at most once.
        for _ in 0..=self.flows.len() {
            if self.sweep_at >= self.sweep.len() {
                self.sweep.clear();
                self.sweep.extend(self.flows.keys());
                self.sweep_at = 0;
            }
            let Some(&key) = self.sweep.get(self.sweep_at) else { break };
            self.sweep_at += 1;
            if self.flows.get(&key).is_some_and(|b| !b.hot) {
                visit.push(key);
                break;
            }
        }
    }

    /// Doorbells of flows that are gone: their watches end.
    pub(super) fn close_doorbells(&mut self) {
        let Bridge { doorbells, flows, tcp, .. } = self;
        doorbells.retain(|&token, key| {
            let live = flows.contains_key(key);
            if let (false, Some(tcp)) = (live, tcp.as_mut()) {
                tcp.unwatch(token);
            }
            live
        });
    }
}

/// Records how long the engine took to pick up the message that woke it:
/// from its sender's stamp (0: not stamped) to now.
fn record_wake(slot: Option<&crate::stats::Slot>, stamp: u64) {
    let Some(slot) = slot else { return };
    if stamp != 0 {
        if let Some(ns) = crate::clock::elapsed_ns(stamp, crate::clock::now()) {
            slot.hist(crate::stats::ENGINE_WAKE).record(ns);
        }
    }
}
