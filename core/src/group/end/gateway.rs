//! The gateway's end of a group that crosses hosts: the host's engine
//! joins as a member whose seat the keeper records (`cross.rs`), reads
//! every frame of the log raw (the keeper's views and the members'
//! submits, which it proposes to the cluster) and writes what the cluster
//! committed (cluster views, relayed messages). Used by the engine's group
//! agent (`crate::xgroup`) only; it never waits: every call takes what is
//! there now.

use ringflow_ring::{Notify, ReadError};

use super::*;

/// One frame of the local log, as the gateway acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GatewayFrame {
    /// The keeper committed a view: these seats (the gateway's own
    /// excluded), after these changes.
    View {
        /// Members seated now.
        members: Vec<Member>,
        /// What changed, with why.
        changes: Vec<(Member, ChangeKind)>,
    },
    /// A member's message for the cluster (a submit frame).
    Submit {
        /// Its local member id.
        member: u64,
        /// Its sequence number in the local log.
        seq: u64,
        /// Its send stamp.
        sent_at: u64,
        /// The message.
        bytes: Vec<u8>,
    },
}

/// Why a gateway did not join its group.
#[derive(Debug)]
pub(crate) enum GatewayJoinError {
    /// The join failed.
    Join(JoinError),
    /// The group exists on this host with another guarantee than the
    /// one the gateway asked for: `found` is the group's (`None`: its
    /// keeper could not be asked).
    GuaranteeDiffers {
        /// The group's guarantee.
        found: Option<Guarantee>,
        /// The one asked for.
        asked: Guarantee,
    },
}

impl std::fmt::Display for GatewayJoinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayJoinError::Join(e) => e.fmt(f),
            GatewayJoinError::GuaranteeDiffers { found: Some(found), asked } => {
                write!(f, "the group is {found} on this host, not {asked}")
            }
            GatewayJoinError::GuaranteeDiffers { found: None, asked } => {
                write!(f, "the group has another guarantee than {asked} on this host")
            }
        }
    }
}

impl GroupEnd {
    /// Joins group `name` as the gateway of host `host` (a cluster node
    /// id). With `guarantee`, the group must have it: a group nobody
    /// keeps is created with it (and `opts`' other options), one of
    /// another guarantee refuses the gateway (its keeper compares, as
    /// for any joiner, before a seat is taken: its members never see the
    /// gateway come and go). Without, the gateway takes the group's
    /// guarantee as it finds it, or creates it with `opts`'. Either way
    /// it takes the slow-member policy and sizes as they are.
    pub(crate) fn join_gateway(
        name: &str,
        opts: &GroupOptions,
        host: u16,
        guarantee: Option<Guarantee>,
        deadline: Deadline,
    ) -> Result<GroupEnd, GatewayJoinError> {
        let mut opts = opts.clone();
        opts.gateway = u32::from(host).max(1);
        opts.record_latency = false;
        opts.any_guarantee = guarantee.is_none();
        if let Some(g) = guarantee {
            opts.guarantee = g;
        }
        match GroupEnd::join(name, &opts, deadline) {
            // Its keeper compared them; one that did not (another build)
            // is caught here.
            Ok(end) => match guarantee {
                Some(asked) if end.config.guarantee != asked => {
                    Err(GatewayJoinError::GuaranteeDiffers { found: Some(end.config.guarantee), asked })
                }
                _ => Ok(end),
            },
            Err(JoinError::OptionsDiffer { what }) if what == join::GUARANTEE_DIFFERS => {
                Err(GatewayJoinError::GuaranteeDiffers { found: found_guarantee(name, &opts), asked: opts.guarantee })
            }
            Err(e) => Err(GatewayJoinError::Join(e)),
        }
    }

    /// Reads up to `max` frames of the log into `out`, never waiting;
    /// returns how many frames it consumed (what it skipped included).
    /// `admit` is asked before each member's submit frame is consumed,
    /// with its payload's length: `false` stops the read there, the frame
    /// left in the log (and the room it takes held) for a later poll. The
    /// keeper's views are never refused.
    pub(crate) fn gateway_poll(
        &mut self,
        out: &mut Vec<GatewayFrame>,
        max: usize,
        mut admit: impl FnMut(usize) -> bool,
    ) -> Result<usize, RecvError> {
        let corrupt = |what| RecvError::Corrupt(ringflow_ring::Corrupt { offset: 0, value: 0, what });
        let mut consumed = 0;
        while consumed < max {
            let info = match self.rx.peek_frame() {
                Ok(info) => info,
                Err(ReadError::Empty) => break,
                Err(ReadError::Corrupt(c)) => return Err(RecvError::Corrupt(c)),
                Err(ReadError::Closed) => return Err(RecvError::Left),
                Err(ReadError::Lapped { .. }) => return Err(corrupt("the gateway was lapped (a Lap group)")),
                Err(_) => break,
            };
            if info.producer == 0 {
                consumed += 1;
                if info.flags != FLAG_VIEW || info.len > view::max_len(self.config.max_members) {
                    return Err(corrupt("keeper frame that is not a view"));
                }
                self.buf.resize(info.len, 0);
                let copied = match self.rx.try_read() {
                    Ok(mut guard) => guard.read_into(&mut self.buf).is_ok(),
                    Err(_) => false,
                };
                if !copied {
                    continue;
                }
                let v = view::decode(&self.buf, self.config.max_members).map_err(corrupt)?;
                if v.id <= self.view.id {
                    continue;
                }
                self.apply_seats(&v);
                let me = self.me.id;
                let members = v.seats.iter().map(|s| s.member).filter(|m| m.id != me).collect();
                let changes =
                    v.changes.iter().filter(|c| c.seat.member.id != me).map(|c| (c.seat.member, c.kind)).collect();
                out.push(GatewayFrame::View { members, changes });
                continue;
            }
            let from = (info.producer as usize).checked_sub(1).and_then(|s| self.senders.get(s).copied().flatten());
            let submit = info.flags == FLAG_SUBMIT && info.producer as usize != self.slot + 1;
            if submit && from.is_some() && !admit(info.len) {
                break;
            }
            consumed += 1;
            let guard = match self.rx.try_read() {
                Ok(g) => g,
                Err(_) => continue,
            };
            if let (true, Some(member)) = (submit, from) {
                if let Some(bytes) = guard.payload() {
                    out.push(GatewayFrame::Submit {
                        member: member.id,
                        seq: info.seq,
                        sent_at: info.meta,
                        bytes: bytes.to_vec(),
                    });
                }
            }
            drop(guard);
        }
        if consumed > 0 {
            self.released = self.rx.cursor();
            let n = self.rx.release();
            let _ = crate::wait::notify(self.rx.space_wait(), n);
        }
        Ok(consumed)
    }

    /// Writes one frame of the gateway (`flags`, metadata `meta`, the
    /// concatenation of `parts`) without waiting: `WouldBlock` if the log
    /// has no room now (a slow member of a Block group).
    #[cfg(test)]
    pub(crate) fn gateway_write(&mut self, flags: u8, meta: u64, parts: &[&[u8]]) -> Result<(), McastError> {
        let n = self.gateway_write_quiet(flags, meta, parts)?;
        self.gateway_wake(n)
    }

    /// [`gateway_write`](Self::gateway_write) without the wake: returns
    /// whether a member sleeps on the log, for one
    /// [`gateway_wake`](Self::gateway_wake) after a run of writes. A
    /// sleeping member takes tens of microseconds to wake, and until it
    /// withdraws its announcement every frame written says `Wake` again:
    /// a futex call each, where one wakes it.
    pub(crate) fn gateway_write_quiet(&mut self, flags: u8, meta: u64, parts: &[&[u8]]) -> Result<Notify, McastError> {
        self.check_member()?;
        match self.tx.try_send_parts(parts, meta, flags) {
            Ok((n, _)) => Ok(n),
            Err(ClaimError::Full) => {
                // Our own cursor may be what holds the log.
                let n = self.rx.release();
                let _ = crate::wait::notify(self.rx.space_wait(), n);
                Err(McastError::WouldBlock)
            }
            Err(ClaimError::TooLarge { len, max }) => Err(McastError::TooLarge { len, max }),
            Err(ClaimError::Corrupt(c)) => Err(McastError::Corrupt(c)),
            Err(_) => Err(McastError::Left),
        }
    }

    /// Wakes the members sleeping on the log, if `n` (what
    /// [`gateway_write_quiet`](Self::gateway_write_quiet)s said, merged)
    /// asks for it.
    pub(crate) fn gateway_wake(&self, n: Notify) -> Result<(), McastError> {
        crate::wait::notify(self.rx.data_wait(), n).map_err(McastError::Io)
    }

    /// Announces the gateway as a sleeper on its log's data wait point, for
    /// a sleep that another loop does (the bridge's io_uring): returns the
    /// futex word's address, the value it must still hold and whether the
    /// publishers skip their fence (the sleeper then issues the barrier
    /// before its re-check, [`gateway_readable`](Self::gateway_readable)).
    /// `None` for a garbage control area (nothing announced: the next poll
    /// reports it). Each `Some` is followed by one
    /// [`gateway_sleep_done`](Self::gateway_sleep_done).
    pub(crate) fn gateway_sleep_prepare(&self) -> Option<(usize, u32, bool)> {
        let (data, _) = ringflow_ring::broadcast::wait_points(&self.shared.mem.log).ok()?;
        let token = data.prepare();
        Some((data.futex_word() as usize, token, data.needs_membarrier()))
    }

    /// Withdraws the announcement of [`gateway_sleep_prepare`](Self::gateway_sleep_prepare).
    pub(crate) fn gateway_sleep_done(&self) {
        if let Ok((data, _)) = ringflow_ring::broadcast::wait_points(&self.shared.mem.log) {
            data.finish();
        }
    }

    /// Whether a frame waits at the gateway's cursor (true for a garbage
    /// control area: the next poll reports it).
    pub(crate) fn gateway_readable(&self) -> bool {
        ringflow_ring::broadcast::readable_at(&self.shared.mem.log, self.rx.cursor()).unwrap_or(true)
    }

    /// Says to this host's members whether its engine lost the cluster's
    /// quorum: while it has, their multicasts fail with `NoQuorum`.
    pub(crate) fn gateway_quorum(&self, lost: bool) {
        // SYNC: Relaxed; pairs with the Relaxed load in `quorum_lost`: a
        // flag on its own (the views the gateway writes carry the news).
        self.shared.mem.param(P_GATEWAY_QUORUM).store(if lost { QUORUM_LOST } else { 0 }, Ordering::Relaxed);
    }

    /// The group's configuration (the gateway checks sizes against it).
    pub(crate) fn config(&self) -> GroupConfig {
        self.config
    }
}

/// The guarantee of group `name` as its keeper shows it (`None` if it
/// could not be asked), for the message of a refused gateway.
fn found_guarantee(name: &str, opts: &GroupOptions) -> Option<Guarantee> {
    let dir = match &opts.runtime_dir {
        Some(dir) => dir.clone(),
        None => crate::control::RuntimeDir::resolve().ok()?.path().to_path_buf(),
    };
    super::super::inspect(&dir, name, Deadline::after(Duration::from_secs(1))).ok().map(|s| s.guarantee)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::group::cross::{origin_word, relay_header, ClusterView, FLAG_CLUSTER_VIEW, FLAG_RELAYED};

    const LONG: Deadline = Deadline::Never;

    fn next(g: &mut GroupEnd) -> Result<String, RecvError> {
        Ok(match g.recv(Deadline::after(Duration::from_secs(20)))? {
            Event::Message(m) => {
                let s = m.sender();
                let text = String::from_utf8_lossy(m.payload().expect("in place")).into_owned();
                format!("msg {}/{} #{} {text}", s.host, s.id, m.seq())
            }
            Event::View(v) => {
                let ms: Vec<String> = v.members.iter().map(|m| format!("{}/{}", m.host, m.id)).collect();
                let cs: Vec<String> =
                    v.changes.iter().map(|c| format!("{:?} {}/{}", c.kind, c.member.host, c.member.id)).collect();
                format!("view [{}] ({})", ms.join(" "), cs.join(", "))
            }
            Event::Lost { count } => format!("lost {count}"),
        })
    }

    /// Reads the gateway's log until `want` frames came (bounded).
    fn poll(gw: &mut GroupEnd, want: usize) -> Vec<GatewayFrame> {
        let mut out = Vec::new();
        for _ in 0..20_000 {
            gw.gateway_poll(&mut out, 64, |_| true).expect("poll");
            if out.len() >= want {
                return out;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("the gateway read {out:?}, not {want} frames");
    }

    fn write_view(gw: &mut GroupEnd, v: &ClusterView) {
        let mut b = Vec::new();
        cross::encode_view(v, gw.config().max_members, &mut b).expect("fits");
        gw.gateway_write(FLAG_CLUSTER_VIEW, 0, &[&b]).expect("room");
    }

    /// A member of a group whose gateway joined first: it finds the
    /// group crosses hosts (the keeper's record), its host is the
    /// gateway's, its multicasts are submits only the gateway reads, it
    /// delivers the gateway's cluster views (the first naming it first)
    /// and relayed messages with their origin; when the gateway leaves,
    /// the members of other hosts go with a NodeDown view.
    #[test]
    fn a_member_of_a_crossing_group_follows_its_gateway() {
        ringflow_testkit::isolate_runtime_dir();
        let mut gw = GroupEnd::join_gateway("xg-unit", &GroupOptions::new(), 3, None, LONG).expect("gateway");
        let mut a = GroupEnd::join("xg-unit", &GroupOptions::new().loopback(false), LONG).expect("member");
        assert_eq!(a.crossing_host(), None, "nothing read yet");
        // The keeper's view seating the gateway is read, no cluster view
        // yet: nothing is delivered, and the gateway is no member.
        assert!(matches!(a.recv(Deadline::Now), Err(RecvError::WouldBlock)));
        let me = a.local_member();
        assert_eq!(a.members(), vec![Member::local(me.id, me.pid)]);
        // The gateway reads the member's join from the keeper's view.
        let frames = poll(&mut gw, 2);
        assert!(
            matches!(&frames[1], GatewayFrame::View { changes, .. } if changes == &[(Member::local(me.id, me.pid), ChangeKind::Joined)]),
            "{frames:?}"
        );
        // A cluster view without `a` (before its join committed), then one with it.
        let remote = Member { id: 9, pid: 0, host: 2 };
        let mine = Member { id: me.id, pid: me.pid, host: 3 };
        write_view(
            &mut gw,
            &ClusterView { id: 10, members: vec![remote], changes: vec![(remote, ChangeKind::Joined)] },
        );
        let msg = |gw: &mut GroupEnd, host, id, seq, text: &str| {
            let meta = origin_word(host, id).expect("in range");
            gw.gateway_write(FLAG_RELAYED, meta, &[&relay_header(seq, 5), text.as_bytes()]).expect("room")
        };
        msg(&mut gw, 2, 9, 1, "before our join");
        write_view(
            &mut gw,
            &ClusterView { id: 12, members: vec![remote, mine], changes: vec![(mine, ChangeKind::Joined)] },
        );
        msg(&mut gw, 2, 9, 2, "hello");
        msg(&mut gw, 3, me.id, 1, "our own, relayed");
        assert_eq!(next(&mut a).expect("view"), format!("view [2/9 3/{0}] (Joined 3/{0})", me.id));
        assert_eq!(a.crossing_host(), Some(3));
        assert_eq!(a.local_member().host, 3);
        assert_eq!(a.members(), vec![remote, mine]);
        assert_eq!(a.view_id(), 12);
        assert_eq!(next(&mut a).expect("msg"), "msg 2/9 #2 hello");
        // Our own relayed message is skipped (no loopback).
        assert!(matches!(a.recv(Deadline::Now), Err(RecvError::WouldBlock)));

        // Our multicast is a submit: the gateway gets it, we do not.
        a.mcast(b"to the cluster", LONG).expect("mcast");
        let frames = poll(&mut gw, 1);
        assert!(
            matches!(&frames[0], GatewayFrame::Submit { member, bytes, .. } if *member == me.id && bytes == b"to the cluster"),
            "{frames:?}"
        );
        assert!(matches!(a.recv(Deadline::Now), Err(RecvError::WouldBlock)));

        // Hostile frames of the gateway: a relayed frame shorter than its
        // header is an error, not a panic.
        gw.gateway_write(FLAG_RELAYED, origin_word(2, 9).expect("in range"), &[b"short"]).expect("room");
        assert!(matches!(a.recv(Deadline::after(Duration::from_secs(20))), Err(RecvError::Corrupt(_))));

        // The gateway goes: the remote member goes with it.
        gw.leave(LONG).expect("gateway leaves");
        drop(gw);
        let v = next(&mut a).expect("view");
        assert_eq!(v, format!("view [0/{}] (NodeDown 2/9)", me.id));
        assert_eq!(a.crossing_host(), None);
        assert_eq!(a.local_member().host, 0);
    }
}
