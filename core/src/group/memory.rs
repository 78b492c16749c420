//! A group's shared memory: one memfd segment (layout kind `GRUP`) with
//! four regions: the parameters the creator chose, the member table, the
//! view history and the broadcast log. Member table entry `i`, consumer
//! slot `i` of the log and producer slot `i + 1` belong to one member;
//! producer slot 0 is the keeper's, which writes the views.
//!
//! Nothing here trusts the segment: the parameters are validated once at
//! attach and copied out (a member that rewrites them later changes
//! nothing for the others), each region's size must match them, and the
//! log validates its own control area. Words of the table and the history
//! are read through atomics and treated as input (see `table.rs`,
//! `history.rs`).

use ringflow_ring::broadcast::{self, Mode};
use ringflow_ring::{RawRegion, Region};
use ringflow_shm::{Layout, LayoutBuilder, Segment, SegmentOptions};

use super::options::{GroupOptions, Guarantee, SlowMember, MAX_LOG_CAPACITY, MAX_MEMBERS, MIN_LOG_CAPACITY};
use super::view;
use crate::flow::memory::region_at;
use crate::flow::FlowSetupError;

/// Layout kind of a group segment.
pub const GROUP_KIND: u32 = u32::from_le_bytes(*b"GRUP");
const REGION_PARAMS: u32 = 1;
const REGION_TABLE: u32 = 2;
const REGION_HISTORY: u32 = 3;
const REGION_LOG: u32 = 4;
const PARAMS_LEN: usize = 4096;
const MAGIC: u64 = u64::from_le_bytes(*b"RFGROUP1");

// Parameter words.
const P_MAGIC: usize = 0;
const P_GUARANTEE: usize = 8;
const P_SLOW: usize = 16;
const P_EVICT_NS: usize = 24;
const P_MAX_MESSAGE: usize = 32;
const P_MAX_MEMBERS: usize = 40;
const P_CAPACITY: usize = 48;
/// The id of the latest view the keeper committed (keeper writes).
pub(crate) const P_LATEST_VIEW: usize = 128;
/// The next member id to hand out (keeper writes).
pub(crate) const P_NEXT_MEMBER: usize = 192;
/// The pid of the process that keeps the group now (keeper writes; shown
/// by `ringflow ls`).
pub(crate) const P_KEEPER_PID: usize = 256;
/// The group crosses hosts (`cluster.groups`): the member id of its
/// gateway, the host's engine (keeper writes, before the gateway's join
/// view; 0: no gateway ever joined). Input like every word: a member
/// checks that the view it reads names this member at [`P_GATEWAY_SLOT`].
pub(crate) const P_GATEWAY_MEMBER: usize = 320;
/// The gateway's seat (keeper writes, with [`P_GATEWAY_MEMBER`]).
pub(crate) const P_GATEWAY_SLOT: usize = 384;
/// This host's cluster node id, as the gateway gave it (keeper writes).
pub(crate) const P_GATEWAY_HOST: usize = 448;
/// 1 while the gateway's engine has lost the cluster's quorum (gateway
/// writes, [`QUORUM_LOST`]; 0 otherwise). Input like every word, and read
/// only to refuse: its worst value makes a member's multicast fail with
/// `NoQuorum` (what a scribbler could do to the log anyway); it never lets
/// a multicast through, nor decides a wake.
pub(crate) const P_GATEWAY_QUORUM: usize = 512;
/// [`P_GATEWAY_QUORUM`]'s value while the quorum is lost.
pub(crate) const QUORUM_LOST: u64 = 1;

/// Bytes per member table entry.
pub(crate) const ENTRY_LEN: usize = 128;
/// Views kept in the history, for lossy members lapped past a view.
pub(crate) const HISTORY: usize = 32;

/// What the creator chose, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// The delivery guarantee.
    pub guarantee: Guarantee,
    /// What to do with a slow member.
    pub slow: SlowMember,
    /// The largest message, in bytes.
    pub max_message: usize,
    /// The most members.
    pub max_members: usize,
    /// Bytes of log.
    pub capacity: usize,
}

impl GroupConfig {
    /// The configuration a creator with `opts` lays out.
    pub(crate) fn for_options(opts: &GroupOptions) -> Result<GroupConfig, &'static str> {
        if opts.max_members == 0 || opts.max_members > MAX_MEMBERS {
            return Err("max_members must be between 1 and 1024");
        }
        if opts.log_capacity < MIN_LOG_CAPACITY || opts.log_capacity > MAX_LOG_CAPACITY {
            return Err("log_capacity must be between 4 KiB and 16 GiB");
        }
        if opts.max_message > (1 << 30) {
            return Err("max_message must be at most 1 GiB");
        }
        let need = (2 * view::max_len(opts.max_members)).max(opts.max_message);
        let capacity = opts.effective_log_capacity().max((2 * (need + 64)).next_power_of_two());
        if capacity > MAX_LOG_CAPACITY {
            return Err("max_message needs a log larger than 16 GiB");
        }
        Ok(GroupConfig {
            guarantee: opts.guarantee,
            slow: opts.slow,
            max_message: opts.max_message,
            max_members: opts.max_members,
            capacity,
        })
    }

    fn history_entry_len(&self) -> usize {
        16 + view::max_len(self.max_members).next_multiple_of(8)
    }

    fn log_len(&self) -> usize {
        broadcast::region_len(self.capacity, self.max_members, self.max_members + 1)
    }

    fn mode(&self) -> Mode {
        if self.slow.is_lossy() {
            Mode::Lossy
        } else {
            Mode::Reliable
        }
    }
}

/// The mapped segment and its regions.
pub struct GroupMemory {
    pub(crate) params: RawRegion,
    pub(crate) table: RawRegion,
    pub(crate) history: RawRegion,
    pub(crate) log: RawRegion,
    pub(crate) config: GroupConfig,
    segment: Segment,
}

impl GroupMemory {
    /// Lays out a new group for `config` in a new memfd.
    pub(crate) fn create(name: &str, config: GroupConfig, salt: u64) -> Result<GroupMemory, FlowSetupError> {
        let mut plan = LayoutBuilder::new(GROUP_KIND);
        plan.add_region(REGION_PARAMS, PARAMS_LEN)?;
        plan.add_region(REGION_TABLE, ENTRY_LEN * config.max_members)?;
        plan.add_region(REGION_HISTORY, config.history_entry_len() * HISTORY)?;
        plan.add_region(REGION_LOG, config.log_len())?;
        let label = format!("ringflow-group:{}", name.chars().take(40).collect::<String>());
        let segment = Segment::create(&SegmentOptions::new(label, plan.total_len()))?;
        let layout = plan.write_header(&segment)?;
        let [params, table, history, log] = regions(&segment, &layout)?;
        // SAFETY: the segment is fresh and ours: no region of it exists
        // anywhere else yet, so nothing uses these ranges.
        unsafe {
            params.zero_fill(0, params.len());
            table.zero_fill(0, table.len());
            history.zero_fill(0, history.len());
        }
        // Fence-free commits where every member can take part in membarrier
        // (joiners register before they attach: `join.rs`).
        let wake = crate::membarrier::preferred_wake_mode();
        // SAFETY: as above: no side of this log exists yet.
        unsafe {
            broadcast::init_with_wake(&log, config.mode(), config.max_members, config.max_members + 1, salt, wake)
        }?;
        let w = |off: usize, v: u64| params.atomic_word(off).store(v, std::sync::atomic::Ordering::Relaxed);
        w(P_GUARANTEE, config.guarantee.code() as u64);
        let (slow, after) = config.slow.code();
        w(P_SLOW, slow as u64);
        w(P_EVICT_NS, after);
        w(P_MAX_MESSAGE, config.max_message as u64);
        w(P_MAX_MEMBERS, config.max_members as u64);
        w(P_CAPACITY, config.capacity as u64);
        w(P_NEXT_MEMBER, 1);
        // SYNC: Release; pairs with the Acquire in `attach`: whoever sees
        // the magic sees the parameters above.
        params.atomic_word(P_MAGIC).store(MAGIC, std::sync::atomic::Ordering::Release);
        Ok(GroupMemory { params, table, history, log, config, segment })
    }

    /// Maps a group segment received from its keeper, validating every
    /// parameter and region size.
    pub(crate) fn attach(segment: Segment) -> Result<GroupMemory, FlowSetupError> {
        let layout = Layout::read(&segment, GROUP_KIND)?;
        let [params, table, history, log] = regions(&segment, &layout)?;
        if params.len() < PARAMS_LEN {
            return Err(FlowSetupError::Geometry);
        }
        // SYNC: Acquire; pairs with the Release in `create`.
        if params.atomic_word(P_MAGIC).load(std::sync::atomic::Ordering::Acquire) != MAGIC {
            return Err(FlowSetupError::Geometry);
        }
        // SYNC: Relaxed (the loads); ordered by the Acquire above.
        let r = |off: usize| params.atomic_word(off).load(std::sync::atomic::Ordering::Relaxed);
        let guarantee = Guarantee::from_code(r(P_GUARANTEE) as u8).filter(|_| r(P_GUARANTEE) < 256);
        let slow = SlowMember::from_code(r(P_SLOW) as u8, r(P_EVICT_NS)).filter(|_| r(P_SLOW) < 256);
        let (max_message, max_members, capacity) = (r(P_MAX_MESSAGE), r(P_MAX_MEMBERS), r(P_CAPACITY));
        let (Some(guarantee), Some(slow)) = (guarantee, slow) else { return Err(FlowSetupError::Geometry) };
        if max_members == 0
            || max_members > MAX_MEMBERS as u64
            || max_message > 1 << 30
            || !capacity.is_power_of_two()
            || capacity > MAX_LOG_CAPACITY as u64
        {
            return Err(FlowSetupError::Geometry);
        }
        let config = GroupConfig {
            guarantee,
            slow,
            max_message: max_message as usize,
            max_members: max_members as usize,
            capacity: capacity as usize,
        };
        if table.len() != ENTRY_LEN * config.max_members
            || history.len() != config.history_entry_len() * HISTORY
            || log.len() != config.log_len()
            || config.max_message > broadcast::max_payload(config.capacity)
            || view::max_len(config.max_members) > broadcast::max_payload(config.capacity)
        {
            return Err(FlowSetupError::Geometry);
        }
        // The log checks its own control area (mode, slots, capacity).
        let probe = broadcast::tail(&log)?;
        let _ = probe;
        Ok(GroupMemory { params, table, history, log, config, segment })
    }

    /// The segment (to hand its memfd to a joiner).
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Bytes of one history entry.
    pub(crate) fn history_entry_len(&self) -> usize {
        self.config.history_entry_len()
    }

    /// A parameter word the keeper maintains.
    pub(crate) fn param(&self, off: usize) -> &std::sync::atomic::AtomicU64 {
        self.params.atomic_word(off)
    }
}

fn regions(segment: &Segment, layout: &Layout) -> Result<[RawRegion; 4], FlowSetupError> {
    // Each region lives as long as the GroupMemory that holds it and the
    // segment; the sides built on the log hold an Arc of that GroupMemory.
    let find =
        |kind: u32| layout.find(kind).ok_or(FlowSetupError::Geometry).and_then(|(i, _)| region_at(segment, layout, i));
    Ok([find(REGION_PARAMS)?, find(REGION_TABLE)?, find(REGION_HISTORY)?, find(REGION_LOG)?])
}
