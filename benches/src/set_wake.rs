//! Cases `set-wake-64B-xN`: what waking one flow of a set costs as the set
//! grows. The pong side, a process of its own (this executable started
//! again, as `processes.rs` does), holds the receiving ends of N flows in
//! one `FlowSet` and sleeps in its blocking wait; the ping side (the
//! bench's process) sends a 64-byte message on one flow (a different one
//! each round trip, striding through all N), busy-polls that flow for the
//! echo, then pauses (untimed) so the pong side is asleep again before the
//! next. A round trip is the set's wake-up on the one active flow, its
//! receive and its reply: up to 127 flows the set sleeps in `futex_waitv`,
//! past that in epoll. Two processes, as a server and its clients run, and
//! so each process holds one descriptor per flow: 10,000 flows fit a
//! descriptor limit of 20,000 (a pair in one process holds two).

use std::time::{Duration, Instant};

use ringflow_api::{
    Deadline, Flow, FlowOptions, FlowSet, Interest, Listener, ListenerOptions, Qos, Ready, RecvError, SetError,
};

use crate::error::BenchError;
use crate::flow::{err, recv_with, DirGuard};
use crate::measure::{Measurement, RunCtx};
use crate::os::{check_after_timeout, Wait, BLOCK_TIMEOUT};
use crate::pair::Waiter;
use crate::pingpong::{self, PingSide, PongSide};
use crate::processes;
use crate::wire::word;

/// The flow sizes of the cases.
pub const SIZES: [usize; 4] = [1, 100, 1000, 10_000];

/// Descriptors one flow end holds (its control socket), and a margin for
/// the rest of the process.
const FDS_PER_END: u64 = 1;
const FDS_MARGIN: u64 = 512;

/// Small rings: the cases measure waking, and N of them live at once.
fn qos() -> Qos {
    Qos::data().with_ring_bytes(4096)
}

/// Why a case of `n` flows cannot run here (the descriptor limit, after
/// raising the soft limit as far as this process may), or `None`. Each of
/// the two processes holds `n` flow ends.
pub fn unavailable(n: usize) -> Option<String> {
    let need = FDS_PER_END * n as u64 + FDS_MARGIN;
    match raise_fd_limit(need) {
        Ok(()) => None,
        Err(have) => Some(format!(
            "set-wake-64B-x{n} skipped: it needs {need} descriptors in each of its two processes and the limit \
             is {have} (raise `ulimit -n`; `ringflow doctor` shows the limit)"
        )),
    }
}

/// Raises RLIMIT_NOFILE to at least `need` (the soft limit up to the hard
/// one; the hard one too where the process may); `Err(limit)` if not.
fn raise_fd_limit(need: u64) -> Result<(), u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: writes the limits into the local struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(0);
    }
    if lim.rlim_cur >= need {
        return Ok(());
    }
    let want = libc::rlimit { rlim_cur: need, rlim_max: lim.rlim_max.max(need) };
    // SAFETY: reads the local struct; raising the hard limit fails cleanly
    // without the privilege.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
        return Ok(());
    }
    if lim.rlim_max >= need {
        let soft = libc::rlimit { rlim_cur: need, rlim_max: lim.rlim_max };
        // SAFETY: as above, within the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } == 0 {
            return Ok(());
        }
    }
    Err(lim.rlim_cur)
}

struct Ping {
    flows: Vec<Flow>,
    at: usize,
    stride: usize,
}

impl PingSide<64> for Ping {
    #[inline]
    fn send(&mut self, msg: &[u8; 64], _w: &mut Waiter<'_>) -> Result<(), BenchError> {
        self.at = (self.at + self.stride) % self.flows.len();
        // One message in flight: there is always room.
        self.flows[self.at].send(msg).map_err(|e| err("Flow::send", e))
    }

    #[inline]
    fn recv(&mut self, w: &mut Waiter<'_>) -> Result<u64, BenchError> {
        recv_with(&mut self.flows[self.at], Wait::Spin, w, |m| word(m, 0))
    }

    /// Lets the pong side fall asleep in its set before the next message,
    /// so every round trip measures a wake-up (otherwise a small set often
    /// finds the next message in its last look before sleeping).
    fn between(&mut self) {
        let until = std::time::Instant::now() + GAP;
        while std::time::Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

/// The pause between round trips: well past a set's way into its sleep.
const GAP: std::time::Duration = std::time::Duration::from_micros(200);

struct Pong {
    set: FlowSet,
    ready: Vec<Ready>,
}

impl PongSide<64> for Pong {
    fn echo(&mut self, w: &mut Waiter<'_>) -> Result<bool, BenchError> {
        loop {
            match self.set.wait_timeout(&mut self.ready, BLOCK_TIMEOUT) {
                Ok(_) => break,
                Err(SetError::TimedOut) => check_after_timeout(w)?,
                Err(e) => return Err(err("FlowSet::wait", e)),
            }
        }
        // One message in flight: one flow has it. (Others may be reported
        // closed: the ping side drops its flows right after the stop
        // message, which may come after them.)
        for r in &self.ready {
            let flow = self.set.get_mut(r.key).ok_or(BenchError::Disconnected { what: "set key" })?;
            let mut copy = [0u8; 64];
            let n = match flow.try_recv_into(&mut copy) {
                Ok(n) => n,
                Err(RecvError::Closed | RecvError::PeerGone { .. } | RecvError::WouldBlock) => continue,
                Err(e) => return Err(err("Flow::try_recv_into", e)),
            };
            if n != 64 {
                return Err(BenchError::Protocol { expected: 64, got: n as u64 });
            }
            if pingpong::is_stop(&copy) {
                return Ok(false);
            }
            flow.send(&copy).map_err(|e| err("Flow::send", e))?;
            return Ok(true);
        }
        Err(BenchError::Disconnected { what: "every flow of the set" })
    }
}

/// The listener the pong process binds.
const LISTENER: &str = "set-wake";
/// What a pong process's spec starts with (see [`serve`]).
pub(crate) const PEER_SPEC: &str = "setwake ";

/// Case `set-wake-64B-x{n}`.
pub fn run(ctx: &RunCtx, n: usize) -> Result<Measurement, BenchError> {
    let dir = DirGuard::new();
    let start = Instant::now();
    let deadline = ctx.hard_deadline(start) - start + SETUP + Duration::from_secs(10);
    let core = ctx.pins.core_of(1).map_or("-".to_string(), |c| c.to_string());
    let spec =
        format!("{PEER_SPEC}{} {core} {} {} {n}", dir.path().display(), u8::from(ctx.yielding), deadline.as_millis());
    let mut child = processes::spawn_peer(&spec)?;
    let opts = || FlowOptions::new().runtime_dir(dir.path());
    let until = Instant::now() + SETUP;
    let mut pings = Vec::with_capacity(n);
    while pings.len() < n {
        match Flow::alloc_with(LISTENER, &qos(), Deadline::At(until), opts()) {
            Ok(f) => pings.push(f),
            // Not bound yet: the child is starting.
            Err(ringflow_api::AllocError::NotFound { .. }) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(e) => return Err(err("Flow::alloc", e)),
        }
    }
    // A stride prime to every size: each round trip wakes another flow,
    // and all N take turns.
    let stride = if n > 1 { 7919 % n } else { 0 };
    let stride = if stride == 0 && n > 1 { 1 } else { stride };
    let ping = Ping { flows: pings, at: 0, stride };
    let mut m = pingpong::run_alternating_remote::<64, _>(ctx, vec![ping], |w| processes::reap(&mut child, w))?;
    m.pop().ok_or(BenchError::Aborted)
}

/// How long the flows' setup may take (10,000 handshakes).
const SETUP: Duration = Duration::from_secs(60);

/// The pong process: `setwake <dir> <core|-> <yield 0|1> <deadline ms> <n>`.
/// Binds the listener, accepts the `n` flows into one set, and echoes
/// until the stop message (or its deadline, should the parent vanish).
pub(crate) fn serve(spec: &str) -> Result<(), BenchError> {
    let bad = || BenchError::Peer { call: "set-wake peer spec", error: format!("cannot parse {spec:?}") };
    let parts: Vec<&str> = spec.strip_prefix(PEER_SPEC).ok_or_else(bad)?.split(' ').collect();
    let [dir, core, yielding, deadline, n] = parts[..] else { return Err(bad()) };
    let n: usize = n.parse().map_err(|_| bad())?;
    let deadline = Duration::from_millis(deadline.parse().map_err(|_| bad())?);
    if core != "-" {
        let id = core.parse().map_err(|_| bad())?;
        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
            return Err(BenchError::Pin { core: id });
        }
    }
    if let Some(why) = unavailable(n) {
        return Err(BenchError::Peer { call: "set-wake peer", error: why });
    }
    let opts = ListenerOptions::new().runtime_dir(dir).spin(Duration::ZERO);
    let mut listener = Listener::bind_with(LISTENER, opts).map_err(|e| err("Listener::bind", e))?;
    let mut set = FlowSet::new();
    for _ in 0..n {
        let flow = listener.accept_timeout(SETUP).map_err(|e| err("Listener::accept", e))?;
        set.insert(flow, Interest::Readable);
    }
    drop(listener);
    let abort = std::sync::atomic::AtomicBool::new(false);
    let mut w = Waiter::new(&abort, Instant::now() + deadline, yielding == "1");
    pingpong::pong_loop::<64, _>(&mut [Pong { set, ready: Vec::with_capacity(4) }], &mut w)
}
