//! The bridge as an engine agent: its duty cycle, and how it sleeps in its
//! io_uring (on the network, its wake-up socket and every local flow's
//! futex word at once).

use super::*;

impl Agent for Bridge {
    fn name(&self) -> &str {
        "ringflow-bridge"
    }

    fn do_work(&mut self) -> usize {
        if self.ready.is_some() {
            self.start_network();
        }
        // The flows before the network: what the network delivers is in
        // its ring as the cycle ends, and what an invoking application
        // waits for is seen when the cycle returns, with no walk over the
        // flows in between (an answer's forwarding is the next cycle's
        // first step either way).
        let work = self.commands()
            + self.opened()
            + self.flows()
            + self.network()
            + self.timers()
            + self.guests()
            + self.cluster_out();
        self.woke = false;
        self.flush_udp();
        if let Some(tcp) = self.tcp.as_mut() {
            // Hand what this cycle queued to the kernel now, not next cycle.
            tcp.submit();
        }
        // SYNC: Acquire; pairs with the Release in `RemoteEngine::flush_closes`,
        // so that a close the application made before it is seen below.
        if self.shared.closing.load(std::sync::atomic::Ordering::Acquire) {
            let out = self.flows.values().all(|b| {
                b.close_mark.is_none() && !(b.tx == End::Open && b.opening.is_none() && b.end.peer_stopped_sending())
            });
            // SYNC: Relaxed; polled, then the engine is joined (see below).
            self.shared.closes_out.store(out, std::sync::atomic::Ordering::Relaxed);
        }
        // SYNC: Relaxed (both flags); `RemoteEngine::shutdown` polls
        // `drained` and then joins the engine thread, which orders the rest.
        if self.shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
            // Drained: nothing of ours unacknowledged, nothing received left
            // to deliver, every consumption acknowledged to the sender, and
            // every frame saying so taken by the kernel (an acknowledgement
            // queued in this very cycle must leave before the connections
            // close, or the sender lingers until its peer timeout).
            let flows_done = self.flows.values().all(|b| {
                b.inbound.is_empty()
                    && b.window.as_ref().is_none_or(SendWindow::is_drained)
                    && b.opening.is_none()
                    && b.close_mark.is_none()
                    && (!b.reliable || b.consumed().min(b.delivered) == b.acked)
            });
            let sent = match self.tcp.as_ref() {
                Some(tcp) => self.conns.keys().all(|&id| tcp.unsent(id).map_or(true, |n| n == 0)),
                None => true,
            };
            self.shared.drained.store(flows_done && sent, std::sync::atomic::Ordering::Relaxed);
        }
        work
    }

    /// What this cycle's closing entry brought (a doorbell's completion,
    /// say, when the task work a direct read put off ran only then) or an
    /// entry still owed: the next cycle's work. An invoking application's
    /// answer stopped at a cycle that found nothing but left this, and its
    /// message stayed in the ring of a flow gone cold.
    fn holds_back(&mut self) -> bool {
        self.tcp.as_mut().is_some_and(NetDriver::holds_back)
    }

    /// Sleeps in the io_uring until a completion: a segment or connection
    /// from the network, a command's wake-up datagram, a doorbell, or a
    /// publish into any hot local flow's ring. For the last, every such flow's data wait point
    /// announces a sleeper (the flow protocol: its sender then wakes the
    /// futex word, in whatever process it runs) and one `FUTEX_WAITV` on
    /// the words joins the ring's wait. Bounded by `timeout` either way.
    fn wait(&mut self, timeout: Duration) {
        use std::sync::atomic::{fence, Ordering};
        // SYNC: Relaxed store then a SeqCst fence; pairs with `Shared::wake`.
        self.shared.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let mut words = std::mem::take(&mut self.futex_words);
        let mut armed = std::mem::take(&mut self.futex_flows);
        // The guests' words first (a member's frame in a crossing group's
        // log), then the flows' up to the kernel's limit.
        let mut guest_sleep = std::mem::take(&mut self.guest_sleep);
        for g in &mut self.guests {
            g.before_sleep(&mut guest_sleep);
        }
        let mut timeout = timeout.min(guest_sleep.bound);
        let guest_words = guest_sleep.words.len().min(crate::uring::MAX_FUTEX_WAITS);
        words.extend_from_slice(&guest_sleep.words[..guest_words]);
        if guest_words < guest_sleep.words.len() {
            // More words than one wait takes: their guests are polled.
            timeout = timeout.min(crate::remote::guest::POLL);
        }
        let mut barrier = guest_sleep.barrier;
        // Hot flows only: the others' doorbells are armed, and their
        // descriptors are received in the same ring.
        for &key in &self.hot {
            if words.len() == crate::uring::MAX_FUTEX_WAITS {
                // The rest are seen at the end of the (bounded) sleep;
                // bounded short if the guests' words took their room.
                if guest_words > 0 {
                    timeout = timeout.min(crate::remote::guest::POLL);
                }
                break;
            }
            let Some(b) = self.flows.get(&key) else { continue };
            if !self.may_forward(key.0, b) {
                continue;
            }
            let wp = b.end.data_wait();
            let token = wp.prepare();
            barrier |= wp.needs_membarrier();
            words.push((wp.futex_word() as usize, token));
            armed.push(key);
        }
        // Publishers that skip their fence (membarrier wake mode) need ours,
        // before the re-check below.
        let barrier_failed = barrier && crate::membarrier::heavy_barrier().is_err();
        if !barrier_failed && !self.local_work() && !self.guests.iter().any(|g| g.has_work()) {
            if let Some(tcp) = self.tcp.as_mut() {
                // SAFETY: the words are in the rings of flows `self.flows`
                // holds and in the group logs of the guests' ends, which
                // nothing removes before `park` submits the wait.
                let waiting = unsafe { tcp.arm_futexes(&words) };
                if !waiting && guest_words > 0 {
                    // Not armed (no io_uring futex waits here, or the last
                    // wait's cancel not reaped yet): the guests' words are
                    // polled, never missed.
                    timeout = timeout.min(crate::remote::guest::POLL);
                }
                tcp.park(timeout);
                tcp.disarm_futexes();
            }
        }
        for key in armed.drain(..) {
            if let Some(b) = self.flows.get(&key) {
                b.end.data_wait().finish();
            }
        }
        for g in &mut self.guests {
            g.after_sleep();
        }
        guest_sleep.clear();
        self.guest_sleep = guest_sleep;
        words.clear();
        (self.futex_words, self.futex_flows) = (words, armed);
        // SYNC: Relaxed; a stale `true` costs a command one needless datagram.
        self.shared.sleeping.store(false, Ordering::Relaxed);
        self.woke = true;
        // The timers run on the next duty cycle (they count cycles, and a
        // sleep may have been long).
        self.cycles |= 31;
    }

    fn sleeps(&self) -> bool {
        self.tcp.is_some() && self.shared.poke.get().is_some()
    }

    fn idle_sleep(&self) -> Option<Duration> {
        self.settled().then_some(SETTLED_SLEEP)
    }

    fn wake_hook(&self) -> Option<crate::engine::WakeHook> {
        let shared = Arc::clone(&self.shared);
        Some(Arc::new(move || {
            // As a command does (without one): a bridge about to sleep sees
            // `pending` (or is poked), so the engine's stop flag is seen now.
            // SYNC: Release; pairs with the Acquire swap in `Bridge::commands`.
            shared.pending.store(true, std::sync::atomic::Ordering::Release);
            shared.wake();
        }))
    }

    fn attach_stats(&mut self, slot: Arc<crate::stats::Slot>) {
        self.stats = Some(slot);
    }

    fn on_close(&mut self) {
        // The gateways (attached last) leave their groups before the node
        // they propose to stops.
        while let Some(guest) = self.guests.pop() {
            drop(guest);
        }
        self.flows.clear();
        self.conns.clear();
    }
}
