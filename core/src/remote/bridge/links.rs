//! Links: dialling and redialling, the hello exchange (with the proof of
//! the key, see `wire::auth`), finding a reconnecting peer again, resuming
//! a link's flows, and the timers (keepalives, silent connections, hellos
//! past their deadline, flows that waited too long).
//!
//! A connection is a stranger until its hello is done: nothing it sends
//! is read as a frame before, it holds no reassembly buffer, it is dropped
//! at `net.hello_timeout_ms`, and at most `net.max_hellos` strangers are
//! kept at once (one more drops the oldest: an honest hello takes one
//! round trip, so the oldest is the likeliest to be idle).

use super::*;

/// Why dialling an engine failed.
#[derive(Debug)]
pub(super) enum DialError {
    /// Connecting (or setting up) the TCP socket failed.
    Connect(std::io::Error),
    /// The engine's network did not start.
    NoNetwork,
    /// The network driver refused the connected socket.
    Adopt(crate::uring::TcpError),
}

impl DialError {
    /// What an alloc to the engine at `addr` that needed this dial says.
    pub(super) fn into_alloc_error(self, addr: SocketAddr) -> AllocError {
        match self {
            DialError::Connect(source) => AllocError::EngineUnreachable { addr: addr.to_string(), source },
            DialError::NoNetwork => AllocError::EngineNetworkDown,
            DialError::Adopt(crate::uring::TcpError::Io { errno, .. }) => {
                let e = std::io::Error::from_raw_os_error(errno);
                if crate::flow::error::is_resource_limit(&e) {
                    AllocError::ResourceLimit(e)
                } else {
                    AllocError::Io(e)
                }
            }
            // A socket just connected is neither unknown nor closed to the
            // driver; were it, the connection is as good as refused.
            DialError::Adopt(crate::uring::TcpError::UnknownConn | crate::uring::TcpError::Closed) => {
                AllocError::EngineUnreachable {
                    addr: addr.to_string(),
                    source: std::io::Error::from(std::io::ErrorKind::NotConnected),
                }
            }
        }
    }
}

/// Where a hello stands after one message.
enum Step {
    /// More bytes are needed.
    Wait,
    /// A message was handled and another is due (the proof of the key).
    Again,
    /// The connection is trusted, with these settings.
    Done(Agreed),
    /// The hello failed; the connection goes. True if the peer was told
    /// why (a refusal went out).
    Failed(wire::WireError, bool),
}

impl Bridge {
    /// The link to the engine at `addr`, dialled if there is none.
    pub(super) fn link_to(&mut self, addr: SocketAddr) -> Result<LinkId, DialError> {
        if let Some((&id, _)) = self.links.iter().find(|(_, l)| l.addr == Some(addr)) {
            return Ok(id);
        }
        let conn = self.dial(addr)?;
        let id = self.next_link;
        self.next_link = self.next_link.wrapping_add(1).max(1);
        self.links.insert(id, Link::new(Some(addr), conn));
        if let Some(c) = self.conns.get_mut(&conn) {
            c.link = Some(id);
        }
        Ok(id)
    }

    /// Connects to `addr` and sends our hello.
    pub(super) fn dial(&mut self, addr: SocketAddr) -> Result<ConnId, DialError> {
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(DialError::Connect)?;
        stream.set_nodelay(true).map_err(DialError::Connect)?;
        let tcp = self.tcp.as_mut().ok_or(DialError::NoNetwork)?;
        let nonce = match &self.hellos.key {
            Some(_) => Some(super::super::random_nonce().map_err(DialError::Connect)?),
            None => None,
        };
        let conn = tcp.adopt(stream).map_err(DialError::Adopt)?;
        let mut c = Conn::new(true, self.cfg.buffer_size);
        c.nonce = nonce;
        c.handed = tcp.handed(conn).unwrap_or(0);
        self.conns.insert(conn, c);
        let mut hello = Vec::new();
        Hello { auth: nonce, ..self.hello }.encode(&mut hello);
        let _ = tcp.send(conn, &hello);
        Ok(conn)
    }

    pub(super) fn network(&mut self) -> usize {
        let Some(tcp) = self.tcp.as_mut() else { return 0 };
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        tcp.poll(&mut events);
        let n = events.len();
        if n > 0 {
            self.shared.publish_sends(tcp);
        }
        for ev in events.drain(..) {
            match ev {
                TcpEvent::Accepted(conn) => self.accepted(conn),
                TcpEvent::Received(conn, buf) if self.poke_conn == Some(conn) => {
                    // A wake-up: it has done its job by ending the sleep.
                    self.tcp.as_mut().expect("network started").recycle(buf);
                }
                TcpEvent::Received(conn, buf) if self.udp.as_ref().is_some_and(|u| u.conn == conn) => {
                    let tcp = self.tcp.as_mut().expect("network started");
                    // Copied out (the buffer goes back at once) into a
                    // buffer kept across datagrams: no allocation per one.
                    let mut datagram = std::mem::take(&mut self.datagram);
                    datagram.clear();
                    datagram.extend_from_slice(tcp.data(&buf));
                    tcp.recycle(buf);
                    self.on_datagram(&datagram);
                    self.datagram = datagram;
                }
                TcpEvent::Received(conn, buf) => {
                    let share = self.budget / CONN_SHARE;
                    let tcp = self.tcp.as_mut().expect("network started");
                    let kept = self.conns.get_mut(&conn).is_none_or(|c| {
                        c.rx_seen = true;
                        budget::take_received(c, tcp.data(&buf), share)
                    });
                    tcp.recycle(buf);
                    if !kept {
                        // More than one connection may hold: it goes.
                        self.drop_conn(conn);
                        continue;
                    }
                    self.recount(conn);
                    self.decode(conn);
                }
                TcpEvent::Sent(conn, n) => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.handed += n as u64;
                    }
                }
                TcpEvent::Closed(conn, _) => self.lost(conn),
                TcpEvent::Rang { token, more } => {
                    // A silent flow's application published (or the flow
                    // ended): the data path looks at it again. A watch
                    // that ended is set up anew when the flow next cools.
                    let Some(&key) = self.doorbells.get(&token) else { continue };
                    if more {
                        self.shared.count(|s| &s.doorbells_rung);
                    }
                    if !more {
                        self.doorbells.remove(&token);
                        if let Some(b) = self.flows.get_mut(&key) {
                            b.doorbell = None;
                        }
                    }
                    self.mark_hot(key);
                }
            }
        }
        self.events = events;
        n
    }

    /// A connection dialled us: a stranger until its hello is done. Past
    /// `net.max_hellos` strangers the oldest goes.
    fn accepted(&mut self, conn: ConnId) {
        let nonce = match &self.hellos.key {
            Some(_) => match super::super::random_nonce() {
                Ok(n) => Some(n),
                Err(_) => {
                    // No nonce, no proof: the connection cannot be trusted.
                    self.drop_conn(conn);
                    return;
                }
            },
            None => None,
        };
        let strangers = self.conns.values().filter(|c| !c.ready && !c.dialled).count();
        if strangers >= self.hellos.max_pending {
            let oldest = self
                .conns
                .iter()
                .filter(|(_, c)| !c.ready && !c.dialled)
                .min_by_key(|(_, c)| c.opened)
                .map(|(&id, _)| id);
            if let Some(oldest) = oldest {
                self.drop_conn(oldest);
            }
        }
        let peer = self.tcp.as_ref().and_then(|t| t.peer_addr(conn));
        tracing::debug!(peer = ?peer, conn = ?conn, "connection accepted");
        let mut c = Conn::new(false, self.cfg.buffer_size);
        c.nonce = nonce;
        c.handed = self.tcp.as_ref().and_then(|t| t.handed(conn).ok()).unwrap_or(0);
        self.conns.insert(conn, c);
    }

    /// Runs the hello exchange on `conn`'s received bytes; true once done.
    /// Each step decodes one handshake message only: whatever follows it
    /// stays unread until the connection is trusted.
    pub(super) fn handshake(&mut self, conn: ConnId) -> bool {
        loop {
            match self.hello_step(conn) {
                Step::Wait => return false,
                Step::Again => continue,
                Step::Failed(e, told) => {
                    self.hello_failed(conn, &e, told);
                    return false;
                }
                Step::Done(agreed) => {
                    self.hello_done(conn, agreed);
                    return true;
                }
            }
        }
    }

    /// One message of the hello: the answer to our hello (we dialled), the
    /// peer's hello, or the dialler's proof of the key (it dialled us).
    fn hello_step(&mut self, conn: ConnId) -> Step {
        let Some(c) = self.conns.get_mut(&conn) else { return Step::Wait };
        if c.refused {
            c.rx = Vec::new();
            return Step::Wait;
        }
        let key = self.hellos.key.as_ref();
        let ours = Hello { auth: c.nonce, ..self.hello };
        let mut out = Vec::new();
        let step = if c.dialled {
            match HelloAck::decode(&c.rx) {
                Ok(None) => return Step::Wait,
                Err(e) => Step::Failed(e, false),
                Ok(Some((ack, n))) => {
                    c.rx.drain(..n);
                    match wire::accept_ack(&ours, &ack, key) {
                        Ok(agreed) => {
                            if let (Some(key), Some(t)) = (key, agreed.transcript.as_ref()) {
                                let proof = key.prove(wire::auth::Role::Dialler, t);
                                HelloProof::Proof(proof).encode(&mut out);
                            }
                            Step::Done(agreed)
                        }
                        Err(e) => {
                            if let wire::WireError::BadProof = e {
                                // Say why before hanging up: the acceptor's
                                // operator learns that the keys differ.
                                HelloProof::Refuse(wire::RejectReason::BadProof).encode(&mut out);
                            }
                            Step::Failed(e, false)
                        }
                    }
                }
            }
        } else if let Some(agreed) = c.proof_due {
            match HelloProof::decode(&c.rx) {
                Ok(None) => return Step::Wait,
                Err(e) => Step::Failed(e, false),
                Ok(Some((msg, n))) => {
                    c.rx.drain(..n);
                    let checked = match (key, agreed.transcript.as_ref()) {
                        (Some(key), Some(t)) => wire::check_proof(key, t, &msg),
                        _ => Err(wire::WireError::BadProof),
                    };
                    match checked {
                        Ok(()) => Step::Done(agreed),
                        Err(e) => Step::Failed(e, false),
                    }
                }
            }
        } else {
            match Hello::decode(&c.rx) {
                Ok(None) => return Step::Wait,
                Err(e) => Step::Failed(e, false),
                Ok(Some((theirs, n))) => {
                    c.rx.drain(..n);
                    let (ack, agreed) = wire::respond(&ours, &theirs, key);
                    ack.encode(&mut out);
                    match agreed {
                        Ok(agreed) if agreed.transcript.is_some() => {
                            c.proof_due = Some(agreed);
                            Step::Again
                        }
                        Ok(agreed) => Step::Done(agreed),
                        Err(e) => Step::Failed(e, false),
                    }
                }
            }
        };
        let told = !out.is_empty();
        if let (true, Some(tcp)) = (told, self.tcp.as_mut()) {
            let _ = tcp.send(conn, &out);
        }
        match step {
            Step::Failed(e, _) => Step::Failed(e, told),
            step => step,
        }
    }

    /// The hello on `conn` failed: it goes (once the refusal we `told` the
    /// peer is out, see `Conn::refused`), and a refusal that says the
    /// engines will not talk (keys, versions) is told: in the log, and to
    /// the opens waiting on a link we dialled, which is then redialled no
    /// sooner than its backoff says (and dropped if no flow needs it).
    fn hello_failed(&mut self, conn: ConnId, e: &wire::WireError, told: bool) {
        use wire::{RejectReason as R, WireError as W};
        let reason = match *e {
            W::Rejected { reason, .. } | W::KeyMismatch { reason } => Some(reason),
            W::BadProof => Some(R::BadProof),
            W::NoCommonVersion { .. } => Some(R::NoCommonVersion),
            _ => None,
        };
        let dialled = self.conns.get(&conn).and_then(|c| c.dialled.then_some(c.link)).flatten();
        let peer = self.tcp.as_ref().and_then(|t| t.peer_addr(conn));
        if let Some(reason) = reason.filter(|r| !matches!(r, R::SelfConnect | R::ShuttingDown)) {
            let whose = match (dialled.is_some(), peer) {
                (true, Some(a)) => format!("the connection to the engine at {a}"),
                (false, Some(a)) => format!("a connection from {a}"),
                (_, None) => "a connection".to_owned(),
            };
            self.report(&format!("{whose} was refused: {e}"));
            if let Some(link) = dialled {
                self.refuse_opens(link, reason);
            }
        }
        if told {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.refused = true;
                c.rx = Vec::new();
            }
            // The link no longer counts on it.
            let link = self.conns.get_mut(&conn).and_then(|c| c.link.take());
            if let Some(l) = link.and_then(|link| self.links.get_mut(&link)) {
                if l.conn == Some(conn) {
                    l.conn = None;
                    l.down_since.get_or_insert_with(Instant::now);
                }
            }
        } else {
            self.drop_conn(conn);
        }
        if let Some(link) = dialled {
            if !self.flows.keys().any(|(l, _)| *l == link) {
                self.links.remove(&link);
            } else if let Some(l) = self.links.get_mut(&link) {
                l.next_dial = Instant::now() + l.backoff;
                l.backoff = (l.backoff * 2).min(REDIAL_MAX);
            }
        }
    }

    /// Opens waiting on `link` fail with the reason its engine and this one
    /// refused each other (rather than waiting out their peer timeout).
    fn refuse_opens(&mut self, link: LinkId, reason: wire::RejectReason) {
        let addr = self.links.get(&link).and_then(|l| l.addr).map_or_else(String::new, |a| a.to_string());
        let waiting: Vec<_> =
            self.flows.iter().filter(|((l, _), b)| *l == link && b.opening.is_some()).map(|(&k, _)| k).collect();
        for key in waiting {
            if let Some(mut b) = self.flows.remove(&key) {
                if let Some(reply) = b.opening.take() {
                    reply.answer(&mut b.end, Err(AllocError::EngineRefused { addr: addr.clone(), reason }));
                }
            }
        }
        if let Some(l) = self.links.get_mut(&link) {
            l.queued.clear();
        }
    }

    /// Logs one warning about refused hellos (and writes it to stderr when
    /// no subscriber listens), at most one a second
    /// (a flood of bad hellos must not flood the log): the lines held back
    /// are counted in the next.
    fn report(&mut self, what: &str) {
        let now = Instant::now();
        let (last, held) = &mut self.reported;
        if last.is_some_and(|t| now - t < Duration::from_secs(1)) {
            *held += 1;
            return;
        }
        let more = if *held > 0 { format!(" ({held} more refusals since the last line)") } else { String::new() };
        tracing::warn!(held_back = *held, "{what}");
        crate::log::stderr_if_unheard(format_args!("ringflow engine: {what}{more}"));
        (*last, *held) = (Some(now), 0);
    }

    /// The hello on `conn` is done: it is trusted, its link comes up.
    fn hello_done(&mut self, conn: ConnId, agreed: Agreed) {
        let buffer = 2 * self.cfg.buffer_size;
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let peer = agreed.peer_engine_id;
        c.ready = true;
        c.proof_due = None;
        c.rx.reserve(buffer.saturating_sub(c.rx.len()));
        let link = match c.link {
            Some(link) => link,
            None => self.adopt_link(conn, peer),
        };
        // Send stamps mean something only on the host that took them: stamp
        // frames to an engine that reads them and is reached over loopback.
        let local = self.tcp.as_ref().and_then(|t| t.peer_addr(conn)).is_some_and(|a| a.ip().is_loopback());
        if let Some(l) = self.links.get_mut(&link) {
            l.stamps = local && agreed.features.contains(Features::STAMPS);
        }
        let addr = self.tcp.as_ref().and_then(|t| t.peer_addr(conn));
        tracing::info!(peer = ?addr, peer_engine = peer, link, conn = ?conn, "link up: hello done");
        self.link_up(link, conn, peer);
    }

    /// The link of a connection that dialled us: the one of the same peer
    /// engine if it had one (a reconnect), else a new one.
    pub(super) fn adopt_link(&mut self, conn: ConnId, peer: u64) -> LinkId {
        let old = self.links.iter().find(|(_, l)| l.addr.is_none() && l.peer_engine == Some(peer)).map(|(&id, _)| id);
        let id = match old {
            Some(id) => {
                // A half-open old connection of the same peer goes.
                if let Some(prev) = self.links.get_mut(&id).and_then(|l| l.conn.take()) {
                    if let Some(tcp) = self.tcp.as_mut() {
                        let _ = tcp.close(prev);
                    }
                    if let Some(c) = self.conns.get_mut(&prev) {
                        c.link = None;
                    }
                }
                id
            }
            None => {
                let id = self.next_link;
                self.next_link = self.next_link.wrapping_add(1).max(1);
                let mut link = Link::new(None, conn);
                link.peer_engine = Some(peer);
                self.links.insert(id, link);
                id
            }
        };
        if let Some(l) = self.links.get_mut(&id) {
            l.conn = Some(conn);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.link = Some(id);
        }
        id
    }

    /// The hello on `link`'s connection is done: resume its flows.
    pub(super) fn link_up(&mut self, link: LinkId, conn: ConnId, peer: u64) {
        let Some(l) = self.links.get_mut(&link) else { return };
        let restarted = l.peer_engine.is_some_and(|p| p != peer);
        if restarted {
            l.udp = udp::LinkUdp::default();
        }
        l.peer_engine = Some(peer);
        l.down_since = None;
        l.backoff = REDIAL_FIRST;
        let queued = std::mem::take(&mut l.queued);
        if restarted {
            // The new engine numbers its flows afresh: the ends of the old
            // one's are nobody's now.
            self.ended.retain(|e| e.0 .0 != link);
        }
        if let Some(tcp) = self.tcp.as_mut() {
            if !queued.is_empty() {
                let _ = tcp.send(conn, &queued);
            }
        }
        let keys: Vec<_> = self.flows.keys().filter(|(l, _)| *l == link).copied().collect();
        for key in keys {
            let (_, flow_id) = key;
            // What the flow does now (resend, resume) is the data path's.
            self.mark_hot(key);
            let Some(b) = self.flows.get_mut(&key) else { continue };
            if b.opening.is_some() {
                if !queued.is_empty() {
                    continue; // its Open just went out with the queue
                }
                let (name, qos) = (b.name.clone(), b.open_qos);
                self.send_frame(link, &Frame::Open { flow_id, name: &name, qos });
                continue;
            }
            if restarted {
                // A new engine there: the flows of the old one are gone.
                if let Some(b) = self.flows.remove(&key) {
                    b.end.abandon();
                }
                continue;
            }
            b.paused = b.tx != End::Reset;
            let resume = b.seq.resume_frame();
            // What we said on the lost connection may not have arrived: say
            // it again (both are idempotent). Without the ack a sender whose
            // window filled would wait forever for consumption already done.
            let ack = (b.reliable && b.acked > 0).then_some(Frame::Ack { flow_id, cumulative_seq: b.acked });
            let reset = (b.rx == End::Reset).then_some(Frame::Reset { flow_id, consumed_seq: b.acked });
            self.send_frame(link, &resume);
            for frame in [ack, reset].into_iter().flatten() {
                self.send_frame(link, &frame);
            }
        }
        // Prove the UDP path at once, so lossy flows move to it early.
        self.udp_hellos();
    }

    /// Closes a connection that broke the protocol.
    pub(super) fn drop_conn(&mut self, conn: ConnId) {
        if let Some(tcp) = self.tcp.as_mut() {
            let _ = tcp.close(conn);
        }
        self.lost(conn);
    }

    /// Keepalives, silent connections, redials and flows that waited too
    /// long for their link.
    pub(super) fn timers(&mut self) -> usize {
        // Every 32nd cycle: often enough for millisecond timers, rare
        // enough to keep the clock out of a spinning duty cycle.
        self.cycles = self.cycles.wrapping_add(1);
        if self.cycles % 32 != 0 {
            return 0;
        }
        let now = Instant::now();
        if now - self.ticked < Duration::from_millis(5) {
            return 0;
        }
        self.ticked = now;
        self.give_back(now);
        self.close_doorbells();
        let mut work = 0;
        let mut silent = std::mem::take(&mut self.scratch.silent);
        let mut keepalive = std::mem::take(&mut self.scratch.keepalive);
        let hello_deadline = self.hellos.timeout;
        for (&id, c) in &mut self.conns {
            // What the data path saw since the last tick happened by now
            // (at most a tick ago, milliseconds: these limits are 100 ms
            // and seconds).
            if std::mem::take(&mut c.rx_seen) {
                c.last_rx = now;
            }
            if std::mem::take(&mut c.tx_seen) {
                c.last_tx = now;
            }
            if now - c.last_rx > SILENT_LIMIT || (!c.ready && now - c.opened > hello_deadline) {
                silent.push(id);
            } else if c.ready && now - c.last_tx >= KEEPALIVE {
                keepalive.push(id);
            }
        }
        for id in silent.drain(..) {
            self.drop_conn(id);
            work += 1;
        }
        if let Some(tcp) = self.tcp.as_mut() {
            let frame = Frame::Keepalive { ts_ns: 0 };
            for &id in &keepalive {
                put_frame(tcp, id, &frame, Checksum::None);
                tcp.flush(id);
                if let Some(c) = self.conns.get_mut(&id) {
                    c.last_tx = now;
                }
            }
        }
        keepalive.clear();
        (self.scratch.silent, self.scratch.keepalive) = (silent, keepalive);
        if now - self.hellos_at >= KEEPALIVE {
            self.hellos_at = now;
            self.udp_hellos();
        }
        // Redial links that lost their connection.
        let due: Vec<(LinkId, SocketAddr)> = self
            .links
            .iter()
            .filter(|(_, l)| l.conn.is_none() && l.next_dial <= now)
            .filter_map(|(&id, l)| l.addr.map(|a| (id, a)))
            .collect();
        for (id, addr) in due {
            work += 1;
            match self.dial(addr) {
                Ok(conn) => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.link = Some(id);
                    }
                    if let Some(l) = self.links.get_mut(&id) {
                        l.conn = Some(conn);
                    }
                }
                Err(e) => {
                    if let Some(l) = self.links.get_mut(&id) {
                        tracing::debug!(peer = %addr, error = ?e, retry_in = ?l.backoff, "redial failed");
                        l.next_dial = now + l.backoff;
                        l.backoff = (l.backoff * 2).min(REDIAL_MAX);
                    }
                }
            }
        }
        // Flows whose link has been down longer than their peer timeout.
        let expired: Vec<(LinkId, u32)> = self
            .flows
            .iter()
            .filter(|((link, _), b)| {
                self.links.get(link).is_none_or(|l| l.down_since.is_some_and(|since| now - since > b.peer_timeout))
            })
            .map(|(&k, _)| k)
            .collect();
        self.churn += expired.len();
        for key in expired {
            work += 1;
            if let Some(mut b) = self.flows.remove(&key) {
                let peer = self.links.get(&key.0).and_then(|l| l.addr);
                tracing::warn!(peer = ?peer, flow = %b.name, flow_id = key.1, "flow ended: its link was down longer than its peer timeout");
                match b.opening.take() {
                    Some(reply) => reply.answer(&mut b.end, Err(AllocError::PeerGone)),
                    None => b.end.abandon(),
                }
            }
        }
        // Links with no flow left, none being opened for the peer, and no
        // connection go. (An open under way keeps its link: were the link
        // dropped during a cut, the reconnecting peer's repeated Open would
        // come in on a new link and open the flow a second time.)
        let idle: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(id, l)| {
                l.conn.is_none()
                    && !self.flows.keys().any(|(fl, _)| fl == *id)
                    && !self.opening.iter().any(|(fl, _)| fl == *id)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in idle {
            self.links.remove(&id);
        }
        work
    }

    /// A connection is gone: its link waits for a new one.
    pub(super) fn lost(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else { return };
        // Closes queued on it that the kernel took before it went are told
        // now (its count is gone after this); the others are the resume's.
        for b in self.flows.values_mut() {
            b.check_close(conn, Some(c.handed), false);
        }
        self.uncount(&c);
        let Some(link) = c.link else { return };
        let Some(l) = self.links.get_mut(&link) else { return };
        if l.conn == Some(conn) {
            tracing::info!(peer = ?l.addr, peer_engine = ?l.peer_engine, link, conn = ?conn, "link down: connection lost");
            l.conn = None;
            l.down_since.get_or_insert_with(Instant::now);
            l.next_dial = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_dial_names_its_cause() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        match DialError::Connect(refused).into_alloc_error(addr) {
            AllocError::EngineUnreachable { addr: a, source } => {
                assert_eq!(a, "127.0.0.1:9");
                assert_eq!(source.raw_os_error(), Some(libc::ECONNREFUSED));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(DialError::NoNetwork.into_alloc_error(addr), AllocError::EngineNetworkDown));
        let adopt = |errno| DialError::Adopt(crate::uring::TcpError::Io { op: "epoll_ctl", errno });
        assert!(matches!(
            adopt(libc::EMFILE).into_alloc_error(addr),
            AllocError::ResourceLimit(e) if e.raw_os_error() == Some(libc::EMFILE)
        ));
        assert!(matches!(
            adopt(libc::EBADF).into_alloc_error(addr),
            AllocError::Io(e) if e.raw_os_error() == Some(libc::EBADF)
        ));
    }
}
