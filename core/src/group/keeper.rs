//! The keeper: the member process that holds the group's name. It admits
//! joiners (checks their credentials and options, takes their slots,
//! commits their join view, hands them the memfd), watches every member's
//! control socket, and turns a leave, a hang-up or an eviction into a view
//! committed in the log, after padding the member's unfinished claim and
//! dropping its cursor from the gate. It is off the data path: members
//! publish and read without it.
//!
//! When the keeper's process dies (or its member leaves), the others' agents
//! see their sockets hang up and race to bind the name; the winner calls
//! [`Keeper::take_over`], which rebuilds the group from the member table:
//! members that are alive rejoin with their token, a member whose process is
//! gone is reported down at once (pidfd), one that neither rejoins nor dies
//! within [`REJOIN_GRACE`] is reported down too.
//!
//! It must never block on one member: sockets are nonblocking, views that
//! find the log full (a Block group whose slowest member stalls) wait in a
//! queue retried every tick, and a joiner that does not speak is dropped.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringflow_ring::broadcast::{self, Consumer, Producer};
use ringflow_ring::{ClaimError, RawRegion};

use super::memory::{
    GroupMemory, P_GATEWAY_HOST, P_GATEWAY_MEMBER, P_GATEWAY_SLOT, P_KEEPER_PID, P_LATEST_VIEW, P_NEXT_MEMBER,
};
use super::table::{self, Holder};
use super::view::{self, ChangeKind, Member, RawView, Seat, SeatChange, FLAG_VIEW};
use super::wire::{Msg, Refusal, ANY_GUARANTEE, MAX_LEN, VERSION};
use super::{history, options::Guarantee, options::SlowMember};
use crate::control::{ControlConn, ControlListener, Permit};
use crate::wait::notify;

/// How long a new keeper waits for a live member to rejoin.
pub const REJOIN_GRACE: Duration = Duration::from_secs(5);
/// How long a connected joiner may stay silent.
const JOINER_SILENCE: Duration = Duration::from_secs(5);
/// The poll tick while views wait for room or evictions are watched.
const TICK: Duration = Duration::from_millis(1);

/// A member the keeper knows.
struct Seated {
    seat: Seat,
    holder: Holder,
    conn: Option<ControlConn>,
    /// Its Left view is committed (or queued); its socket's close frees it.
    leaving: bool,
    /// After a takeover: not yet rejoined; its process, watched.
    awaiting: Option<(Instant, Option<OwnedFd>)>,
    /// Evict groups: since when it has held producers back, and where.
    stalled: Option<(Instant, u64)>,
    evicted: bool,
}

/// What to do once a queued view is committed.
enum After {
    Grant { slot: usize, conn: ControlConn },
    Left { conn_of: usize },
    Nothing,
}

pub(crate) struct Keeper {
    mem: Arc<GroupMemory>,
    listener: ControlListener,
    permit: Permit,
    views: Producer<RawRegion>,
    seats: Vec<Option<Seated>>,
    /// Members in joining order (the order of views).
    order: Vec<usize>,
    pending: Vec<(ControlConn, Instant)>,
    queue: VecDeque<(RawView, After)>,
    view_id: u64,
    buf: Vec<u8>,
    salt: u64,
}

impl Keeper {
    /// The keeper of a group just created: slot 0 is free.
    pub(crate) fn new(
        mem: Arc<GroupMemory>,
        listener: ControlListener,
        permit: Permit,
    ) -> Result<Self, ringflow_ring::AttachError> {
        let views = Producer::attach_slot(mem.log.clone(), 0)?;
        Ok(Keeper::new_with(mem, listener, permit, views))
    }

    /// A new keeper of a running group, after its keeper's process died or
    /// left. Holding the name's lock proves the old keeper no longer keeps:
    /// a keeper frees slot 0 before it releases the name, so a taken slot 0
    /// is a dead keeper's.
    pub(crate) fn take_over(
        mem: Arc<GroupMemory>,
        listener: ControlListener,
        permit: Permit,
    ) -> Result<Self, ringflow_ring::AttachError> {
        let views = match Producer::attach_slot(mem.log.clone(), 0) {
            Ok(p) => p,
            Err(ringflow_ring::AttachError::Busy) => {
                // SAFETY: slot 0's holder was the previous keeper, which no
                // longer holds the name (we do): a live keeper frees slot 0
                // before releasing it, so that process is dead.
                let wakes = unsafe { broadcast::evict_producer(&mem.log, 0) };
                if let Ok(w) = wakes {
                    wake_log(&mem, w.data, w.space);
                }
                Producer::attach_slot(mem.log.clone(), 0)?
            }
            Err(e) => return Err(e),
        };
        let mut k = Keeper::new_with(mem, listener, permit, views);
        k.view_id = k.mem.param(P_LATEST_VIEW).load(std::sync::atomic::Ordering::Acquire);
        // The membership as of the latest view, from the history (the
        // table says who holds which slot; the view says in what order).
        let mut order = Vec::new();
        if history::load(&k.mem.history, k.mem.history_entry_len(), k.view_id, &mut k.buf) {
            if let Ok(v) = view::decode(&k.buf, k.mem.config.max_members) {
                order = v.seats.iter().map(|s| s.slot as usize).collect();
            }
        }
        let now = Instant::now();
        let mut down = Vec::new();
        for slot in 0..k.mem.config.max_members {
            let Some(e) = table::entry(&k.mem.table, slot) else { continue };
            let state = e.state();
            if state == table::FREE {
                continue;
            }
            let holder = e.holder();
            let seat = Seat { member: Member::local(holder.member_id, holder.pid), slot: slot as u16, next_seq: 0 };
            match state {
                table::ACTIVE | table::EVICTING | table::EVICTED => {
                    let pidfd = live_process(holder.pid, holder.start);
                    let alive = pidfd.is_some();
                    k.seats[slot] = Some(Seated {
                        seat,
                        holder,
                        conn: None,
                        leaving: false,
                        awaiting: Some((now, pidfd)),
                        stalled: None,
                        evicted: state != table::ACTIVE,
                    });
                    if !order.contains(&slot) && state == table::ACTIVE {
                        order.push(slot);
                    }
                    if !alive {
                        down.push(slot);
                    }
                }
                _ => {
                    // JOINING (or a state we do not know): the joiner never
                    // got its grant from the dead keeper, or left already.
                    // Nobody reads or writes through these slots.
                    k.release_slots(slot);
                    if order.contains(&slot) {
                        order.retain(|&s| s != slot);
                        k.queue_view(
                            vec![SeatChange { seat, kind: ChangeKind::ProcessDown, final_seq: 0 }],
                            After::Nothing,
                        );
                    }
                }
            }
        }
        k.order = order.into_iter().filter(|&s| k.seats[s].is_some()).collect();
        for slot in down {
            k.member_gone(slot, ChangeKind::ProcessDown);
        }
        Ok(k)
    }

    fn new_with(mem: Arc<GroupMemory>, listener: ControlListener, permit: Permit, views: Producer<RawRegion>) -> Self {
        let seats = (0..mem.config.max_members).map(|_| None).collect();
        mem.param(P_KEEPER_PID).store(std::process::id() as u64, std::sync::atomic::Ordering::Relaxed);
        Keeper {
            mem,
            listener,
            permit,
            views,
            seats,
            order: Vec::new(),
            pending: Vec::new(),
            queue: VecDeque::new(),
            view_id: 0,
            buf: Vec::new(),
            salt: random_u64(),
        }
    }

    /// Runs until `stop` becomes readable; then answers what is pending
    /// (a leave sent just before the stop) and returns. Dropping the keeper
    /// frees slot 0, then releases the name.
    pub(crate) fn run(&mut self, stop: BorrowedFd<'_>) {
        loop {
            let stopping = self.poll_once(Some(stop));
            if stopping {
                // Answer what is already there, then go.
                for _ in 0..4 {
                    self.poll_once(None);
                }
                return;
            }
        }
    }

    /// One round: waits for something to do (or a tick), does it. Returns
    /// true if `stop` is readable.
    fn poll_once(&mut self, stop: Option<BorrowedFd<'_>>) -> bool {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut what: Vec<Src> = Vec::new();
        let mut add = |fd: RawFd, events: i16, src: Src| {
            fds.push(libc::pollfd { fd, events, revents: 0 });
            what.push(src);
        };
        if let Some(s) = stop {
            add(s.as_raw_fd(), libc::POLLIN, Src::Stop);
        }
        add(self.listener.as_raw_fd(), libc::POLLIN, Src::Listener);
        for (i, (c, _)) in self.pending.iter().enumerate() {
            add(c.as_raw_fd(), libc::POLLIN | libc::POLLRDHUP, Src::Pending(i));
        }
        for (slot, s) in self.seats.iter().enumerate() {
            let Some(s) = s else { continue };
            if let Some(c) = &s.conn {
                add(c.as_raw_fd(), libc::POLLIN | libc::POLLRDHUP, Src::Member(slot));
            }
            if let Some((_, Some(pidfd))) = &s.awaiting {
                add(pidfd.as_raw_fd(), libc::POLLIN, Src::Process(slot));
            }
        }
        let timeout = if stop.is_none() {
            0
        } else if !self.queue.is_empty() {
            TICK.as_millis() as i32
        } else if let Some(tick) = self.eviction_tick() {
            tick.as_millis() as i32
        } else if !self.pending.is_empty() || self.seats.iter().flatten().any(|s| s.awaiting.is_some()) {
            100
        } else {
            -1
        };
        // SAFETY: `fds` holds `fds.len()` initialised pollfd entries whose
        // descriptors stay open for the call (owned by self or borrowed).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        let mut stopping = false;
        if n > 0 {
            let mut gone_pending = Vec::new();
            for (pfd, src) in fds.iter().zip(&what) {
                if pfd.revents == 0 {
                    continue;
                }
                match *src {
                    Src::Stop => stopping = true,
                    Src::Listener => self.accept_all(),
                    Src::Pending(i) => gone_pending.push(i),
                    Src::Member(slot) => self.member_event(slot, pfd.revents),
                    Src::Process(slot) => self.member_gone(slot, ChangeKind::ProcessDown),
                }
            }
            // Pending joiners: handled after, by index, highest first.
            gone_pending.sort_unstable();
            for i in gone_pending.into_iter().rev() {
                let (conn, _) = self.pending.swap_remove(i);
                self.joiner_spoke(conn);
            }
        }
        self.housekeeping();
        stopping
    }

    /// Evict groups with members: how often to look for stalled members (a
    /// quarter of the eviction time, between 1 ms and 100 ms).
    fn eviction_tick(&self) -> Option<Duration> {
        match self.mem.config.slow {
            SlowMember::Evict { after } if !self.order.is_empty() => {
                Some((after / 4).clamp(TICK, Duration::from_millis(100)))
            }
            _ => None,
        }
    }

    fn accept_all(&mut self) {
        while let Ok(conn) = self.listener.accept(Some(Duration::ZERO)) {
            // Our own process maps the group and keeps it already: its joins
            // pass whatever the permit says (a creator whose permit admits
            // nobody must still be able to join the group it made).
            let own = conn.peer_cred().is_ok_and(|c| c.pid == std::process::id());
            match own || self.permit.check_peer(&conn).is_ok() {
                true => self.pending.push((conn, Instant::now())),
                false => send(&conn, Msg::Refuse { reason: Refusal::Permission.code(), detail: 0 }),
            }
        }
    }

    /// A joiner's first message (or its hang-up).
    fn joiner_spoke(&mut self, conn: ControlConn) {
        let mut b = [0u8; MAX_LEN];
        let msg = match conn.recv(&mut b, &mut [], Some(Duration::ZERO)) {
            Ok(r) => Msg::decode(&b[..r.len]),
            _ => return, // hung up, garbage or nothing: drop it
        };
        match msg {
            Ok(Msg::Join { version, guarantee, slow, evict_ns, max_message, gateway }) => {
                let refusal = if version != VERSION {
                    Some(Refusal::Version)
                } else if gateway != 0 && guarantee == ANY_GUARANTEE {
                    // The host's engine takes the group as it is.
                    None
                } else if Guarantee::from_code(guarantee) != Some(self.mem.config.guarantee) {
                    // A gateway too when it names one (`cluster.groups`
                    // says the group's guarantee): hosts must not order
                    // one group differently.
                    Some(Refusal::Guarantee)
                } else if gateway != 0 {
                    // Its guarantee is the group's: the rest it takes as it is.
                    None
                } else if SlowMember::from_code(slow, evict_ns) != Some(self.mem.config.slow) {
                    Some(Refusal::SlowMember)
                } else if max_message > self.mem.config.max_message as u64 {
                    Some(Refusal::MaxMessage)
                } else {
                    None
                };
                match refusal {
                    Some(r) => {
                        send(&conn, Msg::Refuse { reason: r.code(), detail: self.mem.config.max_message as u64 })
                    }
                    None => self.admit(conn, gateway),
                }
            }
            Ok(Msg::Rejoin { index, member_id, token }) => self.rejoin(conn, index, member_id, token),
            // An outside tool (`ringflow stat`): the memory, then hang up.
            Ok(Msg::Inspect) => {
                let mut b = Vec::new();
                Msg::Inspected.encode(&mut b);
                let _ = conn.send_deadline(&b, &[self.mem.segment().fd()], crate::Deadline::Now);
            }
            _ => {}
        }
    }

    /// Seats a joiner; `gateway` (not 0: its cluster node id) records it
    /// as the gateway of a group that crosses hosts before its join view,
    /// so every member that reads that view finds the record.
    fn admit(&mut self, conn: ControlConn, gateway: u32) {
        let Ok(cred) = conn.peer_cred() else { return };
        let free = (0..self.seats.len()).find(|&s| {
            self.seats[s].is_none() && table::entry(&self.mem.table, s).is_some_and(|e| e.state() == table::FREE)
        });
        let Some(slot) = free else {
            send(&conn, Msg::Refuse { reason: Refusal::Full.code(), detail: self.seats.len() as u64 });
            return;
        };
        let Some(entry) = table::entry(&self.mem.table, slot) else { return };
        let next = self.mem.param(P_NEXT_MEMBER);
        // SYNC: Relaxed; only the keeper writes it (one at a time: the name's lock).
        let id = next.load(std::sync::atomic::Ordering::Relaxed).max(1);
        next.store(id + 1, std::sync::atomic::Ordering::Relaxed);
        self.salt = self.salt.rotate_left(17) ^ random_u64();
        let holder = Holder {
            member_id: id,
            pid: cred.pid,
            start: table::process_start(cred.pid).unwrap_or(0),
            token: self.salt,
        };
        entry.set_holder(holder);
        entry.set_state(table::JOINING);
        let rx = Consumer::attach_slot(self.mem.log.clone(), slot);
        let tx = Producer::attach_slot(self.mem.log.clone(), slot + 1);
        let (Ok(rx), Ok(tx)) = (rx, tx) else {
            // A slot held although the table says free (a scribbler): refuse.
            entry.set_state(table::FREE);
            send(&conn, Msg::Refuse { reason: Refusal::Busy.code(), detail: 0 });
            return;
        };
        rx.detach();
        tx.detach();
        let seat = Seat { member: Member::local(id, cred.pid), slot: slot as u16, next_seq: 0 };
        if gateway != 0 {
            // SYNC: Relaxed (the three stores); published by the Release
            // of the join view's commit, which members read with Acquire.
            self.mem.param(P_GATEWAY_HOST).store(u64::from(gateway), std::sync::atomic::Ordering::Relaxed);
            self.mem.param(P_GATEWAY_SLOT).store(slot as u64, std::sync::atomic::Ordering::Relaxed);
            self.mem.param(P_GATEWAY_MEMBER).store(id, std::sync::atomic::Ordering::Relaxed);
        }
        self.seats[slot] =
            Some(Seated { seat, holder, conn: None, leaving: false, awaiting: None, stalled: None, evicted: false });
        self.order.push(slot);
        self.queue_view(vec![SeatChange { seat, kind: ChangeKind::Joined, final_seq: 0 }], After::Grant { slot, conn });
    }

    fn rejoin(&mut self, conn: ControlConn, index: u64, member_id: u64, token: u64) {
        let slot = index as usize;
        let ok = self
            .seats
            .get_mut(slot)
            .and_then(|s| s.as_mut())
            .filter(|s| s.awaiting.is_some() && s.holder.member_id == member_id && s.holder.token == token);
        match ok {
            Some(s) => {
                s.awaiting = None;
                send(&conn, Msg::Rejoined);
                s.conn = Some(conn);
            }
            None => send(&conn, Msg::Refuse { reason: Refusal::Unknown.code(), detail: 0 }),
        }
    }

    fn member_event(&mut self, slot: usize, revents: i16) {
        let mut b = [0u8; MAX_LEN];
        let Some(s) = self.seats[slot].as_mut() else { return };
        let Some(conn) = &s.conn else { return };
        if revents & libc::POLLIN != 0 {
            if let Ok(r) = conn.recv(&mut b, &mut [], Some(Duration::ZERO)) {
                if Msg::decode(&b[..r.len]) == Ok(Msg::Leave) && !s.leaving && !s.evicted {
                    s.leaving = true;
                    let seat = s.seat;
                    let final_seq = self.final_seq(slot);
                    self.order.retain(|&o| o != slot);
                    self.queue_view(
                        vec![SeatChange { seat, kind: ChangeKind::Left, final_seq }],
                        After::Left { conn_of: slot },
                    );
                    return;
                }
            }
        }
        if revents & (libc::POLLHUP | libc::POLLRDHUP | libc::POLLERR) != 0 || conn.is_hung_up() {
            self.member_gone(slot, ChangeKind::ProcessDown);
        }
    }

    /// A member's socket closed or its process died: pad its unfinished
    /// claim, drop its cursor from the gate, and (unless it left or was
    /// evicted already) commit a view saying so.
    fn member_gone(&mut self, slot: usize, kind: ChangeKind) {
        let Some(s) = self.seats[slot].take() else { return };
        let announced = s.leaving || s.evicted;
        let final_seq = self.final_seq(slot);
        self.release_slots(slot);
        if !announced && self.order.contains(&slot) {
            self.order.retain(|&o| o != slot);
            self.queue_view(vec![SeatChange { seat: s.seat, kind, final_seq }], After::Nothing);
        }
    }

    /// Frees slot `slot`'s log sides and table entry.
    fn release_slots(&mut self, slot: usize) {
        // SAFETY: the member of `slot` is gone: its process died, or it
        // closed its control socket after detaching its sides (a leaving or
        // dropped member detaches before it closes), or it never received
        // them (a JOINING entry of a dead keeper, a joiner that hung up
        // before its grant). Nobody in any process uses these slots any more,
        // and only the keeper re-grants them, after this.
        let rx = unsafe { broadcast::evict_consumer(&self.mem.log, slot) };
        // SAFETY: as above, for its producer slot.
        let tx = unsafe { broadcast::evict_producer(&self.mem.log, slot + 1) };
        if let Ok(n) = rx {
            wake_log(&self.mem, ringflow_ring::Notify::None, n);
        }
        if let Ok(w) = tx {
            wake_log(&self.mem, w.data, w.space);
        }
        if let Some(e) = table::entry(&self.mem.table, slot) {
            e.set_state(table::FREE);
        }
    }

    fn final_seq(&self, slot: usize) -> u64 {
        broadcast::producer_next_seq(&self.mem.log, slot + 1).ok().flatten().unwrap_or(0)
    }

    /// Queues the view that applies `changes` to the membership in `order`.
    fn queue_view(&mut self, changes: Vec<SeatChange>, after: After) {
        self.view_id += 1;
        let seats = self.order.iter().filter_map(|&s| self.seats[s].as_ref().map(|x| x.seat)).collect();
        self.queue.push_back((RawView { id: self.view_id, seats, changes }, after));
        self.flush_views();
    }

    /// Commits queued views while the log has room.
    fn flush_views(&mut self) {
        let mut reheld = false;
        while let Some((v, _)) = self.queue.front() {
            let (id, len) = (v.id, view::encoded_len(v));
            let pos = match self.views.try_claim(len) {
                Ok(mut claim) => {
                    let pos = claim.position();
                    // Each member's baseline: the sequence number of its
                    // first frame after the view. Claims a member placed
                    // before the view finish first (bounded wait; a dead
                    // member's claim is padded when it is evicted).
                    let Some((v, _)) = self.queue.front_mut() else { return };
                    for seat in &mut v.seats {
                        seat.next_seq = settled_next_seq(&self.mem.log, seat.slot as usize + 1, pos);
                    }
                    view::encode(v, &mut self.buf);
                    debug_assert_eq!(self.buf.len(), len);
                    claim.write(0, &self.buf);
                    claim.set_flags(FLAG_VIEW);
                    claim.set_meta(crate::clock::now());
                    history::store(&self.mem.history, self.mem.history_entry_len(), id, &self.buf);
                    // SYNC: Release; pairs with the Acquire loads of members
                    // (lapped readers) and of a new keeper: the history entry
                    // stored above is visible with the id.
                    self.mem.param(P_LATEST_VIEW).store(id, std::sync::atomic::Ordering::Release);
                    let n = claim.commit();
                    if let Ok((d, _)) = broadcast::wait_points(&self.mem.log) {
                        notify(d, n).ok();
                    }
                    pos
                }
                Err(ClaimError::Full) => {
                    // A joiner's slot is held for it at the tail it was
                    // taken at (`admit`): if producers filled the log
                    // since, that cursor can be what leaves no room for
                    // its own join view, and nothing else would ever move
                    // it. Joiners waiting for their grant have read
                    // nothing: move their cursors to the tail, try again
                    // (model: ring/tests/loom_handover.rs).
                    if !reheld && rehold_joiners(&self.mem, &self.queue) {
                        reheld = true;
                        continue;
                    }
                    return;
                }
                Err(_) => {
                    // A corrupt log: drop the view (members see the
                    // corruption themselves).
                    self.queue.pop_front();
                    continue;
                }
            };
            let Some((_, after)) = self.queue.pop_front() else { return };
            match after {
                After::Grant { slot, conn } => {
                    if let Some(e) = table::entry(&self.mem.table, slot) {
                        e.set_joined_view(id);
                        e.set_state(table::ACTIVE);
                    }
                    let Some(s) = self.seats[slot].as_mut() else { continue };
                    let grant = Msg::Grant {
                        index: slot as u64,
                        member_id: s.holder.member_id,
                        token: s.holder.token,
                        start: pos,
                        view_id: id,
                    };
                    let mut b = Vec::new();
                    grant.encode(&mut b);
                    // A joiner that went meanwhile fails the send; the poll then
                    // sees its socket hang up and frees the seat.
                    let _ = conn.send_deadline(&b, &[self.mem.segment().fd()], crate::Deadline::Now);
                    s.conn = Some(conn);
                }
                After::Left { conn_of } => {
                    if let Some(c) = self.seats[conn_of].as_ref().and_then(|s| s.conn.as_ref()) {
                        send(c, Msg::Left);
                    }
                }
                After::Nothing => {}
            }
        }
    }

    /// Per round: retry queued views, drop silent joiners, report members
    /// that did not rejoin in time, evict stalled members.
    fn housekeeping(&mut self) {
        self.flush_views();
        let now = Instant::now();
        self.pending.retain(|(_, since)| now.duration_since(*since) < JOINER_SILENCE);
        let late: Vec<usize> = self
            .seats
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref()
                    .and_then(|s| s.awaiting.as_ref())
                    .filter(|(t, _)| now.duration_since(*t) >= REJOIN_GRACE)
                    .map(|_| i)
            })
            .collect();
        for slot in late {
            self.member_gone(slot, ChangeKind::ProcessDown);
        }
        if let SlowMember::Evict { after } = self.mem.config.slow {
            self.evict_stalled(after, now);
        }
    }

    /// Evict groups: a member whose cursor holds producers back (less than
    /// one largest message of room at its cursor) without moving for
    /// `after` is evicted, once it is not reading in place.
    fn evict_stalled(&mut self, after: Duration, now: Instant) {
        let Ok(tail) = broadcast::tail(&self.mem.log) else { return };
        let cap = self.mem.config.capacity as u64;
        let need = (self.mem.config.max_message as u64 + 64).min(cap / 2);
        for slot in self.order.clone() {
            let Ok(Some(cursor)) = broadcast::consumer_cursor(&self.mem.log, slot) else { continue };
            let Some(s) = self.seats[slot].as_mut() else { continue };
            let holding = tail.saturating_sub(cursor) + need > cap;
            s.stalled = match s.stalled {
                Some((since, at)) if holding && at == cursor => Some((since, at)),
                _ if holding => Some((now, cursor)),
                _ => None,
            };
            let Some((since, _)) = s.stalled else { continue };
            if now.duration_since(since) < after {
                continue;
            }
            let Some(e) = table::entry(&self.mem.table, slot) else { continue };
            if e.mark_evicting() {
                continue; // reading in place: retried next tick
            }
            // SAFETY: the member saw EVICTING or will before its next read
            // in place (the guard handshake in `table.rs`), and it is not in
            // one now: nothing of it reads the frames its cursor holds.
            let space = unsafe { broadcast::evict_consumer(&self.mem.log, slot) };
            e.set_state(table::EVICTED);
            s.evicted = true;
            let seat = s.seat;
            let final_seq = self.final_seq(slot);
            self.order.retain(|&o| o != slot);
            self.queue_view(vec![SeatChange { seat, kind: ChangeKind::Evicted, final_seq }], After::Nothing);
            // Only now wake the producers it held: woken before, they
            // could take the room before the view, which a sender that
            // keeps the log full then holds out for long (the eviction
            // reaching members after messages sent well after it).
            if let Ok(n) = space {
                wake_log(&self.mem, ringflow_ring::Notify::None, n);
            }
            // The member may sleep in recv: wake it to see its state.
            if let Ok((d, _)) = broadcast::wait_points(&self.mem.log) {
                notify(d, d.alert()).ok();
            }
        }
    }
}

/// Moves the cursors of the slots held for joiners that wait for their
/// grant (the `After::Grant`s in the keeper's `queue`) to the log's tail;
/// true if there were any.
fn rehold_joiners(mem: &GroupMemory, queue: &VecDeque<(RawView, After)>) -> bool {
    let Ok(tail) = broadcast::tail(&mem.log) else { return false };
    let mut any = false;
    for (_, after) in queue {
        if let After::Grant { slot, .. } = after {
            // SAFETY: `admit` took and detached the slot for this joiner,
            // whose grant is not sent yet: nobody else uses it.
            if let Ok(rx) = unsafe { Consumer::adopt(mem.log.clone(), *slot, tail) } {
                rx.detach();
                any = true;
            }
        }
    }
    any
}

/// Producer slot `slot`'s next sequence number once none of its claims
/// placed before `pos` is still being written (bounded: a claim that stays
/// open past the bound is a stalled or dead producer's; its baseline may
/// then be one short, which only miscounts a joiner's first loss).
fn settled_next_seq(log: &RawRegion, slot: usize, pos: u64) -> u64 {
    for _ in 0..100_000 {
        match broadcast::producer_in_flight(log, slot) {
            Ok(Some(start)) if start < pos => std::hint::spin_loop(),
            _ => break,
        }
    }
    broadcast::producer_next_seq(log, slot).ok().flatten().unwrap_or(0)
}

#[derive(Clone, Copy)]
enum Src {
    Stop,
    Listener,
    Pending(usize),
    Member(usize),
    Process(usize),
}

fn send(conn: &ControlConn, m: Msg) {
    let mut b = Vec::new();
    m.encode(&mut b);
    let _ = conn.send_deadline(&b, &[], crate::Deadline::Now);
}

/// Wakes the log's sleepers as an eviction asked.
pub(crate) fn wake_log(mem: &GroupMemory, data: ringflow_ring::Notify, space: ringflow_ring::Notify) {
    if let Ok((d, s)) = broadcast::wait_points(&mem.log) {
        notify(d, data).ok();
        notify(s, space).ok();
    }
}

/// A pidfd of process `pid` if it is alive and started at `start` (0: not
/// checked); `None` if it is gone (or is another process now).
fn live_process(pid: u32, start: u64) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    if start != 0 && table::process_start(pid) != Some(start) {
        return None;
    }
    Some(pidfd)
}

/// 64 random bits from the kernel (tokens, salts).
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, 0) };
    if n == 8 {
        u64::from_le_bytes(b)
    } else {
        // Never without entropy on Linux ≥ 3.17; fall back to the clock.
        crate::clock::now() ^ (std::process::id() as u64) << 32
    }
}

impl AsFd for Keeper {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}
