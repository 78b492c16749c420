//! Virtual synchrony for a FIFO or UNORDERED group relayed directly
//! between hosts: which relayed frames a gateway writes into its local log
//! before each view, so that every member delivers the same views and
//! each message in the same view everywhere, with no consensus round trip
//! on the data path. A pure state machine: frames, flushes and views in,
//! local writes (and the resends this gateway owes) out.
//!
//! - Each host's gateway numbers what its members send with one relay
//!   sequence (its *origin* seq, per run: its *epoch*) and tags each frame
//!   with the view it was sent in: the id of the last view (or barrier)
//!   it applied from the cluster's log.
//! - A frame is written when its tag is the installed view: at once on
//!   the sender's own host, on arrival elsewhere.
//! - A view is installed (written) once every gateway that was live when
//!   it committed has committed its [`Flush`] of it (how far its own
//!   frames go before it) and this gateway holds all of them that were
//!   relayed to it. A flush is proposed by each gateway as it applies the
//!   view, so a view change costs one consensus round, the data none.
//! - A gateway taken down (its node's `NodeDown`) cannot flush: a
//!   *barrier* (a view with no frame, at its `NodeDown`'s entry) is
//!   flushed by the survivors, each saying how far it got in the departed
//!   one's frames; the cut is the furthest, and the survivor holding it
//!   puts the frames others lack in the log ([`Step::resend`]). So the
//!   survivors write the same prefix of a departed host's frames, in the
//!   same views.
//!
//! Everything read from the log or a link is input: a flush of a view
//! that is not pending, a frame of an unknown origin, out of sequence,
//! tagged with a view already installed (or none that comes) is dropped;
//! queues are bounded.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Frames held per origin (arrived, not yet written), and kept after
/// their write until every host has them (for a departed origin's cut).
pub(crate) const MAX_QUEUE: usize = 8192;
/// Hosts a flush may list (links and counts).
pub(crate) const MAX_HOSTS: usize = 256;
/// A barrier's rank in its entry: after every view of the entry.
const BARRIER_RANK: u64 = 255;

/// One relayed message of a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The sending host (its gateway's cluster node id).
    pub(crate) origin: u64,
    /// Its origin seq (from 1, per epoch of the origin's gateway).
    pub(crate) seq: u64,
    /// The id of the view it was sent in.
    pub(crate) tag: u64,
    /// The sending member's id on its host, its seq and send stamp.
    pub(crate) member: u64,
    pub(crate) mseq: u64,
    pub(crate) sent_at: u64,
    pub(crate) bytes: Vec<u8>,
}

/// A gateway's flush of a view: its own frames up to `upto` go before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Flush {
    /// The view (or barrier) id.
    pub(crate) view: u64,
    /// The flushing gateway's host and epoch.
    pub(crate) host: u64,
    pub(crate) epoch: u64,
    /// Its origin seq when it applied the view.
    pub(crate) upto: u64,
    /// The hosts it relays to: (host, that gateway's epoch, first seq sent).
    pub(crate) links: Vec<(u64, u64, u64)>,
    /// How far it got in each other origin's frames: (origin, seq).
    pub(crate) got: Vec<(u64, u64)>,
}

/// What the gateway writes into its local log, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    Frame(Frame),
    /// A view's encoded frame.
    View(Vec<u8>),
}

/// What one [`Sync::step`] asks of the gateway besides its writes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Step {
    /// Frames of a departed origin (with its run's epoch) this gateway
    /// holds and other survivors lack: to put in the cluster's log.
    pub(crate) resend: Vec<(u64, Frame)>,
    /// Frames dropped as stale or bogus this step.
    pub(crate) dropped: usize,
    /// (origin, barrier) of the resends above.
    owed: Vec<(u64, u64)>,
}

struct Pending {
    id: u64,
    /// `None`: a barrier.
    frame: Option<Vec<u8>>,
    /// The gateways that must flush it.
    required: BTreeSet<u64>,
}

#[derive(Default)]
struct Origin {
    epoch: u64,
    start: u64,
    /// The last seq held (queued or written).
    have: u64,
    queue: VecDeque<Frame>,
    /// Written, kept until the origin says every host has them.
    kept: VecDeque<Frame>,
    /// Taken down: only resends from the log extend it.
    frozen: bool,
}

/// One group's synchrony at one gateway.
pub(crate) struct Sync {
    me: u64,
    epoch: u64,
    installed: u64,
    pending: VecDeque<Pending>,
    flushes: BTreeMap<(u64, u64), Flush>,
    origins: BTreeMap<u64, Origin>,
    /// Gateways started (their `Start` applied) and not down.
    live: BTreeSet<u64>,
    /// Gateways taken down, and the barrier where they left.
    departed: BTreeMap<u64, u64>,
    /// (origin, barrier) resends already owed and handed out.
    resent: BTreeSet<(u64, u64)>,
    writes: VecDeque<Write>,
    /// While this host's node has lost the quorum: nothing is written
    /// (the members are in a view of their own host) or installed.
    held: bool,
    /// After the quorum is back: this host's own frames not yet written
    /// wait until it knows whether the majority took it down meanwhile
    /// (then only its frames up to the survivors' cut are written).
    own_waits: bool,
}

impl Sync {
    pub(crate) fn new(me: u64, epoch: u64) -> Sync {
        let mut origins = BTreeMap::new();
        origins.insert(me, Origin { epoch, start: 1, ..Origin::default() });
        Sync {
            me,
            epoch,
            installed: 0,
            pending: VecDeque::new(),
            flushes: BTreeMap::new(),
            origins,
            live: BTreeSet::new(),
            departed: BTreeMap::new(),
            resent: BTreeSet::new(),
            writes: VecDeque::new(),
            held: false,
            own_waits: false,
        }
    }

    /// This host's node lost the quorum (`true`: nothing is written from
    /// now on, frames are kept as they arrive) or has it back (`false`:
    /// what is kept is written as before, except this host's own frames,
    /// which wait for [`own_known`](Self::own_known) or for the cut of
    /// this host's own departure).
    pub(crate) fn hold(&mut self, held: bool) {
        if self.held && !held {
            self.own_waits = true;
        }
        self.held = held;
    }

    /// Whether writes are held (the quorum is lost).
    #[cfg(test)]
    pub(crate) fn is_held(&self) -> bool {
        self.held
    }

    /// Everything the majority committed while this host had lost the
    /// quorum is applied (an entry of this gateway proposed after the
    /// regain is): if no departure of this host is among it, its own
    /// frames kept meanwhile are written in the view they were sent in.
    pub(crate) fn own_known(&mut self) {
        if !self.departed.contains_key(&self.me) {
            self.own_waits = false;
        }
    }

    /// The id of the view installed (written) last.
    pub(crate) fn installed(&self) -> u64 {
        self.installed
    }

    /// The id of the first view or barrier waiting for its flushes.
    pub(crate) fn first_pending(&self) -> Option<u64> {
        self.pending.front().map(|p| p.id)
    }

    /// The id of the last view or barrier registered: what a frame sent
    /// now is tagged with.
    pub(crate) fn sending_view(&self) -> u64 {
        self.pending.back().map_or(self.installed, |p| p.id)
    }

    /// Whether this gateway's own `Start` is applied (it flushes views
    /// from then on, and the others count on it).
    pub(crate) fn is_live(&self) -> bool {
        self.live.contains(&self.me)
    }

    /// Host `host`'s gateway started with `epoch` (its `Start` applied).
    pub(crate) fn started(&mut self, host: u64, epoch: u64) {
        if host == self.me && epoch != self.epoch {
            // An earlier run's Start, replayed: that run is gone.
            return;
        }
        self.live.insert(host);
        if host != self.me && self.origins.get(&host).is_some_and(|o| o.epoch != epoch && !o.frozen) {
            self.origins.remove(&host);
        }
    }

    /// Host `host`'s node was taken down at entry `index`.
    pub(crate) fn node_down(&mut self, host: u64, index: u64) {
        if !self.live.remove(&host) || self.departed.contains_key(&host) {
            return;
        }
        let id = index.saturating_mul(256).saturating_add(BARRIER_RANK);
        self.departed.insert(host, id);
        if let Some(o) = self.origins.get_mut(&host) {
            o.frozen = host != self.me;
        }
        let mut required = self.live.clone();
        required.insert(host);
        self.register(Pending { id, frame: None, required });
    }

    /// Host `host`'s node is up again (the same run): it flushes the
    /// views from now on, and its links restart. A departed origin's
    /// frames stay frozen until its barrier is installed (its new link is
    /// refused until then: the sender sends again).
    pub(crate) fn node_up(&mut self, host: u64) {
        self.live.insert(host);
        if !self.departed.contains_key(&host) {
            if let Some(o) = self.origins.get_mut(&host) {
                o.frozen = false;
            }
        }
    }

    /// A committed view of the group (`id`: its view id, `frame`: its
    /// encoded frame), to write once flushed.
    pub(crate) fn view(&mut self, id: u64, frame: Vec<u8>) {
        let mut required = self.live.clone();
        // Down at this very entry, after this view: still owes it.
        required.extend(self.departed.iter().filter(|(_, b)| **b >= id).map(|(h, _)| *h));
        self.register(Pending { id, frame: Some(frame), required });
    }

    /// Queues `p` in id order (a barrier is registered as its node's
    /// down applies, possibly before the group's views of the same entry).
    fn register(&mut self, p: Pending) {
        if p.id <= self.installed || self.pending.iter().any(|q| q.id == p.id) {
            tracing::warn!(view = p.id, "a group view not after the installed one: skipped");
            return;
        }
        let at = self.pending.iter().position(|q| q.id > p.id).unwrap_or(self.pending.len());
        self.pending.insert(at, p);
    }

    /// This gateway's flush of view `view`: its own frames up to `upto`,
    /// sent on `links`.
    pub(crate) fn own_flush(&self, view: u64, upto: u64, links: Vec<(u64, u64, u64)>) -> Flush {
        let got =
            self.origins.iter().filter(|(h, _)| **h != self.me).map(|(h, o)| (*h, o.have)).take(MAX_HOSTS).collect();
        Flush { view, host: self.me, epoch: self.epoch, upto, links, got }
    }

    /// A committed flush. Kept only for a pending view, once per host.
    pub(crate) fn flush(&mut self, f: Flush) -> bool {
        if !self.pending.iter().any(|p| p.id == f.view && p.required.contains(&f.host)) {
            return false;
        }
        if f.links.len() > MAX_HOSTS || f.got.len() > MAX_HOSTS {
            return false;
        }
        self.flushes.entry((f.view, f.host)).or_insert(f);
        true
    }

    /// A link from `origin` (its gateway's `epoch`) starting at `start`:
    /// what it sends next is expected from `start` on. Returns false if
    /// the link is refused (an older one, or a departed origin).
    pub(crate) fn link(&mut self, origin: u64, epoch: u64, start: u64) -> bool {
        if origin == self.me || start == 0 {
            return false;
        }
        match self.origins.get_mut(&origin) {
            Some(o) if o.epoch == epoch => {
                if start == o.start {
                    true
                } else if o.frozen || start <= o.have {
                    // An older link's straggler, or a departed origin.
                    false
                } else {
                    // The same run's link restarted (after a node up):
                    // what it sent meanwhile was not for this host.
                    o.start = start;
                    o.have = start - 1;
                    true
                }
            }
            Some(o) if o.frozen => false,
            _ => {
                self.origins.insert(origin, Origin { epoch, start, have: start - 1, ..Origin::default() });
                true
            }
        }
    }

    /// The last seq held from `origin` (what a link acknowledges).
    pub(crate) fn have(&self, origin: u64) -> u64 {
        self.origins.get(&origin).map_or(0, |o| o.have)
    }

    /// A frame that arrived on `origin`'s link (epoch checked by the
    /// link); taken only if it is the next one. Returns whether taken.
    pub(crate) fn arrived(&mut self, f: Frame) -> bool {
        let me = self.me;
        match self.origins.get_mut(&f.origin) {
            Some(o) if f.origin != me && !o.frozen => Self::take(o, f),
            _ => false,
        }
    }

    /// One of this gateway's own frames (its next origin seq).
    pub(crate) fn own(&mut self, f: Frame) -> bool {
        match self.origins.get_mut(&self.me) {
            Some(o) if f.origin == self.me => Self::take(o, f),
            _ => false,
        }
    }

    /// A departed origin's frame another survivor put in the log.
    pub(crate) fn resent(&mut self, epoch: u64, f: Frame) -> bool {
        match self.origins.get_mut(&f.origin) {
            Some(o) if o.frozen && o.epoch == epoch => Self::take(o, f),
            _ => false,
        }
    }

    fn take(o: &mut Origin, f: Frame) -> bool {
        if f.seq != o.have.wrapping_add(1) || o.queue.len() >= MAX_QUEUE {
            return false;
        }
        o.have = f.seq;
        o.queue.push_back(f);
        true
    }

    /// `origin` says every host it relays to holds its frames up to
    /// `upto`: they need not be kept for a cut.
    pub(crate) fn stable(&mut self, origin: u64, upto: u64) {
        if let Some(o) = self.origins.get_mut(&origin) {
            while o.kept.front().is_some_and(|f| f.seq <= upto) {
                o.kept.pop_front();
            }
        }
    }

    /// Whether an origin's queue is full (its link should stop taking).
    pub(crate) fn is_full(&self, origin: u64) -> bool {
        self.origins.get(&origin).is_some_and(|o| o.queue.len() >= MAX_QUEUE)
    }

    /// The next local write, if any.
    pub(crate) fn next_write(&mut self) -> Option<Write> {
        self.writes.pop_front()
    }

    /// Moves what can be written to the writes, installing every view
    /// that is flushed. Bounded: each round installs a view or stops.
    pub(crate) fn step(&mut self) -> Step {
        let mut step = Step::default();
        if self.held {
            return step;
        }
        self.trim_own(&mut step);
        for _ in 0..=self.pending.len() {
            self.drain(&mut step);
            let Some(p) = self.pending.front() else { break };
            let ready = self.ready(p, &mut step);
            self.resent.extend(step.owed.drain(..));
            if !ready {
                break;
            }
            let Some(p) = self.pending.pop_front() else { break };
            for o in self.origins.values_mut() {
                while o.queue.front().is_some_and(|f| f.tag < p.id) {
                    o.queue.pop_front();
                    step.dropped += 1;
                }
            }
            if let Some(frame) = p.frame {
                self.writes.push_back(Write::View(frame));
            }
            self.installed = p.id;
            let gone: Vec<u64> = self.departed.iter().filter(|(_, b)| **b == p.id).map(|(h, _)| *h).collect();
            for h in gone {
                self.departed.remove(&h);
                if h != self.me {
                    // This host's own origin goes on (its node is up again).
                    self.origins.remove(&h);
                }
                self.resent.retain(|(o, _)| *o != h);
            }
            self.flushes.retain(|(v, _), _| *v > p.id);
        }
        step
    }

    /// This host's own departure (the majority took it down while it had
    /// lost the quorum): once every survivor's flush of its barrier is
    /// here, the frames it kept beyond the furthest survivor's point are
    /// dropped (no survivor delivers them: its members must not either),
    /// and the rest is written in the view they were sent in.
    fn trim_own(&mut self, step: &mut Step) {
        if !self.own_waits {
            return;
        }
        let Some(barrier) = self.departed.get(&self.me).copied() else { return };
        let Some(b) = self.pending.iter().find(|p| p.id == barrier) else { return };
        let mut cut = 0;
        for s in b.required.iter().filter(|s| **s != self.me && !self.departed.contains_key(s)) {
            let Some(f) = self.flushes.get(&(barrier, *s)) else { return };
            cut = cut.max(f.got.iter().find(|(o, _)| *o == self.me).map_or(0, |(_, g)| *g));
        }
        if let Some(o) = self.origins.get_mut(&self.me) {
            let before = o.queue.len();
            o.queue.retain(|f| f.seq <= cut);
            step.dropped += before - o.queue.len();
        }
        self.own_waits = false;
    }

    /// Writes every origin's frames of the installed view.
    fn drain(&mut self, step: &mut Step) {
        for (host, o) in &mut self.origins {
            if *host == self.me && self.own_waits {
                continue;
            }
            while let Some(f) = o.queue.front() {
                if f.tag > self.installed {
                    break;
                }
                let Some(f) = o.queue.pop_front() else { break };
                if f.tag < self.installed {
                    step.dropped += 1;
                    continue;
                }
                if *host != self.me {
                    if o.kept.len() >= MAX_QUEUE {
                        o.kept.pop_front();
                    }
                    o.kept.push_back(f.clone());
                }
                self.writes.push_back(Write::Frame(f));
            }
        }
    }

    /// Whether view `p` may be installed: every gateway it waits for
    /// flushed it (or, taken down, its cut is known) and this gateway
    /// holds their frames before it.
    fn ready(&self, p: &Pending, step: &mut Step) -> bool {
        if self.own_waits {
            // This host's kept frames go before the next view, or are cut.
            return false;
        }
        for host in &p.required {
            if *host == self.me {
                continue;
            }
            let origin = self.origins.get(host);
            if let Some(f) = self.flushes.get(&(p.id, *host)) {
                let to_me = f.links.iter().find(|(h, e, _)| *h == self.me && *e == self.epoch);
                if let Some((_, _, start)) = to_me {
                    if f.upto >= *start && !origin.is_some_and(|o| o.epoch == f.epoch && o.have >= f.upto) {
                        return false;
                    }
                }
                continue;
            }
            let Some(barrier) = self.departed.get(host).copied().filter(|b| *b >= p.id) else { return false };
            let Some(cut) = self.cut(*host, barrier, step) else { return false };
            if origin.is_some_and(|o| o.have < cut) {
                return false;
            }
        }
        true
    }

    /// The cut of departed `host`'s frames at `barrier`: the furthest any
    /// survivor got (`None` while a survivor's flush is missing). If this
    /// gateway is the survivor that holds it, the frames others lack go
    /// to `step.resend` (once).
    fn cut(&self, host: u64, barrier: u64, step: &mut Step) -> Option<u64> {
        let b = self.pending.iter().find(|p| p.id == barrier)?;
        let mine = self.origins.get(&host).map_or(0, |o| o.have);
        let (mut cut, mut holder, mut least) = (mine, self.me, mine);
        for s in b.required.iter().filter(|s| **s != host && **s != self.me && !self.departed.contains_key(s)) {
            let f = self.flushes.get(&(barrier, *s))?;
            let got = f.got.iter().find(|(o, _)| *o == host).map_or(0, |(_, g)| *g);
            if got > cut || (got == cut && *s < holder) {
                (cut, holder) = (got, *s);
            }
            least = least.min(got);
        }
        if holder == self.me && least < cut && !self.resent.contains(&(host, barrier)) {
            if let Some(o) = self.origins.get(&host) {
                let frames = o.kept.iter().chain(o.queue.iter()).filter(|f| f.seq > least && f.seq <= cut);
                step.resend.extend(frames.map(|f| (o.epoch, f.clone())));
            }
            step.owed.push((host, barrier));
        }
        Some(cut)
    }

    /// The barrier a departed host leaves at.
    pub(crate) fn departure(&self, host: u64) -> Option<u64> {
        self.departed.get(&host).copied()
    }

    /// The epoch of `origin`'s frames held here.
    #[cfg(test)]
    pub(crate) fn origin_epoch(&self, origin: u64) -> Option<u64> {
        self.origins.get(&origin).map(|o| o.epoch)
    }

    /// Views (and barriers) waiting for their flushes.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// What the next view waits for, said for the log: (view id, host,
    /// its flush, its departure barrier, the seq held of it).
    pub(crate) fn waiting(&self) -> Option<String> {
        let p = self.pending.front()?;
        if self.held || self.own_waits {
            let why = if self.held { "the quorum is lost" } else { "this host's kept frames" };
            return Some(format!("view {} waits: {why}", p.id));
        }
        let host = p.required.iter().find(|h| {
            **h != self.me
                && !self.ready(&Pending { id: p.id, frame: None, required: [**h].into() }, &mut Step::default())
        })?;
        let flush = self.flushes.get(&(p.id, *host)).map(|f| (f.upto, f.links.clone()));
        Some(format!(
            "view {} host {host} flush {flush:?} departed {:?} have {}",
            p.id,
            self.departed.get(host),
            self.have(*host)
        ))
    }
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
