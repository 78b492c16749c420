//! Cases `set-wake-64B-xN`: what waking one flow of a set costs as the set
//! grows. The pong side holds the receiving ends of N flows in one
//! `FlowSet` and sleeps in its blocking wait; the ping side sends a 64-byte
//! message on one flow (a different one each round trip, striding through
//! all N), busy-polls that flow for the echo, then pauses (untimed) so the
//! pong side is asleep again before the next. A round trip is the set's
//! wake-up on the one active flow, its receive and its reply: up to 127
//! flows the set sleeps in `futex_waitv`, past that in epoll.

use ringflow_api::{Flow, FlowSet, Interest, Qos, Ready, RecvError, SetError};

use crate::error::BenchError;
use crate::flow::{err, recv_with};
use crate::measure::{Measurement, RunCtx};
use crate::os::{check_after_timeout, Wait, BLOCK_TIMEOUT};
use crate::pair::Waiter;
use crate::pingpong::{self, PingSide, PongSide};
use crate::wire::word;

/// The flow sizes of the cases.
pub const SIZES: [usize; 4] = [1, 100, 1000, 10_000];

/// Descriptors one flow pair holds (measured: 9,008 for 1,000 pairs), and
/// a margin for the rest of the process.
const FDS_PER_PAIR: u64 = 9;
const FDS_MARGIN: u64 = 512;

/// Small rings: the cases measure waking, and N of them live at once.
fn qos() -> Qos {
    Qos::data().with_ring_bytes(4096)
}

/// Why a case of `n` flows cannot run here (the descriptor limit, after
/// raising the soft limit as far as this process may), or `None`.
pub fn unavailable(n: usize) -> Option<String> {
    let need = FDS_PER_PAIR * n as u64 + FDS_MARGIN;
    match raise_fd_limit(need) {
        Ok(()) => None,
        Err(have) => Some(format!(
            "set-wake-64B-x{n} skipped: it needs {need} descriptors and the limit is {have} \
             (raise `ulimit -n`; `ringflow doctor` shows the limit)"
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

/// Case `set-wake-64B-x{n}`.
pub fn run(ctx: &RunCtx, n: usize) -> Result<Measurement, BenchError> {
    let mut pings = Vec::with_capacity(n);
    let mut set = FlowSet::new();
    for _ in 0..n {
        let (a, b) = Flow::pair(&qos()).map_err(|e| err("Flow::pair", e))?;
        pings.push(a);
        set.insert(b, Interest::Readable);
    }
    // A stride prime to every size: each round trip wakes another flow,
    // and all N take turns.
    let stride = if n > 1 { 7919 % n } else { 0 };
    let stride = if stride == 0 && n > 1 { 1 } else { stride };
    let ping = Ping { flows: pings, at: 0, stride };
    let pong = Pong { set, ready: Vec::with_capacity(4) };
    pingpong::run::<64>(ctx, ping, pong)
}
