//! Process groups (Corosync CPG, Ouroboros `flow_join`): a thin face over
//! `ringflow_core::group::GroupEnd`, with every waiting operation in four
//! forms: blocking, `try_`, `_deadline`, `_timeout`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use ringflow_core::group::{
    Event, GroupEnd, GroupLoan, GroupOptions, GroupStats, Guarantee, JoinError, LeaveError, McastError, Member,
    RecvError,
};
use ringflow_core::Deadline;

/// A member of a process group.
///
/// Members of one group are usually in different processes (see the
/// repository's `examples/group.rs`); two in one process behave the same:
///
/// ```
/// # extern crate ringflow_api as ringflow; // (the `ringflow` package re-exports this crate)
/// # ringflow_testkit::isolate_runtime_dir(); // as a test: a private runtime directory, removed at exit
/// use ringflow::{ChangeKind, Event, Group, GroupOptions, Guarantee, SlowMember};
///
/// let opts = GroupOptions::new().guarantee(Guarantee::Agreed).slow_member(SlowMember::Block);
/// let mut a = Group::join("doc-prices", &opts)?; // creates the group and keeps it
/// let mut b = ringflow::flow_join("doc-prices", &opts)?; // Ouroboros' name for the same join
///
/// // A member's first event is the view of its own join.
/// match b.recv()? {
///     Event::View(v) => assert_eq!(v.changes[0].kind, ChangeKind::Joined),
///     _ => unreachable!("a joiner's first event is its join"),
/// }
/// a.mcast(b"EURUSD 1.0842")?; // one claim on the log, whatever the number of members
/// let mut loan = a.loan(5)?; // zero copy: write in place, then send
/// loan.write(0, b"bid 1");
/// loan.send()?;
/// for expected in [&b"EURUSD 1.0842"[..], b"bid 1"] {
///     match b.recv()? {
///         Event::Message(m) => assert_eq!(m.payload(), Some(expected)), // read in place
///         _ => unreachable!("no view or loss in between"),
///     }
/// }
/// b.leave()?; // a's next events: its own messages, then a view saying b left
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Group {
    pub(crate) end: GroupEnd,
}

/// Joins group `name`, creating it if nobody keeps it (Ouroboros' name for
/// joining a broadcast layer; the same as [`Group::join`]).
pub fn flow_join(name: &str, opts: &GroupOptions) -> Result<Group, JoinError> {
    Group::join(name, opts)
}

impl Group {
    /// Joins group `name`, creating it if nobody keeps it; returns once our
    /// join view is committed (it is our first event).
    pub fn join(name: &str, opts: &GroupOptions) -> Result<Group, JoinError> {
        Group::join_deadline(name, opts, Deadline::Never)
    }

    /// [`join`](Self::join) without waiting on a busy keeper (`WouldBlock`).
    pub fn try_join(name: &str, opts: &GroupOptions) -> Result<Group, JoinError> {
        Group::join_deadline(name, opts, Deadline::Now)
    }

    /// [`join`](Self::join) until `timeout` from now.
    pub fn join_timeout(name: &str, opts: &GroupOptions, timeout: Duration) -> Result<Group, JoinError> {
        Group::join_deadline(name, opts, Deadline::after(timeout))
    }

    /// [`join`](Self::join) until `deadline`.
    pub fn join_deadline(name: &str, opts: &GroupOptions, deadline: Deadline) -> Result<Group, JoinError> {
        GroupEnd::join(name, opts, deadline).map(|end| Group { end })
    }

    /// Multicasts a copy of `payload` to every member (ourselves included),
    /// waiting for room on Block and Evict groups.
    #[inline]
    pub fn mcast(&mut self, payload: &[u8]) -> Result<(), McastError> {
        self.end.mcast(payload, Deadline::Never)
    }

    /// [`mcast`](Self::mcast) without waiting (`WouldBlock`).
    #[inline]
    pub fn try_mcast(&mut self, payload: &[u8]) -> Result<(), McastError> {
        self.end.mcast(payload, Deadline::Now)
    }

    /// [`mcast`](Self::mcast) until `timeout` from now.
    pub fn mcast_timeout(&mut self, payload: &[u8], timeout: Duration) -> Result<(), McastError> {
        self.end.mcast(payload, Deadline::after(timeout))
    }

    /// [`mcast`](Self::mcast) until `deadline`.
    pub fn mcast_deadline(&mut self, payload: &[u8], deadline: Deadline) -> Result<(), McastError> {
        self.end.mcast(payload, deadline)
    }

    /// Multicasts the concatenation of `parts` as one message.
    pub fn mcast_gather(&mut self, parts: &[&[u8]]) -> Result<(), McastError> {
        self.end.mcast_gather(parts, Deadline::Never)
    }

    /// [`mcast_gather`](Self::mcast_gather) until `deadline`.
    pub fn mcast_gather_deadline(&mut self, parts: &[&[u8]], deadline: Deadline) -> Result<(), McastError> {
        self.end.mcast_gather(parts, deadline)
    }

    /// Loans `len` bytes of the log: write the message in place, then
    /// `send()` it; dropping the loan aborts it.
    pub fn loan(&mut self, len: usize) -> Result<GroupLoan<'_>, McastError> {
        self.end.loan(len, Deadline::Never)
    }

    /// [`loan`](Self::loan) without waiting (`WouldBlock`).
    pub fn try_loan(&mut self, len: usize) -> Result<GroupLoan<'_>, McastError> {
        self.end.loan(len, Deadline::Now)
    }

    /// [`loan`](Self::loan) until `deadline`.
    pub fn loan_deadline(&mut self, len: usize, deadline: Deadline) -> Result<GroupLoan<'_>, McastError> {
        self.end.loan(len, deadline)
    }

    /// The next event: a message, a view, or (Lap groups) a loss.
    #[inline]
    pub fn recv(&mut self) -> Result<Event<'_>, RecvError> {
        self.end.recv(Deadline::Never)
    }

    /// [`recv`](Self::recv) without waiting (`WouldBlock`).
    #[inline]
    pub fn try_recv(&mut self) -> Result<Event<'_>, RecvError> {
        self.end.recv(Deadline::Now)
    }

    /// [`recv`](Self::recv) until `timeout` from now.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Event<'_>, RecvError> {
        self.end.recv(Deadline::after(timeout))
    }

    /// [`recv`](Self::recv) until `deadline`.
    pub fn recv_deadline(&mut self, deadline: Deadline) -> Result<Event<'_>, RecvError> {
        self.end.recv(deadline)
    }

    /// Leaves the group, waiting for the keeper to commit our Left view.
    pub fn leave(self) -> Result<(), LeaveError> {
        self.leave_deadline(Deadline::Never)
    }

    /// [`leave`](Self::leave) until `deadline`; the member is out either way.
    pub fn leave_deadline(mut self, deadline: Deadline) -> Result<(), LeaveError> {
        self.end.leave(deadline)
    }

    /// The members as of the last view this member received.
    pub fn members(&self) -> Vec<Member> {
        self.end.members()
    }

    /// This member.
    pub fn local_member(&self) -> Member {
        self.end.local_member()
    }

    /// The id of the last view this member received (in a group that
    /// crosses hosts, the index of its entry in the cluster's log times 256
    /// plus its rank there: the same at every host).
    pub fn view_id(&self) -> u64 {
        self.end.view_id()
    }

    /// Whether the group crosses hosts (this host's engine is its gateway:
    /// `cluster.groups`), and this host's cluster node id if so. Known once
    /// this member read the keeper's view of its join (after its first
    /// receive).
    pub fn crossing_host(&self) -> Option<u64> {
        self.end.crossing_host()
    }

    /// The group's largest message.
    pub fn max_message(&self) -> usize {
        self.end.max_message()
    }

    /// The group's delivery guarantee: the one its creator asked for (a
    /// joiner must ask for the same), or for a group that crosses hosts
    /// and was made by its engine, the one `cluster.groups` names.
    pub fn guarantee(&self) -> Guarantee {
        self.end.guarantee()
    }

    /// This member's counters, lag and latency histogram.
    pub fn stats(&self) -> GroupStats {
        self.end.stats()
    }

    /// The readiness descriptor (Corosync's `cpg_fd_get`), as
    /// [`as_fd`](AsFd::as_fd) gives it, with the reason when it cannot
    /// work: the first call starts a small watcher thread for this member,
    /// which can fail (the descriptor is then left readable for good).
    pub fn ready_fd(&self) -> io::Result<BorrowedFd<'_>> {
        self.end.ready_fd()
    }
}

impl AsFd for Group {
    /// A descriptor (an eventfd) that becomes readable when a receive may
    /// return an event: a message, a view, a loss, or an error such as an
    /// eviction. Register it for `EPOLLIN`. It is edge-like: a receive that
    /// finds nothing (`WouldBlock`) resets and re-arms it, so after it
    /// fires, receive with [`try_recv`](Group::try_recv) until
    /// `WouldBlock`. The first call starts this member's watcher thread
    /// (publishers pay nothing for descriptors nobody asked for); if it
    /// cannot start, the descriptor stays readable (see
    /// [`ready_fd`](Group::ready_fd)). Leaving stops the watcher; dropping
    /// the member closes the descriptor.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.end.as_fd()
    }
}

impl AsRawFd for Group {
    /// [`as_fd`](AsFd::as_fd), raw.
    fn as_raw_fd(&self) -> RawFd {
        self.end.as_fd().as_raw_fd()
    }
}
