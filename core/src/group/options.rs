//! What a member asks of a group when it joins: the delivery guarantee,
//! what happens to a slow member, the log's size, the largest message,
//! how many members, how long blocking calls spin, whether latency is
//! recorded, and who may join. The first joiner's options make the group;
//! a later joiner must ask for the same guarantee and slow-member policy
//! (never a silent downgrade) and a message size the group can carry.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::control::Permit;
use crate::remote::Invoker;

/// Delivery guarantee (Corosync CPG's `cpg_guarantee_t`). On one host the
/// shared log gives every guarantee at once: see the module docs of
/// [`crate::group`] for why. A joiner must name the group's guarantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Guarantee {
    /// No order is promised (the log still gives one).
    Unordered,
    /// Each sender's messages arrive in the order it sent them.
    Fifo,
    /// Every member delivers the same messages in the same order.
    Agreed,
    /// Agreed, and no member delivers a message before every member holds it.
    Safe,
}

impl Guarantee {
    pub(crate) fn code(self) -> u8 {
        match self {
            Guarantee::Unordered => 1,
            Guarantee::Fifo => 2,
            Guarantee::Agreed => 3,
            Guarantee::Safe => 4,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => Guarantee::Unordered,
            2 => Guarantee::Fifo,
            3 => Guarantee::Agreed,
            4 => Guarantee::Safe,
            _ => return None,
        })
    }

    /// The guarantee's word in the configuration (`cluster.groups`):
    /// `unordered`, `fifo`, `agreed` or `safe`.
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::Unordered => "unordered",
            Guarantee::Fifo => "fifo",
            Guarantee::Agreed => "agreed",
            Guarantee::Safe => "safe",
        }
    }

    /// The guarantee a word of [`Guarantee::name`] names, in any case.
    pub fn from_name(word: &str) -> Option<Self> {
        [Guarantee::Unordered, Guarantee::Fifo, Guarantee::Agreed, Guarantee::Safe]
            .into_iter()
            .find(|g| g.name().eq_ignore_ascii_case(word))
    }
}

/// Upper case, as the docs and Corosync write them: `SAFE`.
impl std::fmt::Display for Guarantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name().to_ascii_uppercase())
    }
}

/// What the group does about a member that reads slower than others send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlowMember {
    /// Reliable: a sender waits for the slowest live member (bounded by its
    /// deadline: `TimedOut`). Nothing is lost.
    Block,
    /// Lossy: senders never wait; a lapped member receives
    /// [`Event::Lost`](super::Event::Lost) with the exact count.
    Lap,
    /// Reliable, but a member that holds senders back for longer than
    /// `after` is removed from the group (it is told so: `Evicted`).
    Evict {
        /// How long a member may hold the others back before it is evicted.
        after: Duration,
    },
}

impl SlowMember {
    pub(crate) fn code(self) -> (u8, u64) {
        match self {
            SlowMember::Block => (1, 0),
            SlowMember::Lap => (2, 0),
            SlowMember::Evict { after } => (3, after.as_nanos().min(u64::MAX as u128) as u64),
        }
    }

    pub(crate) fn from_code(c: u8, after_ns: u64) -> Option<Self> {
        Some(match c {
            1 => SlowMember::Block,
            2 => SlowMember::Lap,
            3 => SlowMember::Evict { after: Duration::from_nanos(after_ns) },
            _ => return None,
        })
    }

    /// Whether senders may overwrite what a member has not read.
    pub fn is_lossy(self) -> bool {
        matches!(self, SlowMember::Lap)
    }
}

/// Smallest log, in bytes.
pub const MIN_LOG_CAPACITY: usize = 4096;
/// Largest log, in bytes.
pub const MAX_LOG_CAPACITY: usize = 1 << 34;
/// Most members a group can have.
pub const MAX_MEMBERS: usize = 1024;

/// A member's options (a builder; every setter returns the options).
#[derive(Clone, Debug)]
pub struct GroupOptions {
    pub(crate) guarantee: Guarantee,
    pub(crate) slow: SlowMember,
    pub(crate) log_capacity: usize,
    pub(crate) max_message: usize,
    pub(crate) max_members: usize,
    pub(crate) spin: Duration,
    pub(crate) record_latency: bool,
    pub(crate) permit: Permit,
    pub(crate) loopback: bool,
    /// Not 0: the joiner is this host's engine joining as the gateway of
    /// a group that crosses hosts, and this is its cluster node id.
    pub(crate) gateway: u32,
    /// A gateway that takes the group's guarantee as it finds it (the
    /// keeper does not compare `guarantee`, which is only what a group
    /// the gateway creates gets); off, a gateway is refused by a group
    /// of another guarantee, as any joiner is.
    pub(crate) any_guarantee: bool,
    /// The runtime directory the group's name lives in; `None`: the
    /// user's (`RuntimeDir::resolve`).
    pub(crate) runtime_dir: Option<PathBuf>,
    /// The invoker-mode engine this member's calls drive (a group that
    /// crosses hosts through it); `None`: nothing to drive.
    pub(crate) invoker: Option<Arc<Invoker>>,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions::new()
    }
}

impl GroupOptions {
    /// Agreed, Block, a 1 MiB log, messages up to 64 KiB, 64 members,
    /// 20 µs of spinning, latency recorded, same user only.
    pub fn new() -> Self {
        GroupOptions {
            guarantee: Guarantee::Agreed,
            slow: SlowMember::Block,
            log_capacity: 1 << 20,
            max_message: 64 << 10,
            max_members: 64,
            spin: crate::flow::end::DEFAULT_SPIN,
            record_latency: true,
            permit: Permit::same_user(),
            loopback: true,
            gateway: 0,
            any_guarantee: false,
            runtime_dir: None,
            invoker: None,
        }
    }

    /// The delivery guarantee.
    pub fn guarantee(mut self, g: Guarantee) -> Self {
        self.guarantee = g;
        self
    }

    /// The slow-member policy.
    pub fn slow_member(mut self, s: SlowMember) -> Self {
        self.slow = s;
        self
    }

    /// Bytes of log (a power of two, 4 KiB to 16 GiB), for the group's
    /// creator. Its pages are touched only as messages reach them.
    pub fn log_capacity(mut self, bytes: usize) -> Self {
        self.log_capacity = bytes;
        self
    }

    /// The largest message. The creator sizes the log for it (at least
    /// twice this plus headers); a joiner is refused if the group's
    /// largest message is smaller.
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.max_message = bytes;
        self
    }

    /// Most members at once (for the creator).
    pub fn max_members(mut self, n: usize) -> Self {
        self.max_members = n;
        self
    }

    /// How long blocking calls spin before they park.
    pub fn spin(mut self, d: Duration) -> Self {
        self.spin = d;
        self
    }

    /// Whether receives record one-way latency.
    pub fn record_latency(mut self, on: bool) -> Self {
        self.record_latency = on;
        self
    }

    /// Whether this member receives its own messages (on by default, as in
    /// CPG; off is JGroups' `DONT_LOOPBACK`: the member skips its own
    /// frames without delivering them). A member's own choice, not the
    /// group's.
    pub fn loopback(mut self, on: bool) -> Self {
        self.loopback = on;
        self
    }

    /// Who may join (checked by the keeper against the joiner's credentials).
    pub fn permit(mut self, p: Permit) -> Self {
        self.permit = p;
        self
    }

    /// Finds (or makes) the group in runtime directory `dir` instead of
    /// the user's: the group's name is per runtime directory, so several
    /// "hosts" of one process (each engine with a runtime directory of its
    /// own, as `RemoteEngine::start` takes) each have their own group.
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(dir.into());
        self
    }

    /// The invoker-mode engine (`engine.mode = "invoker"`: no engine
    /// thread) that carries this group to other hosts, from
    /// `RemoteEngine::invoker`: the member's calls then run its duty cycle
    /// (after a multicast, on a receive that finds nothing, and while a
    /// blocking call waits), so a message that crosses hosts wakes no
    /// thread. `None` (a dedicated engine runs on its own): nothing to do.
    pub fn invoker(mut self, invoker: Option<Arc<Invoker>>) -> Self {
        self.invoker = invoker;
        self
    }

    /// The guarantee asked for.
    pub fn get_guarantee(&self) -> Guarantee {
        self.guarantee
    }

    /// The slow-member policy asked for.
    pub fn get_slow_member(&self) -> SlowMember {
        self.slow
    }

    /// The log size asked for.
    pub fn get_log_capacity(&self) -> usize {
        self.log_capacity
    }

    /// The largest message asked for.
    pub fn get_max_message(&self) -> usize {
        self.max_message
    }

    /// The member count asked for.
    pub fn get_max_members(&self) -> usize {
        self.max_members
    }

    /// The log capacity a creator lays out: the asked capacity, grown to a
    /// power of two that carries two of the largest messages.
    pub(crate) fn effective_log_capacity(&self) -> usize {
        let need = 2 * (self.max_message + 64);
        self.log_capacity.max(need).max(MIN_LOG_CAPACITY).next_power_of_two()
    }
}
