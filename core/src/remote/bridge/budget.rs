//! What the engine holds of what other engines send, and its bounds: a
//! frame is admitted at its header (its flow must be here, and it must fit
//! the flow's largest message), a frame for a flow not here is dropped as
//! its bytes arrive, and the bytes held over every connection (frames not
//! yet whole, messages waiting for room in a local ring) stay within
//! `net.memory_budget`, of which one connection may hold a quarter.
//!
//! It must never let a length a peer wrote decide what is allocated before
//! that length was checked against the flow it claims to belong to.

use super::*;

/// What to do with the frame whose header starts a connection's unread bytes.
pub(super) enum Admit {
    /// Decode it once whole.
    Take,
    /// A data frame for a flow not here: drop its bytes, answer `Reset`.
    Skip { flow_id: u32 },
    /// Longer than its flow allows: the peer broke the protocol.
    Refuse,
    /// The header is there, the flow id not yet.
    Wait,
}

/// The longest `Data` frame (header, fields, stamp, payload, CRC) of a flow
/// whose largest message is `max_msg`.
pub(super) fn max_data_frame(max_msg: usize) -> usize {
    wire::DATA_PREFIX_LEN + wire::STAMP_LEN + max_msg + wire::CRC_LEN
}

/// The largest receive buffer a connection keeps once it grew (see
/// [`Bridge::settle_rx`]): what the doublings reach for a frame of the
/// cluster's default message limit (`cluster.max_message_bytes`).
const RX_KEEP: usize = 2 << 20;

/// Appends what a receive brought to `c`'s unread bytes, first dropping
/// what is left of a skipped frame; false (nothing appended) if that would
/// make the connection hold more than `share` bytes.
pub(super) fn take_received(c: &mut Conn, data: &[u8], share: usize) -> bool {
    let skipped = c.skip.min(data.len());
    c.skip -= skipped;
    let data = &data[skipped..];
    let needed = c.rx.len() + data.len();
    if needed > share {
        return false;
    }
    if needed > c.rx.capacity() {
        // Grow as a Vec would (doubling), but never past the share.
        let target = needed.max(2 * c.rx.capacity()).min(share);
        c.rx.reserve_exact(target - c.rx.len());
    }
    ringflow_ring::copy::extend_bytes(&mut c.rx, data);
    true
}

impl Bridge {
    /// Whether the frame at the start of `buf` (its header checked, `total`
    /// bytes long) may be waited for. Only `Data` frames can be long; the
    /// decoder bounds every other kind's body.
    pub(super) fn admit(&self, link: LinkId, buf: &[u8], total: usize) -> Admit {
        if buf.get(4) != Some(&(wire::Kind::Data as u8)) {
            return Admit::Take;
        }
        let Some(&[a, b, c, d]) = buf.get(wire::HEADER_LEN..wire::HEADER_LEN + 4) else {
            return Admit::Wait;
        };
        let flow_id = u32::from_le_bytes([a, b, c, d]);
        match self.flows.get(&(link, flow_id)) {
            None => Admit::Skip { flow_id },
            Some(f) if total > max_data_frame(f.end.qos().max_msg) => Admit::Refuse,
            Some(_) => Admit::Take,
        }
    }

    /// Bytes held for the budget: connections' buffers beyond their idle
    /// size, and queued messages.
    pub(super) fn held(&self) -> usize {
        // SYNC: Relaxed; see `Inbound::push_back` (this thread's own count).
        self.rx_held + self.inbound_held.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes `conn`'s receive buffer's size into the count again (after
    /// it grew or shrank), then closes the connections holding the most
    /// while the budget is exceeded.
    pub(super) fn recount(&mut self, conn: ConnId) {
        let idle = 2 * self.cfg.buffer_size;
        if let Some(c) = self.conns.get_mut(&conn) {
            let now = c.rx.capacity().saturating_sub(idle);
            self.rx_held = self.rx_held - c.counted + now;
            c.counted = now;
        }
        while self.held() > self.budget {
            // Only a connection holding more than its idle buffer frees
            // anything by going.
            let biggest = self.conns.iter().filter(|(_, c)| c.counted > 0).max_by_key(|(_, c)| c.counted);
            let Some((&id, _)) = biggest else { return };
            self.drop_conn(id);
        }
    }

    /// A connection's buffer after its frames were handled: one that grew
    /// for a large frame and is empty again goes back to its idle size,
    /// unless it is within [`RX_KEEP`] and every connection's buffers
    /// together hold at most a sixteenth of the budget beyond their idle
    /// size (all of it counted in the budget as before). A peer that
    /// sends large frames sends them again (a cluster's appends of
    /// batches), and a buffer shrunk after each grew again by doublings,
    /// each a copy of what it held, into pages the allocator had given
    /// back, each a fault.
    pub(super) fn settle_rx(&mut self, conn: ConnId) {
        let idle = 2 * self.cfg.buffer_size;
        let kept_total = self.budget / (4 * CONN_SHARE);
        let rx_held = self.rx_held;
        if let Some(c) = self.conns.get_mut(&conn) {
            let grown = c.rx.capacity().saturating_sub(idle);
            // What the others hold, and this one's growth.
            let total = rx_held.saturating_sub(c.counted).saturating_add(grown);
            let keep = c.rx.capacity() <= RX_KEEP && total <= kept_total;
            if c.rx.is_empty() && c.rx.capacity() > 4 * idle && !keep {
                c.rx.shrink_to(idle);
            }
        }
        self.recount(conn);
    }

    /// A connection is going: its buffer leaves the count.
    pub(super) fn uncount(&mut self, c: &Conn) {
        self.rx_held -= c.counted;
    }

    /// After flows ended or opens were answered (`churn`), at most once a
    /// [`TRIM_EVERY`]: gives the memory they freed back to the system. The
    /// allocator keeps what threads freed in their arenas (the helper
    /// threads of opens, this thread's), so a burst of hundreds of flows
    /// would otherwise stay resident long after they ended.
    pub(super) fn give_back(&mut self, now: Instant) {
        if self.churn == 0 || now.duration_since(self.trimmed_at) < TRIM_EVERY {
            return;
        }
        self.churn = 0;
        self.trimmed_at = now;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free memory of the allocator's
        // arenas to the system; it touches no memory in use.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// See [`Bridge::give_back`].
const TRIM_EVERY: Duration = Duration::from_secs(1);
