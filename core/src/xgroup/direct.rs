//! A FIFO or UNORDERED group's direct relay at one gateway: its members'
//! frames go straight to the other hosts' gateways ([`Links`]) and into
//! the local log, what arrives from them is written on arrival, and views
//! wait for every gateway's flush ([`Sync`]). The cluster's log carries
//! only joins, leaves, views and the notes that keep them synchronous
//! (`Start`, `Flush`, `Resend`): no consensus round trip on the data path.
//!
//! While this host's node has lost the quorum (`quorum.rs`) the relay
//! goes on (links, acks, frames kept as they arrive, up to `MAX_QUEUE`
//! per origin, past which a link stops taking and its sender keeps its
//! window) but [`Sync`] is held: nothing is written after the view that
//! tells the members of the loss, whose sender is not in it. On the
//! regain other hosts' kept frames are written after the regained view;
//! this host's own wait until an entry of this gateway proposed after the
//! regain is applied (`Sync::own_known`: the majority did not take the
//! node down before it), or, if it did, until the survivors' flushes of
//! the node's barrier give the cut: frames beyond it are dropped, as no
//! survivor delivers them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use crate::cluster::ViewReason;

use super::note::Note;
use super::relay::{self, Head, Links, Msg};
use super::sync::{Frame, Sync, Write};

/// What the gateway counts of a direct group (logged, and read by tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// This host's members' frames relayed.
    pub(crate) relayed: u64,
    /// Frames taken from other hosts' links.
    pub(crate) received: u64,
    /// Frames of departed hosts put in the log for other survivors.
    pub(crate) resent: u64,
    /// Frames dropped as stale or bogus.
    pub(crate) dropped: u64,
}

pub(crate) struct Direct {
    me: u64,
    pub(crate) sync: Sync,
    pub(crate) links: Links,
    /// Each gateway's epoch (their `Start`s), and the hosts down.
    epochs: BTreeMap<u64, u64>,
    down: BTreeSet<u64>,
    /// Links to acknowledge after this cycle's arrivals: origin → (epoch, start).
    acks: BTreeMap<u64, (u64, u64)>,
    /// Relay messages to send: (host, bytes).
    pub(crate) out: Vec<(u64, Vec<u8>)>,
    pub(crate) counts: Counts,
    max_message: usize,
}

/// A new run's epoch: distinct from every earlier run's of this host.
pub(crate) fn new_epoch() -> u64 {
    static NTH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // SYNC: Relaxed; a counter that only makes each value distinct.
    let nth = NTH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    ((nanos as u64) ^ (u64::from(std::process::id()) << 40) ^ nth.wrapping_mul(0x9e37_79b9_7f4a_7c15)).max(1)
}

impl Direct {
    pub(crate) fn new(me: u64, epoch: u64, group: String, max_message: usize) -> Direct {
        Direct {
            me,
            sync: Sync::new(me, epoch),
            links: Links::new(me, epoch, group),
            epochs: BTreeMap::new(),
            down: BTreeSet::new(),
            acks: BTreeMap::new(),
            out: Vec::new(),
            counts: Counts::default(),
            max_message,
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.links.epoch()
    }

    /// Whether the gateway may read its members' frames now: its relay
    /// started, and no link's window nor its own queue is full.
    pub(crate) fn may_read(&self) -> bool {
        self.sync.is_live() && !self.links.full() && !self.sync.is_full(self.me)
    }

    /// A member's frame: numbered, tagged, queued for the local log and
    /// relayed.
    pub(crate) fn submit(&mut self, member: u64, mseq: u64, sent_at: u64, bytes: Vec<u8>) {
        let seq = self.links.next_seq();
        let frame = Frame { origin: self.me, seq, tag: self.sync.sending_view(), member, mseq, sent_at, bytes };
        if !self.sync.own(frame.clone()) {
            tracing::error!(seq, "group gateway's own frame out of sequence");
        }
        self.links.send(frame, &mut self.out);
        self.counts.relayed += 1;
    }

    /// A relay message from another gateway (hostile bytes).
    pub(crate) fn arrived(&mut self, head: &Head, msg: Msg) {
        if head.to != self.me || head.to_epoch != self.epoch() || head.from == self.me {
            return;
        }
        match msg {
            Msg::Data { start, stable, frame } => {
                if !self.sync.link(head.from, head.from_epoch, start) {
                    return;
                }
                if self.sync.arrived(frame) {
                    self.counts.received += 1;
                }
                self.sync.stable(head.from, stable);
                self.acks.insert(head.from, (head.from_epoch, start));
            }
            Msg::Ack { start, upto } => self.links.acked(head, start, upto),
        }
    }

    /// Decodes a relay message of at most the group's message size.
    pub(crate) fn decode(&self, b: &[u8]) -> Option<(Head, Msg)> {
        relay::decode(b, self.max_message)
    }

    /// A committed note of the direct relay from `sender`'s gateway;
    /// returns a flush to propose when this gateway's relay just started
    /// (none: it has no view to flush yet).
    pub(crate) fn note(&mut self, sender: u64, note: Note) {
        match note {
            Note::Start { epoch } => {
                let was_live = self.sync.is_live();
                self.sync.started(sender, epoch);
                if sender == self.me {
                    if epoch == self.epoch() && !was_live {
                        for (h, e) in &self.epochs {
                            if !self.down.contains(h) {
                                self.links.add(*h, *e, false);
                            }
                        }
                    }
                    return;
                }
                self.epochs.insert(sender, epoch);
                self.down.remove(&sender);
                if self.sync.is_live() {
                    self.links.add(sender, epoch, false);
                }
            }
            Note::Flush(f) => {
                let _ = self.sync.flush(f);
            }
            Note::Resend { epoch, frame } => {
                let _ = self.sync.resent(epoch, frame);
            }
            _ => {}
        }
    }

    /// A change of the cluster's nodes (a view of the nodes' group or of
    /// this group at entry `index`); returns the barrier to flush, if one
    /// was registered.
    pub(crate) fn node_event(&mut self, index: u64, reason: ViewReason) -> Option<u64> {
        match reason {
            ViewReason::NodeDown { host } => {
                // Once per departure (said by the nodes' group and this one).
                if !self.down.insert(host) {
                    return None;
                }
                self.links.remove(host);
                self.sync.node_down(host, index);
                self.sync.departure(host).filter(|b| b / 256 == index)
            }
            ViewReason::NodeUp { host, .. } => {
                // Once per return: the nodes' group and each member that
                // comes back say it again (a second restart would drop
                // what the first link has not had acknowledged).
                if !self.down.remove(&host) {
                    return None;
                }
                self.sync.node_up(host);
                if host == self.me {
                    self.links.restart_all();
                } else if let (true, Some(e)) = (self.sync.is_live(), self.epochs.get(&host)) {
                    self.links.add(host, *e, true);
                }
                None
            }
            _ => None,
        }
    }

    /// This gateway's flush of `view` (to propose), if its relay started.
    pub(crate) fn flush_of(&self, view: u64) -> Option<Note> {
        self.sync.is_live().then(|| Note::Flush(self.sync.own_flush(view, self.links.seq(), self.links.listed())))
    }

    /// Acknowledges this cycle's arrivals, sends again what waits, steps
    /// the synchrony; returns the resends to propose and moves the local
    /// writes to `write`.
    pub(crate) fn cycle(&mut self, now: Instant, mut write: impl FnMut(Write)) -> Vec<Note> {
        for (origin, (epoch, start)) in std::mem::take(&mut self.acks) {
            let ack = self.links.ack(origin, epoch, start, self.sync.have(origin));
            self.out.push((origin, ack));
        }
        self.links.resend(now, &mut self.out);
        let step = self.sync.step();
        self.counts.dropped += step.dropped as u64;
        self.counts.resent += step.resend.len() as u64;
        while let Some(w) = self.sync.next_write() {
            write(w);
        }
        // The epochs come with the frames: the origin may be forgotten by
        // now (its barrier installed in the same step).
        step.resend.into_iter().map(|(epoch, frame)| Note::Resend { epoch, frame }).collect()
    }
}
