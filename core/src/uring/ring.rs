//! One io_uring and its duty cycle: queue SQEs, enter the kernel only when
//! there is something for it to do, reap CQEs.
//!
//! Spinning on the completion queue alone is slow (by how much: tuning.md,
//! "Task run"), because socket completions wait for task work that only a
//! kernel entry runs. So [`UringDriver::poll`] enters
//! the kernel when SQEs are pending or when the ring's IORING_SQ_TASKRUN flag
//! says task work waits (set up with COOP_TASKRUN or DEFER_TASKRUN plus
//! TASKRUN_FLAG), and otherwise only reads the completion queue.
//!
//! It never blocks except in [`UringDriver::wait`], and it knows nothing of
//! sockets: what an SQE points at is the caller's contract (see `push`).
//! With SINGLE_ISSUER or DEFER_TASKRUN the ring belongs to the thread that
//! built it: build the driver on the thread that drives it.

use std::io;
use std::time::Duration;

use io_uring::{cqueue, squeue, types, IoUring};

use super::probe::{build_ring, simulated_errno, Support, UringUnavailable};
use crate::config::IoUringSection;

/// Counters of the duty cycle, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// `io_uring_enter` calls made by `poll`/`wait`.
    pub enters: u64,
    /// Of those, how many were made because the taskrun flag was set.
    pub taskrun_enters: u64,
    /// Completions reaped.
    pub completions: u64,
    /// Enters that failed with something other than EINTR/EAGAIN/EBUSY.
    pub enter_errors: u64,
}

/// What [`UringDriver::state`] reads from the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingState {
    /// SQEs queued and not submitted.
    pub pending: bool,
    /// Task work waits for an entry with GETEVENTS.
    pub taskrun: bool,
    /// Completions overflowed the CQ.
    pub overflow: bool,
}

/// One io_uring with the configured setup flags.
pub struct UringDriver {
    ring: IoUring,
    support: Support,
    stats: DriverStats,
    last_error: Option<i32>,
}

impl UringDriver {
    /// Builds the ring `cfg` describes. Honours `RINGFLOW_TEST_URING_ERRNO`
    /// (see `probe`).
    pub fn new(cfg: &IoUringSection) -> Result<Self, UringUnavailable> {
        let (ring, support) = build_ring(cfg, simulated_errno())?;
        Ok(UringDriver { ring, support, stats: DriverStats::default(), last_error: None })
    }

    /// What the kernel offers and which setup flags it accepted.
    pub fn support(&self) -> &Support {
        &self.support
    }

    /// Counters of what the driver did so far.
    pub fn stats(&self) -> DriverStats {
        self.stats
    }

    /// The errno of the last failed kernel entry that was not transient.
    pub fn last_error(&self) -> Option<i32> {
        self.last_error
    }

    /// Queues one SQE; when the submission queue is full, submits first.
    ///
    /// # Safety
    ///
    /// Every buffer, fd and pointer the entry names must stay valid until the
    /// kernel posts the operation's last CQE (for SEND_ZC: its notification;
    /// for multishot: the CQE without `F_MORE`).
    pub unsafe fn push(&mut self, sqe: &squeue::Entry) -> io::Result<()> {
        for _ in 0..2 {
            // SAFETY: the caller keeps what `sqe` points at alive until its
            // completion, which is push's own contract.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return Ok(());
            }
            self.enter(false);
        }
        Err(io::Error::from_raw_os_error(libc::EBUSY))
    }

    /// Queues `sqes` together or not at all (a linked chain must never
    /// end up half queued, linking its last entry to an unrelated one);
    /// when the submission queue lacks room, submits first.
    ///
    /// # Safety
    ///
    /// As [`push`](Self::push), for every entry.
    pub unsafe fn push_all(&mut self, sqes: &[squeue::Entry]) -> io::Result<()> {
        for _ in 0..2 {
            // SAFETY: forwarded from this function's contract.
            if unsafe { self.ring.submission().push_multiple(sqes) }.is_ok() {
                return Ok(());
            }
            self.enter(false);
        }
        Err(io::Error::from_raw_os_error(libc::EBUSY))
    }

    /// One non-blocking duty-cycle step: submits pending SQEs and runs task
    /// work if, and only if, there is some; returns how many CQEs are ready.
    pub fn poll(&mut self) -> usize {
        let RingState { pending, taskrun, overflow } = self.state();
        if pending || taskrun || overflow {
            if taskrun {
                self.stats.taskrun_enters += 1;
            }
            self.enter(false);
        }
        self.ring.completion().len()
    }

    /// The ring's state for a duty cycle: whether SQEs are pending, task
    /// work waits (the taskrun flag) and completions overflowed.
    pub fn state(&mut self) -> RingState {
        let sq = self.ring.submission();
        // SYNC: taskrun()/cq_overflow() load the SQ flags with Acquire;
        // pairs with the kernel's atomic_or of IORING_SQ_TASKRUN when it
        // queues task work for this ring.
        RingState { pending: !sq.is_empty(), taskrun: sq.taskrun(), overflow: sq.cq_overflow() }
    }

    /// Whether no completion waits to be reaped.
    pub fn cq_empty(&mut self) -> bool {
        self.ring.completion().is_empty()
    }

    /// Submits pending SQEs without running task work: an entry without
    /// GETEVENTS, which a ring with DEFER_TASKRUN runs only for GETEVENTS.
    /// Completions of requests that finish at once are posted as usual.
    pub fn submit_only(&mut self) {
        let pending = self.ring.submission().len();
        if pending == 0 {
            return;
        }
        self.stats.enters += 1;
        // SAFETY: no wait, no argument, no flags: the entry only consumes
        // SQEs already queued through `push`, whose memory rule holds.
        if let Err(e) = unsafe { self.ring.submitter().enter::<libc::sigset_t>(pending as u32, 0, 0, None) } {
            self.note_error(&e, &[]);
        }
    }

    /// Submits pending SQEs and blocks until a CQE is ready or `timeout`
    /// passes; for engines that park. Returns how many CQEs are ready.
    pub fn wait(&mut self, timeout: Duration) -> usize {
        if self.ring.completion().is_empty() {
            let ts = types::Timespec::from(timeout);
            let args = types::SubmitArgs::new().timespec(&ts);
            self.stats.enters += 1;
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) => self.note_error(&e, &[libc::ETIME]),
            }
        }
        self.ring.completion().len()
    }

    /// Moves every ready CQE into `out` (appending) and returns how many.
    /// Collecting first lets the caller push new SQEs while handling them.
    pub fn reap_into(&mut self, out: &mut Vec<cqueue::Entry>) -> usize {
        let before = out.len();
        out.extend(self.ring.completion());
        let n = out.len() - before;
        self.stats.completions += n as u64;
        n
    }

    /// Submits pending SQEs, running task work as the flags demand; with
    /// `wait_one`, blocks until at least one CQE is ready.
    pub fn enter(&mut self, wait_one: bool) {
        self.stats.enters += 1;
        // submit_and_wait adds GETEVENTS itself when the taskrun or overflow
        // flag is set, which is what runs deferred task work.
        if let Err(e) = self.ring.submitter().submit_and_wait(usize::from(wait_one)) {
            self.note_error(&e, &[]);
        }
    }

    fn note_error(&mut self, e: &io::Error, also_benign: &[i32]) {
        let errno = e.raw_os_error().unwrap_or(0);
        if ![libc::EINTR, libc::EAGAIN, libc::EBUSY].contains(&errno) && !also_benign.contains(&errno) {
            self.stats.enter_errors += 1;
            self.last_error = Some(errno);
        }
    }

    /// Registers a provided-buffer ring; see `Submitter::register_buf_ring_with_flags`.
    ///
    /// # Safety
    ///
    /// `ring_addr` must point at `entries` page-aligned `BufRingEntry`s that
    /// stay mapped until the ring is unregistered or this driver is dropped.
    pub(crate) unsafe fn register_buf_ring(&mut self, ring_addr: u64, entries: u16, bgid: u16) -> io::Result<()> {
        // SAFETY: forwarded from this function's contract.
        unsafe { self.ring.submitter().register_buf_ring_with_flags(ring_addr, entries, bgid, 0) }
    }

    /// Registers fixed buffers (IORING_REGISTER_BUFFERS) for `*Fixed` ops
    /// and SEND_ZC with a buffer index.
    ///
    /// # Safety
    ///
    /// Every iovec must describe memory that stays mapped until this driver
    /// is dropped (which unregisters them with the ring).
    pub(crate) unsafe fn register_buffers(&mut self, iovecs: &[libc::iovec]) -> io::Result<()> {
        // SAFETY: forwarded from this function's contract.
        unsafe { self.ring.submitter().register_buffers(iovecs) }
    }
}
