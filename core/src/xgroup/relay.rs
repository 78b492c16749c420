//! The direct relay of a FIFO or UNORDERED group's frames between
//! gateways: a reliable, ordered stream from this host's gateway to each
//! other host's, over the cluster's links (`crate::cluster_port`'s relay
//! messages, beside raft's on the same `Cluster` frames).
//!
//! The carrier drops (bounded queues, a link down): each link numbers
//! frames with the origin's seq, the receiver acknowledges the last one it
//! took in order (cumulative), and the sender keeps what is not
//! acknowledged (at most [`WINDOW`] frames a link: past it the gateway
//! stops reading its members' frames, so a slow or cut link pushes back
//! on the senders) and sends it all again after [`RESEND_AFTER`] without
//! progress (go-back-N). A link cut shorter than the node timeout thus
//! resumes with nothing lost, duplicated or reordered; a longer one is
//! the cluster's `NodeDown`, and the survivors' cut (`sync.rs`).
//!
//! Why this and not a remote flow per host: a flow's resume is the same
//! machinery (seq, ack, replay from a buffer) plus a ring per peer and a
//! handshake; the relay already has the cluster's links and needs its
//! frames' view tags and origin seqs on the wire anyway. One message per
//! frame per peer; acks are one per origin per duty cycle.
//!
//! ```text
//! relay message: kind u8 (=RELAY_KIND) | type u8 | from u64 | from_epoch u64
//!                | to u64 | to_epoch u64 | group: len u16 + UTF-8
//!   type 1 data: start u64 | stable u64 | seq u64 | tag u64 | member u64
//!                | mseq u64 | sent_at u64 | len u32 | bytes
//!   type 2 ack:  start u64 | upto u64
//! ```
//!
//! `start` names the link (its first seq: a link restarts after a node
//! is up again); `stable` is the seq every host the origin relays to has
//! acknowledged (what receivers need not keep for a cut). Decoded as
//! hostile input: lengths checked, a bad message is `None`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster_port::RELAY_KIND;

use super::sync::Frame;

/// Frames a link keeps unacknowledged before the gateway stops reading.
pub(crate) const WINDOW: usize = 4096;
/// Unacknowledged frames are sent again after this long without progress.
pub(crate) const RESEND_AFTER: Duration = Duration::from_millis(50);
/// Frames sent again per link per duty cycle.
const RESEND_PER_CYCLE: usize = 512;

const TYPE_DATA: u8 = 1;
const TYPE_ACK: u8 = 2;

/// A relay message's addressing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) from: u64,
    pub(crate) from_epoch: u64,
    pub(crate) to: u64,
    pub(crate) to_epoch: u64,
    pub(crate) group: String,
}

/// A relay message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    Data { start: u64, stable: u64, frame: Frame },
    Ack { start: u64, upto: u64 },
}

/// Encodes a relay message.
pub(crate) fn encode(head: &Head, msg: &Msg) -> Vec<u8> {
    let extra = match msg {
        Msg::Data { frame, .. } => 60 + frame.bytes.len(),
        Msg::Ack { .. } => 16,
    };
    let mut out = Vec::with_capacity(36 + head.group.len() + extra);
    out.push(RELAY_KIND);
    out.push(if matches!(msg, Msg::Data { .. }) { TYPE_DATA } else { TYPE_ACK });
    for w in [head.from, head.from_epoch, head.to, head.to_epoch] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    let name = &head.group.as_bytes()[..head.group.len().min(crate::cluster::MAX_GROUP_NAME)];
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(name);
    match msg {
        Msg::Data { start, stable, frame } => {
            for w in [*start, *stable, frame.seq, frame.tag, frame.member, frame.mseq, frame.sent_at] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&(frame.bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&frame.bytes);
        }
        Msg::Ack { start, upto } => {
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&upto.to_le_bytes());
        }
    }
    out
}

/// The group a relay message names (to find its gateway), if it is one.
pub(crate) fn group_of(b: &[u8]) -> Option<&str> {
    let mut r = Reader(b);
    if r.take(1)? != [RELAY_KIND] {
        return None;
    }
    r.take(1 + 32)?;
    let len = r.u16()? as usize;
    std::str::from_utf8(r.take(len)?).ok()
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).and_then(|b| b.try_into().ok()).map(u16::from_le_bytes)
    }
}

/// Decodes a relay message (`None`: not one, or malformed); a data
/// message's bytes are at most `max_bytes`.
pub(crate) fn decode(b: &[u8], max_bytes: usize) -> Option<(Head, Msg)> {
    let mut r = Reader(b);
    if r.take(1)? != [RELAY_KIND] {
        return None;
    }
    let kind = r.take(1)?[0];
    let (from, from_epoch, to, to_epoch) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
    let len = r.u16()? as usize;
    if len > crate::cluster::MAX_GROUP_NAME {
        return None;
    }
    let group = std::str::from_utf8(r.take(len)?).ok()?.to_owned();
    let head = Head { from, from_epoch, to, to_epoch, group };
    let msg = match kind {
        TYPE_DATA => {
            let (start, stable, seq, tag, member, mseq, sent_at) =
                (r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?);
            let n = r.u32()? as usize;
            if n > max_bytes || r.0.len() != n {
                return None;
            }
            let frame = Frame { origin: from, seq, tag, member, mseq, sent_at, bytes: r.0.to_vec() };
            Msg::Data { start, stable, frame }
        }
        TYPE_ACK => {
            let m = Msg::Ack { start: r.u64()?, upto: r.u64()? };
            if !r.0.is_empty() {
                return None;
            }
            m
        }
        _ => return None,
    };
    Some((head, msg))
}

struct Link {
    epoch: u64,
    start: u64,
    /// Acknowledged up to.
    acked: u64,
    unacked: VecDeque<Arc<Frame>>,
    /// When it last sent or made progress.
    at: Instant,
}

/// This gateway's outgoing links of one group.
pub(crate) struct Links {
    me: u64,
    epoch: u64,
    group: String,
    /// The last origin seq given.
    seq: u64,
    links: BTreeMap<u64, Link>,
}

impl Links {
    pub(crate) fn new(me: u64, epoch: u64, group: String) -> Links {
        Links { me, epoch, group, seq: 0, links: BTreeMap::new() }
    }

    /// The next origin seq (given to a frame now).
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// The last origin seq given.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// A link to `host`'s gateway (run `epoch`) from the next frame on;
    /// replaces one to an earlier run, or restarts it (`restart`).
    pub(crate) fn add(&mut self, host: u64, epoch: u64, restart: bool) {
        if host == self.me || epoch == 0 {
            return;
        }
        if !restart && self.links.get(&host).is_some_and(|l| l.epoch == epoch) {
            return;
        }
        let start = self.seq + 1;
        self.links.insert(host, Link { epoch, start, acked: start - 1, unacked: VecDeque::new(), at: Instant::now() });
    }

    /// Restarts every link (this host is up again).
    pub(crate) fn restart_all(&mut self) {
        let hosts: Vec<(u64, u64)> = self.links.iter().map(|(h, l)| (*h, l.epoch)).collect();
        for (h, e) in hosts {
            self.add(h, e, true);
        }
    }

    /// Drops the link to `host` (its node is down).
    pub(crate) fn remove(&mut self, host: u64) {
        self.links.remove(&host);
    }

    /// The links as a flush lists them: (host, epoch, start).
    pub(crate) fn listed(&self) -> Vec<(u64, u64, u64)> {
        self.links.iter().map(|(h, l)| (*h, l.epoch, l.start)).collect()
    }

    /// Whether a link's window is full (stop reading members' frames).
    pub(crate) fn full(&self) -> bool {
        self.links.values().any(|l| l.unacked.len() >= WINDOW)
    }

    /// The seq every linked host acknowledged.
    pub(crate) fn stable(&self) -> u64 {
        self.links.values().map(|l| l.acked).min().unwrap_or(self.seq)
    }

    fn head(&self, to: u64, to_epoch: u64) -> Head {
        Head { from: self.me, from_epoch: self.epoch, to, to_epoch, group: self.group.clone() }
    }

    /// Sends `frame` (this host's, its seq from [`next_seq`]) on every
    /// link: `(host, message)` into `out`.
    pub(crate) fn send(&mut self, frame: Frame, out: &mut Vec<(u64, Vec<u8>)>) {
        let frame = Arc::new(frame);
        let stable = self.stable();
        let now = Instant::now();
        let hosts: Vec<u64> = self.links.keys().copied().collect();
        for host in hosts {
            let Some(l) = self.links.get_mut(&host) else { continue };
            if l.unacked.is_empty() {
                l.at = now;
            }
            l.unacked.push_back(Arc::clone(&frame));
            let (epoch, start) = (l.epoch, l.start);
            let msg = Msg::Data { start, stable, frame: (*frame).clone() };
            out.push((host, encode(&self.head(host, epoch), &msg)));
        }
    }

    /// An acknowledgement from `head.from`.
    pub(crate) fn acked(&mut self, head: &Head, start: u64, upto: u64) {
        if head.to != self.me || head.to_epoch != self.epoch {
            return;
        }
        let Some(l) = self.links.get_mut(&head.from) else { return };
        if l.epoch != head.from_epoch || l.start != start || upto <= l.acked || upto > self.seq {
            return;
        }
        l.acked = upto;
        while l.unacked.front().is_some_and(|f| f.seq <= upto) {
            l.unacked.pop_front();
        }
        l.at = Instant::now();
    }

    /// Sends again what waits unacknowledged past [`RESEND_AFTER`].
    /// Returns how many it sent.
    pub(crate) fn resend(&mut self, now: Instant, out: &mut Vec<(u64, Vec<u8>)>) -> usize {
        let stable = self.stable();
        let mut n = 0;
        let hosts: Vec<u64> = self.links.keys().copied().collect();
        for host in hosts {
            let Some(l) = self.links.get_mut(&host) else { continue };
            if l.unacked.is_empty() || now.duration_since(l.at) < RESEND_AFTER {
                continue;
            }
            l.at = now;
            let (epoch, start) = (l.epoch, l.start);
            let frames: Vec<Arc<Frame>> = l.unacked.iter().take(RESEND_PER_CYCLE).cloned().collect();
            for f in frames {
                let msg = Msg::Data { start, stable, frame: (*f).clone() };
                out.push((host, encode(&self.head(host, epoch), &msg)));
                n += 1;
            }
        }
        n
    }

    /// An acknowledgement of `origin`'s link (`start`) up to `upto`.
    pub(crate) fn ack(&self, origin: u64, origin_epoch: u64, start: u64, upto: u64) -> Vec<u8> {
        encode(&self.head(origin, origin_epoch), &Msg::Ack { start, upto })
    }

    /// This gateway's epoch.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64) -> Frame {
        Frame { origin: 1, seq, tag: 256, member: 3, mseq: seq, sent_at: 9, bytes: vec![seq as u8; 5] }
    }

    #[test]
    fn messages_round_trip_and_hostile_bytes_are_refused() {
        let head = Head { from: 1, from_epoch: 7, to: 2, to_epoch: 8, group: "xf".into() };
        let data = Msg::Data { start: 1, stable: 0, frame: frame(4) };
        let ack = Msg::Ack { start: 1, upto: 4 };
        for m in [&data, &ack] {
            let b = encode(&head, m);
            assert_eq!(decode(&b, 64), Some((head.clone(), m.clone())));
            for cut in 0..b.len() {
                assert_eq!(decode(&b[..cut], 64), None, "cut at {cut}");
            }
            let mut long = b.clone();
            long.push(0);
            assert_eq!(decode(&long, 64), None);
        }
        assert_eq!(decode(&encode(&head, &data), 4), None, "larger than the group allows");
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let good = encode(&head, &data);
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = good.clone();
            let at = (x as usize) % b.len();
            b[at] = (x >> 32) as u8;
            if let Some((h, m)) = decode(&b, 64) {
                assert_eq!(encode(&h, &m), b);
            }
        }
    }

    /// A link keeps what is not acknowledged, sends it again after the
    /// timeout, drops it once acknowledged, and ignores acks of another
    /// run, another link or seqs it never sent.
    #[test]
    fn links_resend_until_acknowledged() {
        let mut l = Links::new(1, 7, "xf".into());
        l.add(2, 8, false);
        let mut out = Vec::new();
        for _ in 0..3 {
            let seq = l.next_seq();
            l.send(frame(seq), &mut out);
        }
        assert_eq!(out.len(), 3);
        assert_eq!(l.listed(), vec![(2, 8, 1)]);
        out.clear();
        assert_eq!(l.resend(Instant::now(), &mut out), 0, "not yet");
        let later = Instant::now() + RESEND_AFTER;
        assert_eq!(l.resend(later, &mut out), 3);
        let from2 = |epoch| Head { from: 2, from_epoch: epoch, to: 1, to_epoch: 7, group: "xf".into() };
        l.acked(&from2(9), 1, 2);
        l.acked(&from2(8), 5, 2);
        l.acked(&from2(8), 1, 99);
        assert_eq!(l.stable(), 0, "no valid ack yet");
        l.acked(&from2(8), 1, 2);
        assert_eq!(l.stable(), 2);
        out.clear();
        assert_eq!(l.resend(later + RESEND_AFTER, &mut out), 1, "only the third again");
        let (_, Msg::Data { frame, stable, .. }) = decode(&out[0].1, 64).expect("data") else { panic!("data") };
        assert_eq!((frame.seq, stable), (3, 2));
        // A restart starts the link at the next seq.
        l.restart_all();
        assert_eq!(l.listed(), vec![(2, 8, 4)]);
    }
}
