//! Waiting on many flows at once (Ouroboros `fset` / `fqueue`): a set of
//! flows, each with an interest (readable, writable, or both), and one wait
//! (in the four forms: blocking, `try_`, `_deadline`, `_timeout`) that
//! returns which flows are ready or closed. Group members join the same
//! set ([`FlowSet::insert_group`]): a member is readable when a receive may
//! return an event, and sleeps on its group log's data (and space) word and
//! its local alarm word, which an expulsion changes.
//!
//! A small set parks on all the flows' futex words with one `futex_waitv`
//! call (the same kernel mechanism as io_uring's FutexWaitV, without a ring
//! to set up), announcing itself on each word first, so a sender's publish
//! wakes it. One more word, of this process's own memory, is the process's
//! death word (`ringflow_core::flow::watch::deaths`), which the watcher
//! bumps and wakes on every hang-up after marking that flow's peer gone: a
//! death wakes the set whatever the peer wrote into the shared words, at
//! the price of one word per wait, not one per flow.
//!
//! A set of flows larger than one `futex_waitv` takes (more than 128 words)
//! waits through epoll on the flows' readiness descriptors instead, with
//! each flow armed once it was found with nothing to offer, so that the
//! peer's next publish (or release of room, or death) signals it: a wait
//! costs what the active flows cost, whatever the number of idle ones (see
//! `poller.rs`). Such a set holds any number of flows; group members count
//! against the 128 words (a set with members waits through `futex_waitv`).

use std::io;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use ringflow_core::flow::watch;
use ringflow_core::futex::{self, WAITV_MAX};
use ringflow_core::Deadline;
use ringflow_ring::WaitPoint;

use crate::poller::Poller;
use crate::{Flow, Group};

/// What a flow (or group member) in a set is waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// A message to read (or the end of the flow); for a group member, an
    /// event to receive (a message, a view, a loss, or an error such as an
    /// eviction).
    Readable,
    /// Room to send a message of the flow's inline size; for a group
    /// member, room for a message of the group's largest size (on a Lap
    /// group, nothing wakes a wait for room a lapping producer holds back).
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

/// One ready flow or group member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The flow's (or member's) key in the set.
    pub key: usize,
    /// A message is waiting (or the flow ended: receive to learn how); for
    /// a member, a receive may return an event.
    pub readable: bool,
    /// A message of the flow's inline size (the group's largest) can be
    /// sent without waiting.
    pub writable: bool,
    /// The peer left (closed or died); for a member, it is out of the
    /// group (left, evicted or expelled: receive to learn which).
    pub closed: bool,
}

/// A set of flows and group members to wait on. It owns them; borrow one
/// with [`get_mut`](Self::get_mut) ([`get_group_mut`](Self::get_group_mut)),
/// take it back with [`remove`](Self::remove) ([`remove_group`](Self::remove_group)).
#[derive(Default)]
pub struct FlowSet {
    slots: Vec<Option<(Entry, Interest)>>,
    len: usize,
    /// The epoll side, while the set is too large for one `futex_waitv`.
    poller: Option<Poller>,
    /// Keys a polled wait looks at (reused).
    looking: Vec<usize>,
    /// Keys a polled wait armed (reused).
    armed: Vec<usize>,
}

/// What a key of the set holds. Both variants are ends of some hundreds
/// of bytes (a member's about 800, a flow's about 570): boxing either would
/// add a pointer chase to every scan of a wait.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Flow(Flow),
    Group(Group),
}

/// Why a wait on a set failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SetError {
    /// The set is empty.
    Empty,
    /// A set with group members needs more futex words than one wait can
    /// take (128: a flow counts one word for reading and one for writing, a
    /// group member the same and one more for its alarm word, and the wait
    /// one more for the process's death word). Sets of flows alone have no
    /// such limit.
    TooMany {
        /// The words the set's entries would arm.
        words: usize,
        /// The most one wait takes.
        max: usize,
    },
    /// `try_wait`, or a deadline of now: no flow is ready.
    WouldBlock,
    /// The deadline passed with no flow ready.
    TimedOut,
    /// `futex_waitv` failed (a kernel older than 5.16 lacks it).
    Io(io::Error),
    /// epoll failed, in the wait of a set too large for one `futex_waitv`
    /// (`epoll_create1`, `epoll_ctl` or `epoll_wait`: out of descriptors,
    /// or past `fs.epoll.max_user_watches`).
    Poll(io::Error),
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
            SetError::Poll(e) => write!(f, "epoll: {e}"),
            SetError::Membarrier(e) => write!(f, "membarrier: {e}"),
        }
    }
}

impl std::error::Error for SetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetError::Io(e) | SetError::Poll(e) | SetError::Membarrier(e) => Some(e),
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
        self.put(Entry::Flow(flow), interest)
    }

    /// Adds group member `group`, waited for `interest`; returns its key
    /// (keys of flows and members are one space).
    pub fn insert_group(&mut self, group: Group, interest: Interest) -> usize {
        self.put(Entry::Group(group), interest)
    }

    fn put(&mut self, entry: Entry, interest: Interest) -> usize {
        self.len += 1;
        let key = match self.slots.iter().position(Option::is_none) {
            Some(key) => {
                self.slots[key] = Some((entry, interest));
                key
            }
            None => {
                self.slots.push(Some((entry, interest)));
                self.slots.len() - 1
            }
        };
        if let (Some(poller), Some((Entry::Flow(f), _))) = (&mut self.poller, &self.slots[key]) {
            if poller.add(key, f.end.readiness_fd()).is_err() {
                // Rebuilt (or its error reported) by the next wait.
                self.poller = None;
            }
        }
        key
    }

    /// Takes the flow at `key` out of the set (`None`, and the set
    /// unchanged, if `key` holds a group member).
    pub fn remove(&mut self, key: usize) -> Option<Flow> {
        let slot = self.slots.get_mut(key)?;
        if !matches!(slot, Some((Entry::Flow(_), _))) {
            return None;
        }
        let (Entry::Flow(flow), _) = slot.take()? else { return None };
        self.len -= 1;
        if let Some(poller) = &mut self.poller {
            poller.remove(key, flow.end.readiness_fd());
        }
        Some(flow)
    }

    /// Takes the group member at `key` out of the set (`None`, and the set
    /// unchanged, if `key` holds a flow).
    pub fn remove_group(&mut self, key: usize) -> Option<Group> {
        let slot = self.slots.get_mut(key)?;
        if !matches!(slot, Some((Entry::Group(_), _))) {
            return None;
        }
        let (Entry::Group(group), _) = slot.take()? else { return None };
        self.len -= 1;
        Some(group)
    }

    /// The flow at `key`.
    pub fn get_mut(&mut self, key: usize) -> Option<&mut Flow> {
        match self.slots.get_mut(key)? {
            Some((Entry::Flow(f), _)) => Some(f),
            _ => None,
        }
    }

    /// The group member at `key`.
    pub fn get_group_mut(&mut self, key: usize) -> Option<&mut Group> {
        match self.slots.get_mut(key)? {
            Some((Entry::Group(g), _)) => Some(g),
            _ => None,
        }
    }

    /// Number of flows and group members.
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
        let words: usize = 1 + self
            .entries()
            .map(|(_, e, i)| {
                usize::from(i.reads()) + usize::from(i.writes()) + usize::from(matches!(e, Entry::Group(_)))
            })
            .sum::<usize>();
        if words > WAITV_MAX {
            if self.entries().any(|(_, e, _)| matches!(e, Entry::Group(_))) {
                return Err(SetError::TooMany { words, max: WAITV_MAX });
            }
            return self.wait_polled(ready, deadline);
        }
        // Small again: the futex words do it (flows still armed from a
        // polled wait cost their peer one signal, once).
        self.poller = None;
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
            // Group members' alarm words (local memory: an expulsion stores
            // the new value, then wakes): `collect` below sees the value, or
            // the kernel's compare does, or the wake finds us queued.
            for (word, quiet) in self.alarms() {
                tokens[n] = (word.as_ptr() as *const u32, quiet);
                n += 1;
            }
            if barrier {
                // Some publishers skip their fence: pay for theirs here.
                if let Err(e) = ringflow_core::membarrier::heavy_barrier() {
                    self.wait_points().for_each(|wp| wp.finish());
                    return Err(SetError::Membarrier(e));
                }
            }
            self.collect(ready);
            let slept = if ready.is_empty() {
                // SAFETY: every word lies in the segment of a flow or the
                // log of a group member this set owns, mapped for the whole
                // call (the set is borrowed), or is a member's alarm word
                // (owned by the member, alive as long), or is the process's
                // death word, a static.
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

    /// The wait of a large set (flows only): looks at the queued flows,
    /// arms those with nothing to offer, and sleeps in epoll until one is
    /// signalled (see `poller.rs`).
    fn wait_polled(&mut self, ready: &mut Vec<Ready>, deadline: Deadline) -> Result<usize, SetError> {
        if self.poller.is_none() {
            let mut poller = Poller::new().map_err(SetError::Poll)?;
            for (key, slot) in self.slots.iter().enumerate() {
                if let Some((Entry::Flow(f), _)) = slot {
                    poller.add(key, f.end.readiness_fd()).map_err(SetError::Poll)?;
                }
            }
            self.poller = Some(poller);
        }
        let FlowSet { slots, poller: Some(poller), looking, armed, .. } = self else {
            unreachable!("built above");
        };
        let flow_at = |slots: &[Option<(Entry, Interest)>], key: usize| match slots.get(key) {
            Some(Some((Entry::Flow(f), i))) => Some((f.end.set_check(i.reads(), i.writes()), *i)),
            _ => None,
        };
        loop {
            poller.take_queue(looking);
            armed.clear();
            let mut barrier = false;
            for &key in looking.iter() {
                let Some(((readable, writable, closed), i)) = flow_at(slots, key) else { continue };
                if readable || writable || closed {
                    ready.push(Ready { key, readable: readable || (closed && i.reads()), writable, closed });
                    // Not armed: looked at again on the next wait.
                    poller.queue(key);
                } else if let Some(Some((Entry::Flow(f), _))) = slots.get(key) {
                    barrier |= f.end.set_arm(i.reads(), i.writes());
                    armed.push(key);
                }
            }
            if barrier {
                // Some publishers skip their fence: pay for theirs here.
                if let Err(e) = ringflow_core::membarrier::heavy_barrier() {
                    armed.iter().for_each(|&k| poller.queue(k));
                    return Err(SetError::Membarrier(e));
                }
            }
            // The look after the arm (the handshake's re-check): what came
            // in between is seen here, or signals the descriptor.
            for &key in armed.iter() {
                let Some(((readable, writable, closed), i)) = flow_at(slots, key) else { continue };
                if readable || writable || closed {
                    ready.push(Ready { key, readable: readable || (closed && i.reads()), writable, closed });
                    poller.queue(key);
                }
            }
            if !ready.is_empty() {
                return Ok(ready.len());
            }
            let timeout = deadline.remaining();
            if timeout == Some(Duration::ZERO) {
                return Err(if deadline == Deadline::Now { SetError::WouldBlock } else { SetError::TimedOut });
            }
            poller.wait(timeout).map_err(SetError::Poll)?;
        }
    }

    fn entries(&self) -> impl Iterator<Item = (usize, &Entry, Interest)> {
        self.slots.iter().enumerate().filter_map(|(k, s)| s.as_ref().map(|(e, i)| (k, e, *i)))
    }

    fn wait_points(&self) -> impl Iterator<Item = WaitPoint<'_>> {
        self.entries().flat_map(|(_, e, i)| {
            let (read, write) = match e {
                Entry::Flow(f) => (i.reads().then(|| f.end.data_wait()), i.writes().then(|| f.end.space_wait())),
                // A log whose control area is garbage has no wait points:
                // `collect` reports the member ready instead.
                Entry::Group(g) => match g.end.wait_points() {
                    Some((data, space)) => (i.reads().then_some(data), i.writes().then_some(space)),
                    None => (None, None),
                },
            };
            read.into_iter().chain(write)
        })
    }

    fn alarms(&self) -> impl Iterator<Item = (&AtomicU32, u32)> {
        self.entries().filter_map(|(_, e, _)| match e {
            Entry::Group(g) => Some(g.end.alarm()),
            Entry::Flow(_) => None,
        })
    }

    fn collect(&mut self, ready: &mut Vec<Ready>) {
        ready.clear();
        for (key, slot) in self.slots.iter_mut().enumerate() {
            let Some((entry, i)) = slot else { continue };
            let (reads, writes) = (i.reads(), i.writes());
            let (readable, writable, closed) = match entry {
                Entry::Flow(f) => (reads && f.end.has_message(), writes && f.end.fits_inline(), f.end.is_ended()),
                Entry::Group(g) => {
                    let broken = g.end.wait_points().is_none();
                    (reads && (broken || g.end.has_event()), writes && (broken || g.end.can_send()), g.end.is_closed())
                }
            };
            if readable || writable || closed {
                ready.push(Ready { key, readable: readable || (closed && reads), writable, closed });
            }
        }
    }
}
