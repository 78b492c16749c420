//! A flow's shared memory: one segment holding, per direction, an inline
//! ring for messages up to a slot's size and a bulk ring for larger ones,
//! plus a small state area. Which side writes which ring follows from its
//! role (the allocating side, or the accepting side).
//!
//! Bulk messages are written once, in place, into a slot of the direction's
//! bulk pool (`ringflow_ring::pool`); the inline ring carries a descriptor
//! frame (flag [`FLAG_BULK`], payload: the slot's position and length) in
//! their place, so one FIFO order covers both and the descriptor's commit
//! publishes the slot. Nothing here trusts the segment: a
//! peer's segment is validated by its layout header, then by each ring.
//! Every word a peer can write, with what its worst value does:
//! [`super::hostile`].

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use ringflow_ring::pool;
use ringflow_ring::spsc::{self, Consumer, Producer};
use ringflow_ring::{AttachError, RawRegion, Region, WaitPoint, WakeMode};
use ringflow_shm::{CreateError, Layout, LayoutBuilder, Mapping, Segment, SegmentOptions};

use super::qos::Qos;
use crate::flow::FlowSetupError;

/// Layout kind of a flow segment.
pub const FLOW_KIND: u32 = u32::from_le_bytes(*b"FLOW");
/// Layout kind of the segment an accepting side supplies for the direction
/// it receives on.
pub const FLOW_RX_KIND: u32 = u32::from_le_bytes(*b"FLRX");
const REGION_INLINE: [u32; 2] = [1, 2];
const REGION_BULK: [u32; 2] = [3, 4];
const REGION_STATE: u32 = 5;
const STATE_LEN: usize = 4096;

/// Frame flag: the message travels in the bulk pool; the frame's payload
/// is its descriptor ([`DESCRIPTOR_LEN`] bytes: slot position, length).
pub const FLAG_BULK: u8 = 1;
/// Frame flag: file descriptors travel with the message on the control socket.
pub const FLAG_FDS: u8 = 2;
/// Payload bytes of a bulk descriptor frame.
pub const DESCRIPTOR_LEN: usize = 16;

/// Which end of a flow this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The side that called `alloc` (and created the segment).
    Initiator,
    /// The side that accepted.
    Acceptor,
}

impl Role {
    /// Index of the direction this role sends in.
    fn tx(self) -> usize {
        match self {
            Role::Initiator => 0,
            Role::Acceptor => 1,
        }
    }
}

/// Ring sizes derived from a granted QoS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Data bytes of each inline ring.
    pub inline_bytes: usize,
    /// Bytes of each bulk pool.
    pub bulk_bytes: usize,
    /// Largest message sent inline; larger ones go to the bulk pool.
    pub inline_max: usize,
}

impl Geometry {
    /// Sizes for `qos` (already validated): inline messages up to an eighth
    /// of the ring, so at least eight are in flight; a bulk pool holding four
    /// of the largest message (its pages are only touched as messages reach
    /// them).
    pub fn for_qos(qos: &Qos) -> Geometry {
        let inline_bytes = qos.ring_bytes;
        let inline_max = (inline_bytes / 8).min(spsc::max_payload(inline_bytes)).min(qos.max_msg);
        let bulk_bytes = (4 * qos.max_msg.next_multiple_of(pool::ALIGN)).next_power_of_two().max(4096);
        Geometry { inline_bytes, bulk_bytes, inline_max }
    }

    fn layout(&self, holds: Holds) -> Result<LayoutBuilder, FlowSetupError> {
        let mut b = LayoutBuilder::new(holds.kind());
        for dir in holds.directions() {
            b.add_region(REGION_INLINE[dir], spsc::region_len(self.inline_bytes))?;
            b.add_region(REGION_BULK[dir], pool::region_len(self.bulk_bytes))?;
        }
        if holds != Holds::AcceptorRx {
            b.add_region(REGION_STATE, STATE_LEN)?;
        }
        Ok(b)
    }

    /// Segment bytes this geometry needs for a whole flow.
    pub fn segment_len(&self) -> Result<usize, FlowSetupError> {
        self.segment_len_holding(Holds::Whole)
    }

    /// Segment bytes a segment holding `holds` of this geometry needs.
    pub fn segment_len_holding(&self, holds: Holds) -> Result<usize, FlowSetupError> {
        Ok(self.layout(holds)?.total_len())
    }
}

/// What one segment of a flow holds. A flow lives in one segment (the
/// initiator's, or a new memfd), unless the accepting side supplies the
/// memory of the direction it receives on (libdill's `ipc_accept_mem`):
/// then that direction lives in the acceptor's segment and the rest in the
/// initiator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holds {
    /// Both directions and the state area.
    Whole,
    /// The state area and the direction the initiator receives on.
    InitiatorPart,
    /// The direction the acceptor receives on (initiator to acceptor).
    AcceptorRx,
}

impl Holds {
    fn kind(self) -> u32 {
        match self {
            Holds::Whole | Holds::InitiatorPart => FLOW_KIND,
            Holds::AcceptorRx => FLOW_RX_KIND,
        }
    }

    fn directions(self) -> std::ops::Range<usize> {
        match self {
            Holds::Whole => 0..2,
            Holds::InitiatorPart => 1..2,
            Holds::AcceptorRx => 0..1,
        }
    }
}

/// One direction's two rings, as four raw regions of the segment.
struct Regions {
    inline: [RawRegion; 2],
    bulk: [RawRegion; 2],
    state: RawRegion,
}

/// State area: the readiness arm word of direction `d` (receiver of `d`
/// arms, sender of `d` disarms), one cache line each.
const STATE_ARMED: [usize; 2] = [0, 64];
/// State area: messages the receiver of direction `d` has consumed, kept
/// exact on every message (its ring position is published lazily), on a
/// line nobody else writes or polls.
const STATE_CONSUMED: [usize; 2] = [128, 192];
/// State area: messages of direction `d` lost before they reached its
/// receiver (a remote lossy flow: the network, or a full ring at the
/// receiving engine), as the sender of `d` reports.
const STATE_LOST: [usize; 2] = [256, 320];
/// State area: the space arm word of direction `d` (the sender of `d` arms
/// it when it waits for room through its readiness descriptor, as a set of
/// flows does; the receiver of `d` disarms it after a release and signals
/// the sender), one 128-byte block each.
const STATE_SPACE_ARMED: [usize; 2] = [512, 640];
/// State area: the close-handed word of direction `d`, written by its
/// receiver when that is an engine bridging the flow to another host: 1 +
/// the number of messages of `d` it took, once it has handed the flow's
/// end (the wire's `Close`) to the kernel; 0 until then. The sender of `d`
/// reads it in `dealloc` (see `flow::end::close`). One line each.
const STATE_CLOSE_HANDED: [usize; 2] = [768, 832];

/// The mapped segment and the regions of its rings. Shared (Arc) between a
/// flow and the process's watcher, which wakes sleepers when the peer dies.
///
/// It holds the mappings only: the memfds close once assembled (no flow
/// hands its memory on after the handshake; the memory lives as long as a
/// process maps it), so a flow end costs no descriptor for its memory.
pub struct FlowMemory {
    regions: Regions,
    geometry: Geometry,
    /// Where the inline rings and the state area lie: (in the acceptor's
    /// segment, offset, length), for [`prefault`](Self::prefault).
    hot: Vec<(bool, usize, usize)>,
    segment: Mapping,
    /// The acceptor's segment, when it supplied the memory of the direction
    /// it receives on.
    acceptor_rx: Option<Mapping>,
}

impl FlowMemory {
    /// Lays out a new flow, whole, in `segment` (fresh from
    /// `Segment::create`, e.g. caller-supplied memory on huge pages), or in
    /// a new memfd if `None`.
    pub fn create(
        name: &str,
        qos: &Qos,
        mode: WakeMode,
        segment: Option<Segment>,
    ) -> Result<Arc<FlowMemory>, FlowSetupError> {
        let segment = FlowMemory::lay_out(name, qos, mode, segment, Holds::Whole)?;
        FlowMemory::assemble(segment, None, qos, mode, Fresh::No)
    }

    /// Lays out the part `holds` of a flow granted `qos` in `segment` (or a
    /// new memfd if `None`), and returns the segment, to be sent to the peer
    /// and then [assembled](Self::assemble). A segment too small for the
    /// part, or not fresh, is refused (`WriteHeader`).
    pub fn lay_out(
        name: &str,
        qos: &Qos,
        mode: WakeMode,
        segment: Option<Segment>,
        holds: Holds,
    ) -> Result<Segment, FlowSetupError> {
        let geometry = Geometry::for_qos(qos);
        let plan = geometry.layout(holds)?;
        let segment = match segment {
            Some(s) => s,
            None => {
                let label = format!("ringflow:{}", name.chars().take(40).collect::<String>());
                Segment::create(&SegmentOptions::new(label, plan.total_len()))?
            }
        };
        let layout = plan.write_header(&segment)?;
        for (kind, region) in
            layout.regions().iter().enumerate().map(|(i, r)| (r.kind(), region_at(&segment, &layout, i)))
        {
            let region = region?;
            match kind {
                // SAFETY: `write_header` refuses a segment that already has a
                // header, and we own the segment: no region of it exists
                // anywhere else in this process yet, so nothing uses the range.
                REGION_STATE => unsafe { region.zero_fill(0, region.len()) },
                k if REGION_INLINE.contains(&k) => {
                    // SAFETY: as for the state area: the segment is fresh and
                    // ours, so no side of this ring exists yet.
                    unsafe { spsc::init_with(&region, mode) }?;
                }
                k if REGION_BULK.contains(&k) => {
                    // SAFETY: as for the state area: the segment is fresh and
                    // ours, so no side of this arena exists yet.
                    unsafe { pool::init(&region, mode) }?;
                }
                _ => return Err(FlowSetupError::Geometry),
            }
        }
        Ok(segment)
    }

    /// Maps a peer's whole-flow segment for a flow granted `qos`, validating
    /// its header and that its rings are fresh, with exactly the geometry
    /// `qos` implies and the wake mode agreed on.
    pub fn attach(segment: Segment, qos: &Qos, mode: WakeMode) -> Result<Arc<FlowMemory>, FlowSetupError> {
        FlowMemory::assemble(segment, None, qos, mode, Fresh::Yes)
    }

    /// Builds a flow from the initiator's segment and, when the acceptor
    /// supplied the memory it receives on, the acceptor's. Every region must
    /// be found exactly once across the two, with exactly the geometry `qos`
    /// implies and the wake mode agreed on; with [`Fresh::Yes`] no ring may
    /// have been attached yet (a peer lays a flow out; nothing may have run
    /// on it).
    pub fn assemble(
        segment: Segment,
        acceptor_rx: Option<Segment>,
        qos: &Qos,
        mode: WakeMode,
        fresh: Fresh,
    ) -> Result<Arc<FlowMemory>, FlowSetupError> {
        let geometry = Geometry::for_qos(qos);
        let layout = Layout::read(&segment, FLOW_KIND)?;
        let rx_layout = match &acceptor_rx {
            Some(s) => Some(Layout::read(s, FLOW_RX_KIND)?),
            None => None,
        };
        let find = |kind: u32| -> Result<RawRegion, FlowSetupError> {
            let here = layout.find(kind).map(|(i, _)| region_at(&segment, &layout, i));
            let there = match (&acceptor_rx, &rx_layout) {
                (Some(s), Some(l)) => l.find(kind).map(|(i, _)| region_at(s, l, i)),
                _ => None,
            };
            match (here, there) {
                (Some(r), None) | (None, Some(r)) => r,
                // Missing, or claimed by both segments.
                _ => Err(FlowSetupError::Geometry),
            }
        };
        let regions = Regions {
            inline: [find(REGION_INLINE[0])?, find(REGION_INLINE[1])?],
            bulk: [find(REGION_BULK[0])?, find(REGION_BULK[1])?],
            state: find(REGION_STATE)?,
        };
        if regions.state.len() < STATE_LEN {
            return Err(FlowSetupError::Geometry);
        }
        for dir in 0..2 {
            if fresh == Fresh::Yes && (!spsc::is_fresh(&regions.inline[dir]) || !pool::is_fresh(&regions.bulk[dir])) {
                return Err(FlowSetupError::Geometry);
            }
            if regions.inline[dir].len() != spsc::region_len(geometry.inline_bytes)
                || regions.bulk[dir].len() != pool::region_len(geometry.bulk_bytes)
            {
                return Err(FlowSetupError::Geometry);
            }
            let (data, _) = spsc::wait_points(&regions.inline[dir])?;
            let space = pool::space_wait_point(&regions.bulk[dir])?;
            let membarrier = mode == WakeMode::Membarrier;
            if data.needs_membarrier() != membarrier || space.needs_membarrier() != membarrier {
                return Err(FlowSetupError::Geometry);
            }
        }
        let mut hot = Vec::with_capacity(3);
        for kind in [REGION_INLINE[0], REGION_INLINE[1], REGION_STATE] {
            let there = rx_layout.as_ref().and_then(|l| l.find(kind)).map(|(_, r)| (true, r));
            if let Some((acceptor, r)) = layout.find(kind).map(|(_, r)| (false, r)).or(there) {
                hot.push((acceptor, r.offset(), r.len()));
            }
        }
        // The regions point into the mappings, which moving them into
        // `Mapping`s leaves in place; the memfds close here.
        let (segment, acceptor_rx) = (segment.into_mapping(), acceptor_rx.map(Segment::into_mapping));
        Ok(Arc::new(FlowMemory { regions, geometry, hot, segment, acceptor_rx }))
    }

    /// The sizes of this flow's rings.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Faults in this process's pages of the inline rings (both
    /// directions) and the state area now, so that the first messages take
    /// no page fault ([`prefault_default`]). The bulk pools stay touched
    /// as messages reach them: four of the largest message each, too large
    /// to make resident up front, and crossed by messages whose copy costs
    /// more than their faults. Each process maps the memory itself, so each
    /// side prefaults its own mapping.
    ///
    /// # Errors
    ///
    /// When the kernel cannot (see `Mapping::prefault`): the pages then
    /// fault in as they are touched.
    pub fn prefault(&self) -> std::io::Result<()> {
        for &(acceptor, offset, len) in &self.hot {
            let mapping = if acceptor { self.acceptor_rx.as_ref() } else { Some(&self.segment) };
            if let Some(m) = mapping {
                m.prefault(offset, len)?;
            }
        }
        Ok(())
    }

    /// The initiator's segment (the whole flow, unless the acceptor
    /// supplied the memory it receives on), mapped.
    pub fn segment(&self) -> &Mapping {
        &self.segment
    }

    /// The acceptor's segment, if it supplied the memory it receives on.
    pub fn acceptor_segment(&self) -> Option<&Mapping> {
        self.acceptor_rx.as_ref()
    }

    /// Attaches this role's four ring sides.
    pub fn sides(self: &Arc<Self>, role: Role) -> Result<Sides, AttachError> {
        let (tx, rx) = (role.tx(), 1 - role.tx());
        Ok(Sides {
            tx: Producer::attach(self.regions.inline[tx].clone())?,
            tx_bulk: pool::Producer::attach(self.regions.bulk[tx].clone())?,
            rx: Consumer::attach(self.regions.inline[rx].clone())?,
            rx_bulk: pool::Consumer::attach(self.regions.bulk[rx].clone())?,
            _memory: Arc::clone(self),
        })
    }

    /// The wait points a sleeper of `role` may sleep on: data to receive
    /// (inline ring), room to send (inline ring and bulk pool).
    pub fn wait_points(&self, role: Role) -> Result<[WaitPoint<'_>; 3], AttachError> {
        let (tx, rx) = (role.tx(), 1 - role.tx());
        let (rx_data, _) = spsc::wait_points(&self.regions.inline[rx])?;
        let (_, tx_space) = spsc::wait_points(&self.regions.inline[tx])?;
        let tx_bulk_space = pool::space_wait_point(&self.regions.bulk[tx])?;
        Ok([rx_data, tx_space, tx_bulk_space])
    }

    /// The readiness arm word `role` sets when it waits for data through its
    /// readiness fd.
    pub fn rx_armed(&self, role: Role) -> &AtomicU64 {
        self.regions.state.atomic_word(STATE_ARMED[1 - role.tx()])
    }

    /// The readiness arm word of the peer's receiving direction, which
    /// `role` checks after publishing.
    pub fn tx_armed(&self, role: Role) -> &AtomicU64 {
        self.regions.state.atomic_word(STATE_ARMED[role.tx()])
    }

    /// The space arm word of `role`'s sending direction, which `role` sets
    /// when it waits for room through its readiness descriptor.
    pub fn tx_space_armed(&self, role: Role) -> &AtomicU64 {
        self.regions.state.atomic_word(STATE_SPACE_ARMED[role.tx()])
    }

    /// The space arm word of `role`'s receiving direction, which `role`
    /// checks after it hands room back.
    pub fn rx_space_armed(&self, role: Role) -> &AtomicU64 {
        self.regions.state.atomic_word(STATE_SPACE_ARMED[1 - role.tx()])
    }

    /// The count of messages `role` has consumed, which it keeps current.
    pub fn rx_consumed(&self, role: Role) -> &AtomicU64 {
        self.regions.state.atomic_word(STATE_CONSUMED[1 - role.tx()])
    }

    /// The count of our messages the peer has consumed (as it says: a
    /// figure for reports, never trusted for memory).
    pub fn tx_consumed(&self, role: Role) -> &AtomicU64 {
        self.regions.state.atomic_word(STATE_CONSUMED[role.tx()])
    }

    /// Where the engine bridging `role`'s receiving direction says it has
    /// handed that direction's end to the network (see
    /// [`STATE_CLOSE_HANDED`]); `role` writes it.
    pub fn rx_close_handed(&self, role: Role) -> &AtomicU64 {
        self.regions.state.atomic_word(STATE_CLOSE_HANDED[1 - role.tx()])
    }

    /// The close-handed word of `role`'s sending direction, which the
    /// engine at the other end writes (a peer's report: it decides how long
    /// a `dealloc` waits, nothing else).
    pub fn tx_close_handed(&self, role: Role) -> &AtomicU64 {
        self.regions.state.atomic_word(STATE_CLOSE_HANDED[role.tx()])
    }

    /// Messages lost before they reached us, as our peer (an engine) reports.
    pub fn rx_lost(&self, role: Role) -> &AtomicU64 {
        self.regions.state.atomic_word(STATE_LOST[1 - role.tx()])
    }

    /// Where we report messages lost on their way to our peer.
    pub fn tx_lost(&self, role: Role) -> &AtomicU64 {
        self.regions.state.atomic_word(STATE_LOST[role.tx()])
    }
}

/// Supplies the memory of the direction an accepting side receives on
/// (libdill's `ipc_accept_mem`): called once per accepted flow with the
/// bytes its granted QoS needs there, it returns a fresh segment at least
/// that large, for example on huge pages.
#[derive(Clone)]
pub struct MemorySupply(Arc<SupplyFn>);

type SupplyFn = dyn Fn(usize) -> Result<Segment, CreateError> + Send + Sync;

impl MemorySupply {
    /// A supply that calls `f(len)`.
    pub fn new(f: impl Fn(usize) -> Result<Segment, CreateError> + Send + Sync + 'static) -> Self {
        MemorySupply(Arc::new(f))
    }

    /// A segment of at least `len` bytes, as the supplier makes it.
    pub fn get(&self, len: usize) -> Result<Segment, CreateError> {
        (self.0)(len)
    }
}

impl std::fmt::Debug for MemorySupply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemorySupply(..)")
    }
}

/// Whether [`FlowMemory::assemble`] requires rings nobody attached yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fresh {
    /// The peer laid the memory out and nobody may have used it: check.
    Yes,
    /// Laid out here, or the peer may already have attached its sides.
    No,
}

/// The `index`th region of `layout` in `segment`, as a ring region.
pub(crate) fn region_at(segment: &Segment, layout: &Layout, index: usize) -> Result<RawRegion, FlowSetupError> {
    let (ptr, len) = layout.region_ptr(segment, index).ok_or(FlowSetupError::Geometry)?;
    let base = NonNull::new(ptr).ok_or(FlowSetupError::Geometry)?;
    if base.as_ptr() as usize % 8 != 0 {
        return Err(FlowSetupError::Geometry);
    }
    // The region and its clones live in FlowMemory (which owns the
    // segments) or in Sides (which holds an Arc of it): the mapping outlives
    // them all, and the bytes are accessed only through rings. A region of
    // a segment only laid out (not yet in a FlowMemory) is used during
    // `lay_out` alone, while its segment is borrowed.
    // SAFETY: `region_ptr` checked that [ptr, ptr + len) lies inside the
    // segment's mapping; 8-byte alignment is checked above.
    Ok(unsafe { RawRegion::new(base, len) })
}

/// One role's ring sides. They keep the memory mapped: the regions are
/// clones of the segment's (see `regions`), whose mapping lives as long as
/// `_memory`; the fields are private so no side can be moved out of here.
pub struct Sides {
    tx: Producer<RawRegion>,
    tx_bulk: pool::Producer<RawRegion>,
    rx: Consumer<RawRegion>,
    rx_bulk: pool::Consumer<RawRegion>,
    // Declared last: dropped after the sides, which write to it on drop.
    _memory: Arc<FlowMemory>,
}

/// Mutable views of the four sides at once.
pub struct SidesMut<'a> {
    /// The sending ring.
    pub tx: &'a mut Producer<RawRegion>,
    /// The sending pool (messages too large for the ring).
    pub tx_bulk: &'a mut pool::Producer<RawRegion>,
    /// The receiving ring.
    pub rx: &'a mut Consumer<RawRegion>,
    /// The receiving pool.
    pub rx_bulk: &'a mut pool::Consumer<RawRegion>,
}

impl Sides {
    /// Lets go of the sides *without* closing them, as a process that dies
    /// does: the peer learns of the end from its control socket and reads
    /// `PeerGone`, not a clean close. (The sides own no heap memory: nothing
    /// is leaked; the mapping goes with the last `Arc`.)
    pub fn abandon(self) {
        let Sides { tx, tx_bulk, rx, rx_bulk, _memory } = self;
        std::mem::forget((tx, tx_bulk, rx, rx_bulk));
        drop(_memory);
    }

    /// All four sides, borrowed.
    #[inline]
    pub fn get(&mut self) -> SidesMut<'_> {
        SidesMut { tx: &mut self.tx, tx_bulk: &mut self.tx_bulk, rx: &mut self.rx, rx_bulk: &mut self.rx_bulk }
    }

    /// The sending sides, read-only.
    pub fn tx(&self) -> (&Producer<RawRegion>, &pool::Producer<RawRegion>) {
        (&self.tx, &self.tx_bulk)
    }

    /// The receiving sides, read-only.
    pub fn rx(&self) -> (&Consumer<RawRegion>, &pool::Consumer<RawRegion>) {
        (&self.rx, &self.rx_bulk)
    }
}

/// Whether new flows fault their rings in at setup (`FlowOptions::prefault`
/// decides per flow): on, unless `RINGFLOW_FLOW_PREFAULT` (the environment
/// form of the config key `flow.prefault`) is `false` / `0` / `off`, or
/// [`set_prefault_default`] says otherwise. A latency transport's default:
/// no page fault on a flow's first messages (a fault costs microseconds,
/// a 64-byte round trip a fraction of one), for the price of the rings'
/// pages resident from the start (tuning.md, "Prefaulted rings").
pub fn prefault_default() -> bool {
    // SYNC: Relaxed; a setting read at flow setup, no data hangs off it.
    match PREFAULT_DEFAULT.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let on = match std::env::var("RINGFLOW_FLOW_PREFAULT") {
                Err(_) => true,
                Ok(v) => crate::config::parse_env_bool(&v).unwrap_or_else(|| {
                    // `ringflow config` refuses this value; a flow cannot,
                    // so it says so once and keeps the default.
                    eprintln!(
                        "ringflow: RINGFLOW_FLOW_PREFAULT={v:?} is not true/false/on/off/1/0 \
                         (`ringflow config` refuses it): rings stay prefaulted"
                    );
                    true
                }),
            };
            set_prefault_default(on);
            on
        }
    }
}

/// Turns prefaulting on or off for flows set up from now on (each flow can
/// still choose with `FlowOptions::prefault`).
pub fn set_prefault_default(on: bool) {
    // SYNC: Relaxed; see `prefault_default`.
    PREFAULT_DEFAULT.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

static PREFAULT_DEFAULT: AtomicU8 = AtomicU8::new(0);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::end::{FlowEnd, FlowOptions};

    /// Pages of `[offset, offset + len)` of `m` the memfd holds (mincore).
    fn resident(m: &Mapping, offset: usize, len: usize) -> (usize, usize) {
        let page = 4096;
        let (start, end) = (offset / page * page, (offset + len).div_ceil(page) * page);
        let mut vec = vec![0u8; (end - start) / page];
        // SAFETY: mincore reads the page state of a range of our own
        // mapping (page-aligned, inside it) into one byte per page.
        let rc = unsafe { libc::mincore(m.as_ptr().add(start).cast(), end - start, vec.as_mut_ptr()) };
        assert_eq!(rc, 0);
        (vec.iter().filter(|&&b| b & 1 != 0).count(), vec.len())
    }

    /// (resident, all) pages of the flow's inline rings and state area.
    fn hot_pages(memory: &FlowMemory) -> (usize, usize) {
        memory.hot.iter().fold((0, 0), |(r, a), &(acceptor, off, len)| {
            assert!(!acceptor, "one segment here");
            let (r2, a2) = resident(memory.segment(), off, len);
            (r + r2, a + a2)
        })
    }

    #[test]
    fn prefault_makes_the_rings_resident_and_only_then() {
        let qos = Qos::data().with_ring_bytes(64 << 10).validate().unwrap();
        let memory = FlowMemory::create("prefault", &qos, WakeMode::Fenced, None).unwrap();
        assert_eq!(memory.hot.len(), 3, "two inline rings and the state area");
        let (before, all) = hot_pages(&memory);
        assert!(all >= 2 * (64 << 10) / 4096, "{all} pages");
        assert!(before < all / 2, "laid out, not touched: {before} of {all} pages resident");
        memory.prefault().unwrap();
        assert_eq!(hot_pages(&memory), (all, all));
        // The bulk pools are left as they were: far from resident.
        assert!(resident(memory.segment(), 0, memory.segment().len()).0 < 2 * all);
    }

    #[test]
    fn flow_options_choose_prefaulted_or_lazy_rings() {
        let qos = Qos::data().with_ring_bytes(64 << 10);
        for on in [true, false] {
            let (a, _b) = FlowEnd::pair_with(&qos, FlowOptions::new().prefault(on)).unwrap();
            let (resident, all) = hot_pages(&a.shared.memory);
            if on {
                assert_eq!(resident, all, "prefaulted");
            } else {
                assert!(resident < all / 2, "lazy: {resident} of {all} pages resident");
            }
        }
    }
}
