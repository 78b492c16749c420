//! Joining: connect to the group's keeper by name, or, if nobody keeps the
//! name, create the group and keep it; then ask for a seat (JOIN), map the
//! memfd the keeper grants and adopt the slots it took for us, starting at
//! our own join view. Also the member's agent thread: it keeps the group
//! when this process holds the name, and otherwise watches the keeper's
//! socket and, when it hangs up, takes the keeper's role over or rejoins
//! whoever did.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringflow_ring::broadcast::{Consumer, Producer};
use ringflow_shm::Segment;

use super::error::JoinError;
use super::keeper::{random_u64, Keeper};
use super::memory::{GroupConfig, GroupMemory};
use super::options::GroupOptions;
use super::presence::Presence;
use super::wire::{Msg, Refusal, ANY_GUARANTEE, MAX_LEN, VERSION};
use crate::control::{validate_name, ConnectError, ControlConn, ControlListener, Permit, RuntimeDir};
use crate::wait::Deadline;

/// Suffix that puts group names in a namespace of their own.
pub(crate) const GROUP_SUFFIX: &str = ".group";
/// [`JoinError::OptionsDiffer`]'s `what` when the keeper refused the
/// guarantee asked for.
pub(crate) const GUARANTEE_DIFFERS: &str = "guarantee";

/// What a member's agent and its group end share.
pub(crate) struct Shared {
    pub name: String,
    pub dir: RuntimeDir,
    pub permit: Permit,
    pub mem: Arc<GroupMemory>,
    /// The control socket to the keeper (replaced after a takeover).
    pub conn: Mutex<Option<ControlConn>>,
    /// Local alarm word: bumped (and woken) when the member must re-check
    /// its state (expelled after a takeover, keeper gone for good).
    pub alarm: AtomicU32,
    /// The agent's stop signal (an eventfd).
    pub stop: OwnedFd,
    /// Our seat: table entry / consumer slot.
    pub slot: usize,
    pub member_id: u64,
    pub token: u64,
    /// Our shared presence lock (see `presence.rs`), held while we are a member.
    pub _presence: Presence,
}

/// Alarm values.
pub(crate) const ALARM_QUIET: u32 = 0;
pub(crate) const ALARM_EXPELLED: u32 = 1;

/// A granted seat, before the group end is assembled.
pub(crate) struct Seated {
    pub shared: Arc<Shared>,
    pub rx: Consumer<ringflow_ring::RawRegion>,
    pub tx: Producer<ringflow_ring::RawRegion>,
    pub agent: std::thread::JoinHandle<()>,
}

pub(crate) fn control_name(name: &str) -> Result<String, JoinError> {
    validate_name(name).map_err(JoinError::Name)?;
    let c = format!("{name}{GROUP_SUFFIX}");
    validate_name(&c).map_err(JoinError::Name)?;
    Ok(c)
}

/// Where the presence file of the group with control name `cname` lives.
fn presence_path(dir: &RuntimeDir, cname: &str) -> std::path::PathBuf {
    dir.path().join(format!("{cname}.members"))
}

/// The whole join, until `deadline`.
pub(crate) fn join(name: &str, opts: &GroupOptions, deadline: Deadline) -> Result<Seated, JoinError> {
    let cname = control_name(name)?;
    let config = GroupConfig::for_options(opts).map_err(|what| JoinError::BadOptions { what })?;
    let dir = match &opts.runtime_dir {
        Some(path) => RuntimeDir::at(path),
        None => RuntimeDir::resolve(),
    };
    let dir =
        dir.map_err(|e| JoinError::Io { op: "runtime directory", source: std::io::Error::other(e.to_string()) })?;
    let mut pause = Duration::from_micros(200);
    loop {
        match ControlConn::connect_deadline(&dir, &cname, deadline) {
            Ok(conn) => match ask(conn, opts, deadline) {
                Ok((conn, grant, segment)) => return seat(name, &dir, opts, conn, grant, segment, None, None),
                Err(JoinError::KeeperGone) => {}
                Err(e) => return Err(e),
            },
            Err(ConnectError::NotFound { .. }) => {
                if let Some(seated) = create(name, &cname, &dir, opts, config, deadline)? {
                    return Ok(seated);
                }
            }
            Err(e) => return Err(e.into()),
        }
        // Somebody else binds or takes over the name right now: retry.
        match deadline.remaining() {
            Some(left) if left.is_zero() => return Err(JoinError::WouldBlock),
            Some(left) if left < pause => return Err(JoinError::TimedOut),
            _ => std::thread::sleep(pause),
        }
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Creates the group and keeps it, then joins it like anyone: `None` if
/// another process bound the name first.
fn create(
    name: &str,
    cname: &str,
    dir: &RuntimeDir,
    opts: &GroupOptions,
    config: GroupConfig,
    deadline: Deadline,
) -> Result<Option<Seated>, JoinError> {
    let listener = match ControlListener::bind(dir, cname) {
        Ok(l) => l,
        Err(crate::control::BindError::InUse { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let io = |op| move |source| JoinError::Io { op, source };
    // Members alive although nobody keeps the name: one of them is taking
    // the keeper's role over. Do not lay out a second group under its name.
    let Some(presence) = Presence::creator(presence_path(dir, cname)).map_err(io("presence lock"))? else {
        return Ok(None);
    };
    let mem = Arc::new(GroupMemory::create(name, config, random_u64())?);
    let keeper = Keeper::new(mem.clone(), listener, opts.permit.clone()).map_err(|e| JoinError::Setup(e.into()))?;
    // The keeper runs on this member's agent; our own join goes through
    // its socket like anyone's, answered by the keeper thread.
    let stop = eventfd()?;
    let stop_fd = stop.try_clone().map_err(|source| JoinError::Io { op: "dup", source })?;
    let keeper_thread = std::thread::Builder::new()
        .name("ringflow-keeper".into())
        .spawn(move || {
            let mut keeper = keeper;
            keeper.run(stop_fd.as_fd());
        })
        .map_err(|source| JoinError::Io { op: "spawn keeper", source })?;
    let conn = ControlConn::connect_deadline(dir, cname, deadline)?;
    let (conn, grant, _segment) = match ask(conn, opts, deadline) {
        Ok(x) => x,
        Err(e) => {
            signal(&stop);
            let _ = keeper_thread.join();
            return Err(e);
        }
    };
    presence.share().map_err(io("presence lock"))?;
    seat(name, dir, opts, conn, grant, None, Some((mem, stop, keeper_thread)), Some(presence)).map(Some)
}

/// The grant of a JOIN.
pub(crate) struct Grant {
    index: usize,
    member_id: u64,
    token: u64,
    start: u64,
}

/// Sends JOIN and waits for the answer.
fn ask(
    conn: ControlConn,
    opts: &GroupOptions,
    deadline: Deadline,
) -> Result<(ControlConn, Grant, Option<Segment>), JoinError> {
    let (slow, evict_ns) = opts.slow.code();
    let mut b = Vec::new();
    let guarantee = if opts.gateway != 0 && opts.any_guarantee { ANY_GUARANTEE } else { opts.guarantee.code() };
    Msg::Join {
        version: VERSION,
        guarantee,
        slow,
        evict_ns,
        max_message: opts.max_message as u64,
        gateway: opts.gateway,
    }
    .encode(&mut b);
    // A keeper that refuses us at once (its permit) may have hung up
    // before our JOIN went out: its refusal is still in our socket.
    let sent = conn.send_deadline(&b, &[], deadline).is_ok();
    let mut buf = [0u8; MAX_LEN];
    let mut fds = [None];
    // `Now` still lets the keeper answer a join it can decide at once.
    let timeout = match deadline {
        _ if !sent => Some(Duration::ZERO),
        Deadline::Now => Some(Duration::from_millis(100)),
        d => d.remaining(),
    };
    let got = match conn.recv(&mut buf, &mut fds, timeout) {
        Ok(r) => r,
        Err(_) if !sent => return Err(JoinError::KeeperGone),
        Err(crate::control::RecvError::TimedOut | crate::control::RecvError::WouldBlock) => {
            return Err(if deadline == Deadline::Now { JoinError::WouldBlock } else { JoinError::TimedOut })
        }
        Err(_) => return Err(JoinError::KeeperGone),
    };
    match Msg::decode(&buf[..got.len]) {
        Ok(Msg::Grant { index, member_id, token, start, view_id: _ }) => {
            let segment = match fds[0].take() {
                Some(fd) => Some(Segment::from_fd(fd, None).map_err(|e| JoinError::Setup(e.into()))?),
                None => None,
            };
            let index = usize::try_from(index).map_err(|_| JoinError::Corrupt { what: "grant slot" })?;
            Ok((conn, Grant { index, member_id, token, start }, segment))
        }
        Ok(Msg::Refuse { reason, detail }) => Err(match Refusal::from_code(reason) {
            Some(Refusal::Guarantee) => JoinError::OptionsDiffer { what: GUARANTEE_DIFFERS },
            Some(Refusal::SlowMember) => JoinError::OptionsDiffer { what: "slow-member policy" },
            Some(Refusal::MaxMessage) => JoinError::OptionsDiffer { what: "largest message (smaller)" },
            Some(Refusal::Version) => JoinError::OptionsDiffer { what: "protocol version" },
            Some(Refusal::Full) => JoinError::Full { max: detail as usize },
            Some(Refusal::Permission) => JoinError::PermissionDenied,
            Some(Refusal::Busy) => JoinError::KeeperGone,
            _ => JoinError::Corrupt { what: "unknown refusal" },
        }),
        _ => Err(JoinError::Corrupt { what: "keeper's answer" }),
    }
}

/// One side per slot in this process: the slots adopted now, per segment
/// inode (the promise `adopt` asks for, kept against a keeper that grants
/// one slot twice).
static ADOPTED: Mutex<Vec<(u64, usize)>> = Mutex::new(Vec::new());

fn segment_inode(s: &Segment) -> u64 {
    // SAFETY: fstat writes into a zeroed stat we own; the fd is open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::fstat(s.fd().as_raw_fd(), &mut st) } == 0 {
        st.st_ino
    } else {
        0
    }
}

pub(crate) fn release_adoption(mem: &GroupMemory, slot: usize) {
    let ino = segment_inode(mem.segment());
    ADOPTED.lock().unwrap_or_else(|p| p.into_inner()).retain(|&e| e != (ino, slot));
}

#[allow(clippy::too_many_arguments)]
fn seat(
    name: &str,
    dir: &RuntimeDir,
    opts: &GroupOptions,
    conn: ControlConn,
    grant: Grant,
    segment: Option<Segment>,
    created: Option<(Arc<GroupMemory>, OwnedFd, std::thread::JoinHandle<()>)>,
    presence: Option<Presence>,
) -> Result<Seated, JoinError> {
    let presence = match presence {
        Some(p) => p,
        None => Presence::member(presence_path(dir, &control_name(name)?))
            .map_err(|source| JoinError::Io { op: "presence lock", source })?,
    };
    let (mem, stop, keeper) = match created {
        Some((mem, stop, keeper)) => (mem, stop, Some(keeper)),
        None => {
            let segment = segment.ok_or(JoinError::Corrupt { what: "grant without the group's memory" })?;
            (Arc::new(GroupMemory::attach(segment)?), eventfd()?, None)
        }
    };
    // A log laid out for membarrier wakes needs every member process
    // registered before it attaches a side (`ringflow_ring::WakeMode`).
    if ringflow_ring::broadcast::wake_mode(&mem.log).map_err(|e| JoinError::Setup(e.into()))?
        == ringflow_ring::WakeMode::Membarrier
    {
        crate::membarrier::register().map_err(|e| JoinError::Io {
            op: "membarrier registration (the group's log needs it)",
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    if grant.index >= mem.config.max_members {
        return Err(JoinError::Corrupt { what: "grant slot out of range" });
    }
    let ino = segment_inode(mem.segment());
    {
        let mut adopted = ADOPTED.lock().unwrap_or_else(|p| p.into_inner());
        if adopted.contains(&(ino, grant.index)) {
            return Err(JoinError::Corrupt { what: "keeper granted a slot this process holds" });
        }
        adopted.push((ino, grant.index));
    }
    // SAFETY: the keeper took and detached these slots for us (the grant),
    // and no other side in this process holds them (ADOPTED, just checked).
    let rx = unsafe { Consumer::adopt(mem.log.clone(), grant.index, grant.start) };
    // SAFETY: as above, for the producer slot.
    let tx = unsafe { Producer::adopt(mem.log.clone(), grant.index + 1) };
    let (rx, tx) = match (rx, tx) {
        (Ok(rx), Ok(tx)) => (rx, tx),
        (Err(e), _) | (_, Err(e)) => {
            release_adoption(&mem, grant.index);
            return Err(JoinError::Setup(e.into()));
        }
    };
    let shared = Arc::new(Shared {
        name: name.to_owned(),
        dir: dir.clone(),
        permit: opts.permit.clone(),
        mem,
        conn: Mutex::new(Some(conn)),
        alarm: AtomicU32::new(ALARM_QUIET),
        stop,
        slot: grant.index,
        member_id: grant.member_id,
        token: grant.token,
        _presence: presence,
    });
    let agent = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("ringflow-group".into())
            .spawn(move || agent(shared, keeper))
            .map_err(|source| JoinError::Io { op: "spawn group agent", source })?
    };
    Ok(Seated { shared, rx, tx, agent })
}

/// The member's agent: waits for its keeper thread (if this process keeps
/// the group) or watches the keeper's socket; after a hang-up it keeps the
/// group itself or rejoins the new keeper. Returns when told to stop.
fn agent(shared: Arc<Shared>, keeper: Option<std::thread::JoinHandle<()>>) {
    if let Some(k) = keeper {
        let _ = k.join();
        return;
    }
    loop {
        let fd = match shared.conn.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(c) => c.as_raw_fd(),
            None => return,
        };
        let mut fds = [
            libc::pollfd { fd: shared.stop.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd, events: libc::POLLRDHUP, revents: 0 },
        ];
        // SAFETY: two initialised pollfds; both fds stay open during the
        // call (the stop fd is ours; the conn is replaced only by us).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n <= 0 {
            continue;
        }
        if fds[0].revents != 0 {
            return;
        }
        if fds[1].revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
            match succeed(&shared) {
                Some(Some(k)) => {
                    let mut k = k;
                    k.run(shared.stop.as_fd());
                    return;
                }
                Some(None) => continue,
                None => return,
            }
        }
    }
}

/// After the keeper hung up: become the keeper (`Some(Some)`), or rejoin
/// the one who did (`Some(None)`), or stop (`None`: told to, or expelled).
fn succeed(shared: &Shared) -> Option<Option<Keeper>> {
    let cname = control_name(&shared.name).ok()?;
    let mut pause = Duration::from_micros(100);
    loop {
        if stopped(shared) {
            return None;
        }
        if let Ok(listener) = ControlListener::bind(&shared.dir, &cname) {
            let keeper = Keeper::take_over(shared.mem.clone(), listener, shared.permit.clone()).ok()?;
            // Our own rejoin reaches the keeper loop through its backlog.
            if rejoin(shared, &cname, false) {
                return Some(Some(keeper));
            }
            return None;
        }
        if rejoin(shared, &cname, true) {
            return Some(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Connects to the keeper of `cname` and rejoins; `wait` for its answer.
fn rejoin(shared: &Shared, cname: &str, wait: bool) -> bool {
    let Ok(conn) = ControlConn::connect_deadline(&shared.dir, cname, Deadline::after(Duration::from_millis(100)))
    else {
        return false;
    };
    let mut b = Vec::new();
    Msg::Rejoin { index: shared.slot as u64, member_id: shared.member_id, token: shared.token }.encode(&mut b);
    if conn.send_deadline(&b, &[], Deadline::Now).is_err() {
        return false;
    }
    if wait {
        // Wait for the answer, or for our own stop (a Drop must not wait).
        let mut fds = [
            libc::pollfd { fd: shared.stop.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: conn.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two initialised pollfds over descriptors open for the call.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, 5000) } <= 0 || fds[0].revents != 0 {
            return false;
        }
        let mut buf = [0u8; MAX_LEN];
        match conn.recv(&mut buf, &mut [], Some(Duration::ZERO)) {
            Ok(r) if Msg::decode(&buf[..r.len]) == Ok(Msg::Rejoined) => {}
            Ok(_) => {
                expel(shared);
                return true;
            }
            Err(_) => return false,
        }
    }
    *shared.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn);
    true
}

/// The new keeper does not know us: we are out of the group.
fn expel(shared: &Shared) {
    // SYNC: Release; pairs with the Acquire of the alarm in the group end.
    shared.alarm.store(ALARM_EXPELLED, Ordering::Release);
    // SAFETY: a word of ours, alive as long as `shared`.
    let _ = unsafe { crate::futex::wake(shared.alarm.as_ptr(), u32::MAX) };
    if let Ok((d, _)) = ringflow_ring::broadcast::wait_points(&shared.mem.log) {
        let _ = crate::wait::notify(d, d.alert());
    }
}

fn stopped(shared: &Shared) -> bool {
    let mut p = libc::pollfd { fd: shared.stop.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one initialised pollfd; zero timeout.
    unsafe { libc::poll(&mut p, 1, 0) > 0 }
}

pub(crate) fn eventfd() -> Result<OwnedFd, JoinError> {
    // SAFETY: eventfd takes an initial value and flags; returns a new fd or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(JoinError::Io { op: "eventfd", source: std::io::Error::last_os_error() });
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes an eventfd readable.
pub(crate) fn signal(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a local to an eventfd we own.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}
