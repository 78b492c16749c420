//! What arrives from the peer engine: frames decoded where they lie in
//! the receive buffer, and opens allocated to local listeners.

use super::*;

use super::data::window_limits;

impl Bridge {
    /// Decodes what `conn` has received: the hello exchange, then frames,
    /// each handled where it lies in the receive buffer.
    pub(super) fn decode(&mut self, conn: ConnId) {
        if !self.conns.get(&conn).is_some_and(|c| c.ready) && !self.handshake(conn) {
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let Some(link) = c.link else { return };
        let rx = std::mem::take(&mut c.rx);
        let decoder = self.decoder;
        let mut used = 0;
        let mut broken = false;
        let mut skip = 0;
        loop {
            // Each frame is judged at its header, before its body is waited for.
            match decoder.frame_len(&rx[used..]) {
                Ok(Some(total)) => match self.admit(link, &rx[used..], total) {
                    budget::Admit::Take => {}
                    budget::Admit::Wait => break,
                    budget::Admit::Refuse => {
                        broken = true;
                        break;
                    }
                    budget::Admit::Skip { flow_id } if rx.len() - used < total => {
                        // For a flow not here (ended, or never was): its
                        // bytes are dropped as they arrive, never held. The
                        // connection stays: a peer's frames for a flow that
                        // just ended here are in flight legitimately.
                        skip = total - (rx.len() - used);
                        used = rx.len();
                        self.reset_unknown(link, flow_id);
                        break;
                    }
                    // Whole already: answered as any frame of an unknown flow.
                    budget::Admit::Skip { .. } => {}
                },
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
            match decoder.decode(&rx[used..]) {
                Ok(Some((frame, n))) => {
                    let crc = rx[used + 5] & wire::FLAG_CRC32C != 0;
                    used += n;
                    if !self.on_frame(link, &frame, crc) {
                        broken = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            self.drop_conn(conn);
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            // Nothing appends to `c.rx` while its frames are handled: the
            // undecoded rest goes back as it is.
            let mut rx = rx;
            rx.drain(..used);
            c.rx = rx;
            // (A skip still running left nothing to decode: this adds to 0.)
            c.skip += skip;
        }
        self.settle_rx(conn);
    }

    /// Handles one frame from `link`; false if the peer broke the protocol.
    /// `crc`: the frame carried a CRC32C (the decoder checked it).
    pub(super) fn on_frame(&mut self, link: LinkId, frame: &Frame<'_>, crc: bool) -> bool {
        // Whatever a frame says about a flow, the data path looks at it next.
        let ok = self.handle_frame(link, frame, crc);
        if let Some(flow_id) = frame.flow_id() {
            self.mark_hot((link, flow_id));
        }
        ok
    }

    fn handle_frame(&mut self, link: LinkId, frame: &Frame<'_>, crc: bool) -> bool {
        match *frame {
            Frame::Open { flow_id, name, qos } => self.open_local(link, flow_id, name, qos),
            Frame::OpenAck { flow_id, result, qos } => self.on_open_ack(link, flow_id, result, qos),
            Frame::Data { .. } => return self.on_data(link, frame, crc),
            Frame::Ack { flow_id, cumulative_seq } => {
                let Some(b) = self.flows.get_mut(&(link, flow_id)) else {
                    return self.reset_unknown(link, flow_id);
                };
                if let Some(w) = b.window.as_mut() {
                    if w.on_ack(cumulative_seq).is_err() {
                        return false;
                    }
                    if let Some(ns) = w.take_rtt_ns() {
                        b.end.record_rtt(ns);
                    }
                    b.end.confirm_consumed(b.recv_base + w.acked());
                    b.window_full = false;
                }
            }
            Frame::Close { flow_id, last_seq } | Frame::Gone { flow_id, last_seq } => {
                let gone = matches!(frame, Frame::Gone { .. });
                let Some(b) = self.flows.get_mut(&(link, flow_id)) else {
                    return self.reset_unknown(link, flow_id);
                };
                if b.rx == End::Open {
                    if b.seq.on_close(last_seq).is_err() && !gone {
                        return false;
                    }
                    b.rx = if gone { End::Gone(last_seq) } else { End::Closed(last_seq) };
                }
            }
            Frame::Reset { flow_id, consumed_seq } => {
                if let Some(b) = self.flows.get_mut(&(link, flow_id)) {
                    if let Some(w) = b.window.as_mut() {
                        let _ = w.on_ack(consumed_seq.min(w.last_sent()));
                        b.end.confirm_consumed(b.recv_base + w.acked());
                    }
                    b.window = None;
                    b.tx = End::Reset;
                    b.paused = false;
                    // The far side wants nothing more of this direction: a
                    // sender's `dealloc` has no Close to wait for.
                    b.close_mark = None;
                    b.end.confirm_close_handed(b.recv_base + b.forwarded);
                }
            }
            Frame::Resume { flow_id, next_expected_seq } => return self.on_resume(link, flow_id, next_expected_seq),
            Frame::Keepalive { .. } => {}
            Frame::Cluster { payload } => self.on_cluster(payload),
        }
        true
    }

    /// The peer says it knows nothing of `flow_id`, or we do not.
    pub(super) fn reset_unknown(&mut self, link: LinkId, flow_id: u32) -> bool {
        if !self.opening.contains(&(link, flow_id)) {
            self.send_frame(link, &Frame::Reset { flow_id, consumed_seq: 0 });
        }
        true
    }

    pub(super) fn on_open_ack(&mut self, link: LinkId, flow_id: u32, result: OpenResult, qos: [u8; wire::QOS_LEN]) {
        let Some(b) = self.flows.get_mut(&(link, flow_id)) else {
            if result == OpenResult::Accepted {
                self.send_frame(link, &Frame::Reset { flow_id, consumed_seq: 0 });
            }
            return;
        };
        let Some(reply) = b.opening.take() else { return };
        if result == OpenResult::Accepted {
            let granted = Qos::decode(&qos).ok().filter(|g| g.max_msg <= b.end.qos().max_msg);
            match granted {
                Some(granted) => {
                    if b.reliable {
                        // Sized for what was granted, as the remote engine
                        // bounds what it queues for this flow (see `on_data`):
                        // nothing was pushed yet (no data before the answer).
                        b.window = Some(SendWindow::new(flow_id, window_limits(&granted)));
                    }
                    tracing::info!(flow = %b.name, flow_id, link, "remote flow opened");
                    reply.answer(&mut b.end, Ok(granted));
                    // The answer (if written into the flow) is not a remote message.
                    b.sent_base = b.end.sent_count();
                    return;
                }
                None => {
                    let e = AllocError::CorruptPeer(Corruption::Protocol(
                        "remote engine granted a QoS it was not asked for".into(),
                    ));
                    reply.answer(&mut b.end, Err(e));
                    self.flows.remove(&(link, flow_id));
                    self.send_frame(link, &Frame::Reset { flow_id, consumed_seq: 0 });
                    return;
                }
            }
        }
        let err = refusal(result, b.name.clone(), &qos);
        tracing::info!(flow = %b.name, flow_id, link, reason = %err, "remote flow refused");
        reply.answer(&mut b.end, Err(err));
        self.flows.remove(&(link, flow_id));
    }

    /// One message of a flow (a `Data` frame; any other is ignored);
    /// `crc`: its frame was checked by CRC32C. A flow that asked for checked
    /// frames refuses an unchecked one (a flipped flag bit must not smuggle
    /// an unchecked payload in).
    pub(super) fn on_data(&mut self, link: LinkId, frame: &Frame<'_>, crc: bool) -> bool {
        let Frame::Data { flow_id, seq, stamp, call, payload } = *frame else { return true };
        let Some(b) = self.flows.get_mut(&(link, flow_id)) else {
            return self.reset_unknown(link, flow_id);
        };
        if b.checksum == Checksum::Crc32c && !crc {
            return false;
        }
        if b.rx != End::Open {
            return true; // after Reset or Gone on our side: dropped
        }
        if b.reliable && !b.inbound.is_empty() {
            // It will queue: within what the sender may have unacknowledged
            // (its window), and within the engine's budget; else the
            // connection goes, this message unaccepted (a resume resends it).
            let limit = window_limits(b.end.qos()).max_bytes;
            let more = payload.len();
            // SYNC: Relaxed; see `Inbound::push_back`.
            let held = self.rx_held + self.inbound_held.load(std::sync::atomic::Ordering::Relaxed);
            if b.inbound.bytes() + more > limit || held.saturating_add(more) > self.budget {
                return false;
            }
        }
        match b.seq.accept(seq) {
            Ok(wire::Delivery::Stale) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
        if b.inbound.is_empty() {
            match b.end.try_send_stamped(payload, 0, call.flow_flags()) {
                Ok(()) => {
                    b.delivered += 1;
                    return true;
                }
                Err(SendError::WouldBlock | SendError::Full) => {}
                Err(_) => return true, // the local application left; `flows` notices
            }
        }
        let room = b.inbound.bytes() + payload.len() <= window_limits(b.end.qos()).max_bytes;
        // SYNC: Relaxed; see `Inbound::push_back`.
        let held = self.rx_held + self.inbound_held.load(std::sync::atomic::Ordering::Relaxed);
        let room = room && held.saturating_add(payload.len()) <= self.budget;
        if !b.reliable && (b.inbound.len() >= LOSSY_QUEUE || !room) {
            b.dropped += 1;
            return true;
        }
        b.queue_inbound(stamp, call, payload);
        true
    }

    pub(super) fn on_resume(&mut self, link: LinkId, flow_id: u32, next: u64) -> bool {
        let Some(b) = self.flows.get_mut(&(link, flow_id)) else {
            // Finished here, its last frame perhaps lost in the cut: again.
            if let Some(&(_, gone, last_seq)) = self.ended.iter().rev().find(|e| e.0 == (link, flow_id)) {
                let end = if gone { Frame::Gone { flow_id, last_seq } } else { Frame::Close { flow_id, last_seq } };
                self.send_frame(link, &end);
                return true;
            }
            return self.reset_unknown(link, flow_id);
        };
        let Some(conn) = self.links.get(&link).and_then(|l| l.conn) else { return true };
        let Some(tcp) = self.tcp.as_mut() else { return true };
        if let Some(w) = b.window.as_ref() {
            let Ok(resend) = w.resume_from(next) else { return false };
            for frame in resend {
                put_frame(tcp, conn, &frame, b.checksum);
            }
        }
        let last = b.last_sent();
        let end = match b.tx {
            End::Closed(_) => Some(Frame::Close { flow_id, last_seq: last }),
            End::Gone(_) => Some(Frame::Gone { flow_id, last_seq: last }),
            End::Open | End::Reset => None,
        };
        let closed = matches!(end, Some(Frame::Close { .. }));
        if let Some(end) = end {
            put_frame(tcp, conn, &end, Checksum::None);
        }
        if closed {
            b.close_queued(tcp, conn);
        }
        tcp.flush(conn);
        b.paused = false;
        true
    }

    /// Allocates an incoming flow to the local listener on a helper thread.
    pub(super) fn open_local(&mut self, link: LinkId, flow_id: u32, name: &str, qos: [u8; wire::QOS_LEN]) {
        if let Some(b) = self.flows.get(&(link, flow_id)) {
            // A repeated Open (the link reconnected before our answer).
            let qos = b.end.qos().encode();
            self.send_frame(link, &Frame::OpenAck { flow_id, result: OpenResult::Accepted, qos });
            return;
        }
        // SYNC: Relaxed; the flag orders nothing else.
        if self.shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
            let refuse = Frame::OpenAck { flow_id, result: OpenResult::ShuttingDown, qos: [0; wire::QOS_LEN] };
            self.send_frame(link, &refuse);
            return;
        }
        if self.opening.contains(&(link, flow_id)) {
            return;
        }
        if self.opening.len() >= MAX_OPENING {
            // Each open waits for a local accept on a thread of its own: a
            // peer (or a flood of peers) gets no more of them than this.
            let busy = Frame::OpenAck { flow_id, result: OpenResult::Busy, qos: [0; wire::QOS_LEN] };
            self.send_frame(link, &busy);
            return;
        }
        self.opening.insert((link, flow_id));
        tracing::debug!(flow = %name, flow_id, link, "a remote engine opens a flow");
        let tx = self.opened.0.clone();
        let dir = self.runtime_dir.clone();
        // Invoker mode: the accepting application (if in this process)
        // must find this engine again to drive it (see `invoker`).
        let invoker = self.shared.invoker.get().cloned();
        let name = name.to_owned();
        // SYNC: Relaxed; see `RemoteEngine::start`.
        let latency = self.shared.latency.load(std::sync::atomic::Ordering::Relaxed);
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new().name("ringflow-open".into()).spawn(move || {
            let result = Qos::decode(&qos).map_err(AllocError::InvalidQos).and_then(|qos| {
                let opts = match dir {
                    Some(d) => FlowOptions::new().runtime_dir(d),
                    None => FlowOptions::new(),
                }
                .latency(latency)
                .for_other_host();
                let mut key = None;
                let mut opts = opts;
                if let Some(inv) = invoker.as_ref().and_then(Weak::upgrade) {
                    let segment = FlowEnd::segment_for(&qos)?;
                    key = invoker::inode_of(segment.fd());
                    if let Some(k) = key {
                        inv.register_segment(k);
                    }
                    opts = opts.memory(segment);
                }
                let r = FlowEnd::alloc_with(&name, &qos, Deadline::after(Duration::from_secs(5)), opts);
                // Nobody here will claim it: the flow failed, or its
                // acceptor is another process.
                let unclaimed = r.as_ref().map_or(true, |f| f.peer_pid() != Some(std::process::id()));
                if let (true, Some(k)) = (unclaimed, key) {
                    if let Some(inv) = invoker.as_ref().and_then(Weak::upgrade) {
                        inv.forget_segment(k);
                    }
                }
                r
            });
            let _ = tx.send(Opened { link, flow_id, result });
            // The answer leaves now, not at the end of the engine's sleep:
            // as a command does (`pending` keeps a bridge about to sleep
            // awake, the poke ends a sleep under way).
            // SYNC: Release; pairs with the Acquire swap in `Bridge::commands`.
            shared.pending.store(true, std::sync::atomic::Ordering::Release);
            shared.wake();
        });
        if let Err(e) = spawned {
            // No thread for the open (EAGAIN: out of threads or memory).
            self.opening.remove(&(link, flow_id));
            let errno = e.raw_os_error().unwrap_or(0);
            self.send_frame(link, &resource_limit(flow_id, errno));
        }
    }

    pub(super) fn opened(&mut self) -> usize {
        if self.opening.is_empty() {
            return 0;
        }
        let mut n = 0;
        while let Ok(Opened { link, flow_id, result }) = self.opened.1.try_recv() {
            n += 1;
            self.churn += 1;
            self.opening.remove(&(link, flow_id));
            let mut qos = [0; wire::QOS_LEN];
            match &result {
                Ok(_) => tracing::info!(flow_id, link, "flow from a remote engine accepted"),
                Err(e) => tracing::info!(flow_id, link, reason = %e, "flow from a remote engine refused"),
            }
            let answer = match result {
                Ok(end) => {
                    qos = end.qos().encode();
                    if self.links.contains_key(&link) {
                        let held = Arc::clone(&self.inbound_held);
                        self.insert_flow((link, flow_id), Bridged::new(end, String::new(), flow_id, None, held));
                    }
                    OpenResult::Accepted
                }
                Err(AllocError::NotFound { .. } | AllocError::InvalidName(_)) => OpenResult::NameNotFound,
                Err(AllocError::PermissionDenied) => OpenResult::PermissionDenied,
                Err(AllocError::InvalidQos(_) | AllocError::Refused(_)) => OpenResult::QosRefused,
                Err(e) => match resource_errno(&e) {
                    // Out of descriptors, memory, threads: said as such,
                    // with the cause, never as a missing name.
                    Some(errno) => {
                        self.send_frame(link, &resource_limit(flow_id, errno));
                        continue;
                    }
                    None => OpenResult::NameNotFound,
                },
            };
            self.send_frame(link, &Frame::OpenAck { flow_id, result: answer, qos });
        }
        n
    }
}

/// The answer to an open that failed for want of a resource; the errno
/// rides in the answer's QoS field (see [`OpenResult::ResourceLimit`]).
fn resource_limit(flow_id: u32, errno: i32) -> Frame<'static> {
    let mut qos = [0; wire::QOS_LEN];
    qos[..4].copy_from_slice(&(errno.max(0) as u32).to_le_bytes());
    Frame::OpenAck { flow_id, result: OpenResult::ResourceLimit, qos }
}

/// The errno of an alloc that failed for want of a resource (descriptors,
/// memory, threads), found anywhere in its chain of causes.
fn resource_errno(e: &AllocError) -> Option<i32> {
    if let AllocError::ResourceLimit(io) = e {
        return Some(io.raw_os_error().unwrap_or(0));
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if crate::flow::error::is_resource_limit(io) || io.raw_os_error() == Some(libc::EAGAIN) {
                return io.raw_os_error();
            }
        }
        cause = c.source();
    }
    None
}

/// What the application's alloc says when the remote engine answered an
/// open of `name` with `result` (not `Accepted`); `qos` is the answer's
/// QoS field.
fn refusal(result: OpenResult, name: String, qos: &[u8; wire::QOS_LEN]) -> AllocError {
    match result {
        OpenResult::ResourceLimit => {
            let errno = u32::from_le_bytes([qos[0], qos[1], qos[2], qos[3]]);
            AllocError::RemoteResourceLimit { errno: i32::try_from(errno).unwrap_or(0) }
        }
        OpenResult::NameNotFound => AllocError::NotFound { name, dir: None },
        OpenResult::PermissionDenied => AllocError::PermissionDenied,
        OpenResult::QosRefused => AllocError::Refused(crate::flow::handshake::Refusal::InvalidQos),
        OpenResult::Busy => AllocError::RemoteBusy,
        OpenResult::ShuttingDown => AllocError::RemoteShuttingDown,
        // Refusing with "accepted", or over a flow id we chose fresh: not
        // the protocol.
        OpenResult::Accepted | OpenResult::FlowIdInUse => {
            AllocError::CorruptPeer(Corruption::Protocol(format!("remote engine refused the flow: {result:?}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_open_refusal_is_its_own_alloc_error() {
        let r = |result| refusal(result, "svc".into(), &[0; wire::QOS_LEN]);
        assert!(matches!(r(OpenResult::NameNotFound), AllocError::NotFound { name, dir: None } if name == "svc"));
        assert!(matches!(r(OpenResult::PermissionDenied), AllocError::PermissionDenied));
        assert!(matches!(r(OpenResult::QosRefused), AllocError::Refused(_)));
        assert!(matches!(r(OpenResult::Busy), AllocError::RemoteBusy));
        assert!(matches!(r(OpenResult::ShuttingDown), AllocError::RemoteShuttingDown));
        assert!(matches!(r(OpenResult::FlowIdInUse), AllocError::CorruptPeer(Corruption::Protocol(_))));
        assert!(matches!(r(OpenResult::Accepted), AllocError::CorruptPeer(Corruption::Protocol(_))));
        assert!(matches!(r(OpenResult::ResourceLimit), AllocError::RemoteResourceLimit { errno: 0 }));
        let Frame::OpenAck { result, qos, .. } = resource_limit(3, libc::EMFILE) else { panic!() };
        assert!(matches!(
            refusal(result, "svc".into(), &qos),
            AllocError::RemoteResourceLimit { errno } if errno == libc::EMFILE
        ));
    }

    /// An alloc that ran out of descriptors is a resource limit, wherever
    /// in its causes the errno is; a missing name is not.
    #[test]
    fn resource_limits_are_found_in_the_causes() {
        let emfile = || std::io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(resource_errno(&AllocError::ResourceLimit(emfile())), Some(libc::EMFILE));
        assert_eq!(resource_errno(&AllocError::Io(emfile())), Some(libc::EMFILE));
        assert_eq!(resource_errno(&AllocError::Io(std::io::Error::from_raw_os_error(libc::EBADF))), None);
        assert_eq!(resource_errno(&AllocError::NotFound { name: "x".into(), dir: None }), None);
    }
}
