//! Waiting on many flows at once (Ouroboros `fset` / `fqueue`): a set of
//! flows, each with an interest (readable, writable, or both), and one wait
//! (in the four forms: blocking, `try_`, `_deadline`, `_timeout`) that
//! returns which flows are ready or closed.
//!
//! It parks on all the flows' futex words with one `futex_waitv` call (the
//! same kernel mechanism as io_uring's FutexWaitV, without a ring to set
//! up), announcing itself on each word first, so a sender's publish wakes
//! it. One more word, of this process's own memory, is the process's death
//! word (`ringflow_core::flow::watch::deaths`), which the watcher bumps and
//! wakes on every hang-up after marking that flow's peer gone: a death
//! wakes the set whatever the peer wrote into the shared words, at the
//! price of one word per wait, not one per flow.

use std::io;
use std::time::Duration;

use ringflow_core::flow::watch;
use ringflow_core::futex::{self, WAITV_MAX};
use ringflow_core::Deadline;
use ringflow_ring::WaitPoint;

use crate::Flow;

/// What a flow in a set is waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// A message to read (or the end of the flow).
    Readable,
    /// Room to send a message of the flow's inline size.
    Writable,
    /// Either.
    Both,
}

impl Interest {
    fn reads(self) -> bool {
        matches!(self, Interest::Readable | Interest::Both)
    }

    fn writes(self) -> bool {
        matches!(self, Interest::Writable | Interest::Both)
    }
}

/// One ready flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The flow's key in the set.
    pub key: usize,
    /// A message is waiting (or the flow ended: receive to learn how).
    pub readable: bool,
    /// A message of the flow's inline size can be sent without waiting.
    pub writable: bool,
    /// The peer left (closed or died).
    pub closed: bool,
}

/// A set of flows to wait on. It owns its flows; borrow one with
/// [`get_mut`](Self::get_mut), take it back with [`remove`](Self::remove).
#[derive(Default)]
pub struct FlowSet {
    slots: Vec<Option<(Flow, Interest)>>,
    len: usize,
}

/// Why a wait on a set failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SetError {
    /// The set is empty.
    Empty,
    /// More futex words than one wait can take (128: a flow counts one
    /// word for reading and one for writing, and the wait one more for
    /// the process's death word).
    TooMany { words: usize, max: usize },
    /// `try_wait`, or a deadline of now: no flow is ready.
    WouldBlock,
    /// The deadline passed with no flow ready.
    TimedOut,
    /// `futex_waitv` failed (a kernel older than 5.16 lacks it).
    Io(io::Error),
    /// The process-wide barrier that stands in for the publishers' fence
    /// (`membarrier`) failed.
    Membarrier(io::Error),
}

impl std::fmt::Display for SetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetError::Empty => f.write_str("the flow set is empty"),
            SetError::TooMany { words, max } => write!(f, "{words} wait words exceed the {max} one wait can take"),
            SetError::WouldBlock => f.write_str("no flow in the set is ready"),
            SetError::TimedOut => f.write_str("timed out waiting for a flow in the set"),
            SetError::Io(e) => write!(f, "futex_waitv: {e}"),
            SetError::Membarrier(e) => write!(f, "membarrier: {e}"),
        }
    }
}

impl std::error::Error for SetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetError::Io(e) | SetError::Membarrier(e) => Some(e),
            SetError::Empty | SetError::TooMany { .. } | SetError::WouldBlock | SetError::TimedOut => None,
        }
    }
}

impl FlowSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `flow`, waited for `interest`; returns its key.
    pub fn insert(&mut self, flow: Flow, interest: Interest) -> usize {
        self.len += 1;
        match self.slots.iter().position(Option::is_none) {
            Some(key) => {
                self.slots[key] = Some((flow, interest));
                key
            }
            None => {
                self.slots.push(Some((flow, interest)));
                self.slots.len() - 1
            }
        }
    }

    /// Takes the flow at `key` out of the set.
    pub fn remove(&mut self, key: usize) -> Option<Flow> {
        let (flow, _) = self.slots.get_mut(key)?.take()?;
        self.len -= 1;
        Some(flow)
    }

    /// The flow at `key`.
    pub fn get_mut(&mut self, key: usize) -> Option<&mut Flow> {
        self.slots.get_mut(key)?.as_mut().map(|(f, _)| f)
    }

    /// Number of flows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Waits as long as it takes until at least one flow is ready; fills
    /// `ready` (cleared first; its capacity is reused) and returns how many
    /// are ready (at least one).
    #[inline]
    pub fn wait(&mut self, ready: &mut Vec<Ready>) -> Result<usize, SetError> {
        self.wait_deadline(ready, Deadline::Never)
    }

    /// [`wait`](Self::wait) without waiting: [`SetError::WouldBlock`] (and
    /// `ready` empty) when no flow is ready now.
    #[inline]
    pub fn try_wait(&mut self, ready: &mut Vec<Ready>) -> Result<usize, SetError> {
        self.wait_deadline(ready, Deadline::Now)
    }

    /// [`wait`](Self::wait) at most `timeout` ([`SetError::TimedOut`], and
    /// `ready` empty, after it).
    #[inline]
    pub fn wait_timeout(&mut self, ready: &mut Vec<Ready>, timeout: Duration) -> Result<usize, SetError> {
        self.wait_deadline(ready, Deadline::after(timeout))
    }

    /// [`wait`](Self::wait) until `deadline` ([`SetError::TimedOut`], and
    /// `ready` empty, after it; [`SetError::WouldBlock`] for
    /// [`Deadline::Now`]): the one implementation the other wait forms call.
    pub fn wait_deadline(&mut self, ready: &mut Vec<Ready>, deadline: Deadline) -> Result<usize, SetError> {
        ready.clear();
        if self.len == 0 {
            return Err(SetError::Empty);
        }
        let words: usize =
            1 + self.flows().map(|(_, _, i)| usize::from(i.reads()) + usize::from(i.writes())).sum::<usize>();
        if words > WAITV_MAX {
            return Err(SetError::TooMany { words, max: WAITV_MAX });
        }
        loop {
            self.collect(ready);
            if !ready.is_empty() {
                return Ok(ready.len());
            }
            let timeout = deadline.remaining();
            if timeout == Some(Duration::ZERO) {
                return Err(if deadline == Deadline::Now { SetError::WouldBlock } else { SetError::TimedOut });
            }
            // Announce a sleeper on every word, then look again (the same
            // Dekker protocol as a single wait: a publish after our look
            // sees the announcement and changes the word we sleep on).
            let mut tokens = [(std::ptr::null::<u32>(), 0u32); WAITV_MAX];
            let mut n = 0;
            let mut barrier = false;
            for wp in self.wait_points() {
                tokens[n] = (wp.futex_word(), wp.prepare());
                barrier |= wp.needs_membarrier();
                n += 1;
            }
            // SYNC: the death word's value is read here, before the last
            // look at the flows' states below (`collect`); the watcher marks
            // a flow gone before it bumps the word (`FlowShared::hung_up`).
            // So either that look sees the flow gone (the bump we read came
            // after its mark: Release/Acquire in `watch::death`/`deaths`),
            // or the bump comes after our read, and the kernel's compare in
            // `wait_any` sees it or its wake finds us queued.
            let (deaths, seen) = watch::deaths();
            tokens[n] = (deaths.as_ptr() as *const u32, seen);
            n += 1;
            if barrier {
                // Some publishers skip their fence: pay for theirs here.
                if let Err(e) = ringflow_core::membarrier::heavy_barrier() {
                    self.wait_points().for_each(|wp| wp.finish());
                    return Err(SetError::Membarrier(e));
                }
            }
            self.collect(ready);
            let slept = if ready.is_empty() {
                // SAFETY: every word lies in the segment of a flow this set
                // owns, mapped for the whole call (the set is borrowed), or
                // is the process's death word, a static.
                unsafe { futex::wait_any(&tokens[..n], timeout) }
            } else {
                Ok(true)
            };
            for wp in self.wait_points() {
                wp.finish();
            }
            slept.map_err(SetError::Io)?;
            if !ready.is_empty() {
                return Ok(ready.len());
            }
        }
    }

    fn flows(&self) -> impl Iterator<Item = (usize, &Flow, Interest)> {
        self.slots.iter().enumerate().filter_map(|(k, s)| s.as_ref().map(|(f, i)| (k, f, *i)))
    }

    fn wait_points(&self) -> impl Iterator<Item = WaitPoint<'_>> {
        self.flows().flat_map(|(_, f, i)| {
            let read = i.reads().then(|| f.end.data_wait());
            let write = i.writes().then(|| f.end.space_wait());
            read.into_iter().chain(write)
        })
    }

    fn collect(&self, ready: &mut Vec<Ready>) {
        ready.clear();
        for (key, f, i) in self.flows() {
            let closed = f.end.is_ended();
            let readable = i.reads() && f.end.has_message();
            let writable = i.writes() && f.end.fits_inline();
            if readable || writable || closed {
                ready.push(Ready { key, readable: readable || (closed && i.reads()), writable, closed });
            }
        }
    }
}
