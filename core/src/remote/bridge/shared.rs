//! What application threads share with the bridge: the commands they queue
//! for it (opens), how the bridge answers them, how they wake it, and the
//! counters `RemoteEngine::stats` reads.

use super::*;

/// A reply to the application that asked to open a flow: the granted QoS.
pub(in crate::remote) type OpenReply = mpsc::Sender<Result<Qos, AllocError>>;

/// Where the outcome of an `Open` goes.
pub(in crate::remote) enum Reply {
    /// To an application thread of this process, waiting on the channel.
    Channel(OpenReply),
    /// Into the flow itself, as its first message (an application attached
    /// to the host engine: see `host`).
    Announce,
}

impl Shared {
    /// Wakes the bridge if it sleeps in its io_uring (a command for it):
    /// costs a fence and a load while it is awake, one datagram on its
    /// wake-up socketpair while it sleeps.
    #[inline]
    pub(super) fn wake(&self) {
        use std::os::fd::AsRawFd as _;
        // SYNC: SeqCst fence; pairs with the fence in `Bridge::wait` between
        // its `sleeping` store and its look at `pending` (Dekker): either it
        // sees our command, or we see it sleeping.
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        if !self.sleeping.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Some(fd) = self.poke.get() {
            // SAFETY: a one-byte send from a live buffer on a socket we own;
            // nonblocking (a full queue means a wake-up is pending anyway).
            unsafe { libc::send(fd.as_raw_fd(), b"!".as_ptr().cast(), 1, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
        }
    }
}

impl Shared {
    /// Adds one to a counter.
    pub(super) fn count(&self, which: impl Fn(&Shared) -> &std::sync::atomic::AtomicU64) {
        // SYNC: Relaxed; counters for reports, nothing rides on them.
        which(self).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Publishes the driver's send counters for `RemoteEngine::stats`.
    pub(super) fn publish_sends(&self, tcp: &NetDriver) {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = tcp.stats();
        // SYNC: Relaxed; counters for reports, nothing rides on them.
        self.plain_sends.store(stats.plain_sends, Relaxed);
        self.direct_receives.store(stats.direct_recvs, Relaxed);
        self.zc_sends.store(stats.zc_sends, Relaxed);
        self.registered_sends.store(stats.fixed_sends, Relaxed);
        self.registered_buffers.store(tcp.registered_buffers() as u64, Relaxed);
    }

    /// Queues a command for the bridge (then wake it, if it has a thread).
    pub(in crate::remote) fn push(&self, command: Command) {
        self.commands.lock().unwrap_or_else(|p| p.into_inner()).push(command);
        // SYNC: Release; pairs with the Acquire swap in `Bridge::commands`.
        self.pending.store(true, std::sync::atomic::Ordering::Release);
        self.wake();
    }
}

impl Reply {
    pub(super) fn answer(self, end: &mut FlowEnd, result: Result<Qos, AllocError>) {
        match self {
            Reply::Channel(tx) => {
                let _ = tx.send(result);
            }
            Reply::Announce => {
                // The ring is empty: nothing was delivered before the outcome.
                let _ = end.try_send(&crate::remote::host::encode_outcome(&result));
            }
        }
    }
}

/// A request from an application thread.
pub(in crate::remote) enum Command {
    Open { addr: SocketAddr, name: String, qos: Qos, end: FlowEnd, reply: Reply },
}

/// What application threads share with the bridge.
#[derive(Default)]
pub(in crate::remote) struct Shared {
    pub commands: Mutex<Vec<Command>>,
    /// `flow.latency` of the engine's configuration, for the flows it sets
    /// up (its ends of remote flows, and the flows to local listeners).
    pub latency: std::sync::atomic::AtomicBool,
    /// Set in invoker mode: the engine that flows this bridge allocates to
    /// local listeners must drive.
    pub invoker: std::sync::OnceLock<Weak<Invoker>>,
    /// Commands are waiting (so an idle duty cycle takes no lock).
    pub pending: std::sync::atomic::AtomicBool,
    /// Set by a clean shutdown: refuse new flows, finish what is in flight.
    pub draining: std::sync::atomic::AtomicBool,
    /// Set by the bridge while draining once every reliable message was
    /// acknowledged and every received one delivered.
    pub drained: std::sync::atomic::AtomicBool,
    /// Set by `RemoteEngine::shutdown`: report in `closes_out` whether every
    /// local sender's end has been handed to the network.
    pub closing: std::sync::atomic::AtomicBool,
    /// Set by the bridge while `closing`: no flow's local application has
    /// closed its sending side without our `Close` in the kernel's hands.
    pub closes_out: std::sync::atomic::AtomicBool,
    /// The bridge sleeps in its io_uring (see `Shared::wake`).
    pub sleeping: std::sync::atomic::AtomicBool,
    /// The end of the bridge's wake-up socketpair that `Shared::wake` writes.
    pub poke: std::sync::OnceLock<std::os::fd::OwnedFd>,
    /// Lossy flows' datagrams sent, received, and dropped at sending.
    pub datagrams_sent: std::sync::atomic::AtomicU64,
    pub datagrams_received: std::sync::atomic::AtomicU64,
    pub datagrams_dropped: std::sync::atomic::AtomicU64,
    /// The TCP driver's send counters (see `TcpStats`), as of the bridge's
    /// last duty cycle that saw a completion, and the buffers it registered.
    pub plain_sends: std::sync::atomic::AtomicU64,
    pub zc_sends: std::sync::atomic::AtomicU64,
    pub registered_sends: std::sync::atomic::AtomicU64,
    pub registered_buffers: std::sync::atomic::AtomicU64,
    /// The TCP driver's direct reads (see `TcpStats::direct_recvs`).
    pub direct_receives: std::sync::atomic::AtomicU64,
    /// Doorbells rung: silent flows the engine looked at again because
    /// their application published (or their flow ended).
    pub doorbells_rung: std::sync::atomic::AtomicU64,
    /// The transport the bridge built.
    pub backend: std::sync::OnceLock<Backend>,
}
