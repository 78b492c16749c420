//! Cluster nodes in one thread over a simulated network, on a clock the
//! test advances: elections, one order for everyone's proposals, a lost
//! leader, a fresh follower catching up, a minority that cannot commit,
//! hostile bytes. Deterministic apart from raft's randomised election
//! timeouts, and fast: no real time passes.

use std::collections::{HashSet, VecDeque};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

#[derive(Default)]
pub(super) struct Net {
    pub(super) inbox: Vec<VecDeque<Vec<u8>>>,
    /// Directed links that drop everything.
    pub(super) cut: HashSet<(u64, u64)>,
    /// Safe messages delivered, by destination node id.
    pub(super) safe_to: Vec<usize>,
}

pub(super) struct SimTransport {
    id: u64,
    net: Arc<Mutex<Net>>,
}

impl Transport for SimTransport {
    fn send(&mut self, to: u64, message: Vec<u8>) {
        let mut net = self.net.lock().expect("net");
        if !net.cut.contains(&(self.id, to)) {
            if SafeMessage::decode(&message).is_some() {
                if let Some(count) = net.safe_to.get_mut(to as usize) {
                    *count += 1;
                }
            }
            if let Some(inbox) = net.inbox.get_mut(to as usize) {
                inbox.push_back(message);
            }
        }
    }

    fn try_recv(&mut self) -> Option<Vec<u8>> {
        self.net.lock().expect("net").inbox.get_mut(self.id as usize)?.pop_front()
    }
}

pub(super) struct Sim {
    pub(super) net: Arc<Mutex<Net>>,
    /// Index = node id (0 unused); `None`: killed.
    pub(super) nodes: Vec<Option<Node>>,
    pub(super) now: Instant,
    compact_after: u64,
    /// `ClusterSettings::compact_after_bytes` of the nodes made.
    pub(super) compact_after_bytes: usize,
}

pub(super) struct Node {
    pub(super) node: ClusterNode<SimTransport>,
    pub(super) handle: ClusterHandle,
    pub(super) committed: Receiver<Committed>,
    pub(super) seen: Vec<Committed>,
}

pub(super) const N: u64 = 3;
const TICK: Duration = Duration::from_millis(10);
/// Three times the longest election (10 ticks, randomised up to 20).
const NODE_TIMEOUT: Duration = Duration::from_millis(600);
/// A hang guard in simulated ticks (no real time): far past any election.
const MAX_STEPS: usize = 20_000;

impl Sim {
    pub(super) fn new(compact_after: u64) -> Sim {
        let net = Arc::new(Mutex::new(Net {
            inbox: vec![VecDeque::new(); N as usize + 1],
            cut: HashSet::new(),
            safe_to: vec![0; N as usize + 1],
        }));
        let mut sim = Sim {
            net,
            nodes: Vec::new(),
            now: Instant::now(),
            compact_after,
            compact_after_bytes: DEFAULT_COMPACT_AFTER_BYTES,
        };
        sim.nodes.push(None);
        for id in 1..=N {
            let node = sim.make(id);
            sim.nodes.push(Some(node));
        }
        sim
    }

    pub(super) fn make(&self, id: u64) -> Node {
        let mut settings = ClusterSettings::new(id, (1..=N).collect());
        settings.tick = TICK;
        settings.election_ticks = 10;
        settings.heartbeat_ticks = 2;
        settings.compact_after = self.compact_after;
        settings.compact_after_bytes = self.compact_after_bytes;
        settings.node_timeout = NODE_TIMEOUT;
        let transport = SimTransport { id, net: Arc::clone(&self.net) };
        let (node, handle, committed) = ClusterNode::new(settings, transport).expect("node");
        Node { node, handle, committed, seen: Vec::new() }
    }

    pub(super) fn step(&mut self) {
        self.now += TICK / 2;
        for node in self.nodes.iter_mut().flatten() {
            node.node.poll(self.now);
            node.seen.extend(node.committed.try_iter());
        }
    }

    pub(super) fn run_until(&mut self, what: &str, mut done: impl FnMut(&Sim) -> bool) {
        for _ in 0..MAX_STEPS {
            if done(self) {
                return;
            }
            self.step();
        }
        panic!("not reached in {MAX_STEPS} steps: {what}");
    }

    pub(super) fn live(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().flatten()
    }

    pub(super) fn node(&self, id: u64) -> &Node {
        self.nodes[id as usize].as_ref().expect("live node")
    }

    pub(super) fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes[id as usize].as_mut().expect("live node")
    }

    /// The leader every live node agrees on, if they do.
    pub(super) fn agreed_leader(&self) -> Option<u64> {
        let leaders: HashSet<u64> = self.live().map(|n| n.handle.status().leader).collect();
        let leader = *leaders.iter().next()?;
        (leaders.len() == 1 && leader != 0 && self.nodes[leader as usize].is_some()).then_some(leader)
    }

    pub(super) fn kill(&mut self, id: u64) {
        self.nodes[id as usize] = None;
        self.net.lock().expect("net").inbox[id as usize].clear();
    }

    /// Cuts every link between `side` and the other nodes, both ways.
    pub(super) fn partition(&mut self, side: &[u64]) {
        let mut net = self.net.lock().expect("net");
        for a in 1..=N {
            for b in 1..=N {
                if side.contains(&a) != side.contains(&b) {
                    net.cut.insert((a, b));
                }
            }
        }
    }

    pub(super) fn heal(&mut self) {
        self.net.lock().expect("net").cut.clear();
    }

    pub(super) fn messages(node: &Node) -> Vec<(u64, u64, u64)> {
        node.seen
            .iter()
            .filter_map(|c| match &c.applied {
                Applied::Message { sender, seq, .. } => Some((c.index, *sender, *seq)),
                Applied::View { .. } | Applied::Unchanged => None,
            })
            .collect()
    }
}

pub(super) fn message(sender: u64, seq: u64) -> Command {
    Command::Message { group: "g".into(), sender, seq, bytes: seq.to_le_bytes().to_vec() }
}

#[test]
fn three_nodes_agree_on_one_leader() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    sim.run_until("a leader every node knows", |s| s.agreed_leader().is_some());
    let leader = sim.agreed_leader().expect("leader");
    let term = sim.node(leader).handle.status().term;
    assert!(term >= 1);
    for node in sim.live() {
        let status = node.handle.status();
        assert_eq!((status.leader, status.term, status.voters.clone()), (leader, term, vec![1, 2, 3]));
    }
}

#[test]
fn proposals_from_every_node_commit_in_one_order_everywhere() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    sim.run_until("a leader", |s| s.agreed_leader().is_some());
    const EACH: u64 = 20;
    for seq in 1..=EACH {
        for id in 1..=N {
            sim.node(id).handle.propose(&[message(id * 100, seq)]).expect("queued");
        }
        sim.step();
    }
    let total = (EACH * N) as usize;
    sim.run_until("every message committed everywhere", |s| s.live().all(|n| Sim::messages(n).len() == total));
    let order = Sim::messages(sim.node(1));
    for id in 2..=N {
        assert_eq!(Sim::messages(sim.node(id)), order, "node {id} applied another order");
    }
    // Each sender's messages in its own order, none lost or repeated.
    for id in 1..=N {
        let seqs: Vec<u64> = order.iter().filter(|m| m.1 == id * 100).map(|m| m.2).collect();
        assert_eq!(seqs, (1..=EACH).collect::<Vec<_>>());
    }
    // Indexes increase: log order.
    assert!(order.windows(2).all(|w| w[0].0 <= w[1].0));
    let status = sim.node(1).handle.status();
    assert!(status.commit >= order.last().expect("some").0);
}

#[test]
fn losing_the_leader_elects_another_and_keeps_every_commit() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    sim.run_until("a leader", |s| s.agreed_leader().is_some());
    let first = sim.agreed_leader().expect("leader");
    let follower = (1..=N).find(|id| *id != first).expect("a follower");
    for seq in 1..=10 {
        sim.node(follower).handle.propose(&[message(7, seq)]).expect("queued");
    }
    sim.run_until("ten committed everywhere", |s| s.live().all(|n| Sim::messages(n).len() == 10));
    let before = Sim::messages(sim.node(follower));

    sim.kill(first);
    sim.run_until("a new leader among the survivors", |s| s.agreed_leader().is_some_and(|l| l != first));
    let second = sim.agreed_leader().expect("leader");
    assert!(sim.node(second).handle.status().term > 0);
    for seq in 11..=20 {
        sim.node(follower).handle.propose(&[message(7, seq)]).expect("queued");
    }
    sim.run_until("twenty committed at the survivors", |s| s.live().all(|n| Sim::messages(n).len() == 20));
    for node in sim.live() {
        let seen = Sim::messages(node);
        assert_eq!(&seen[..10], &before[..], "a committed message changed");
        assert_eq!(seen.iter().map(|m| m.2).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
    }
}

#[test]
fn a_fresh_follower_catches_up_from_a_snapshot() {
    // A small compaction threshold: the log the fresh node needs is gone,
    // so only a snapshot can bring it up to date.
    let mut sim = Sim::new(8);
    sim.run_until("a leader", |s| s.agreed_leader().is_some());
    let leader = sim.agreed_leader().expect("leader");
    let victim = (1..=N).find(|id| *id != leader).expect("a follower");
    for member in 1..=30 {
        let join = Command::Join { group: format!("g{}", member % 4), host: leader, member };
        sim.node(leader).handle.propose(&[join]).expect("queued");
        sim.step();
    }
    sim.run_until("thirty joins applied everywhere", |s| {
        s.live().all(|n| {
            n.node.directory().groups().filter(|(g, _)| *g != NODES_GROUP).map(|(_, c)| c).sum::<usize>() == 30
        })
    });
    assert!(sim.node(leader).handle.status().compacted_to > 0, "the leader never compacted");
    let log_len = sim.node(leader).handle.status().log_len;
    assert!(log_len <= 2 * 8 + 2, "the leader's log holds {log_len} entries");

    sim.kill(victim);
    let fresh = sim.make(victim);
    sim.nodes[victim as usize] = Some(fresh);
    let groups = |d: &Directory| (0..4).map(|g| d.members(&format!("g{g}"))).collect::<Vec<_>>();
    let expected = groups(sim.node(leader).node.directory());
    sim.run_until("the fresh node holds the directory", |s| groups(s.node(victim).node.directory()) == expected);
    // Its new run joined the nodes' group in place of the run before.
    let run = sim.node(victim).node.settings.incarnation;
    sim.run_until("the fresh run's join applied everywhere", |s| {
        s.live().all(|n| n.node.directory().has_node(victim, run))
    });
    assert!(sim.live().all(|n| n.node.directory().members(NODES_GROUP).len() == N as usize));
    // And it goes on with the others from there.
    sim.node(victim).handle.propose(&[Command::Join { group: "late".into(), host: victim, member: 99 }]).expect("q");
    sim.run_until("its own join applied everywhere", |s| {
        s.live().all(|n| n.node.directory().members("late").len() == 1)
    });
    assert_eq!(sim.node(victim).handle.directory().members("late").len(), 1);
}

#[test]
fn a_minority_cannot_commit_and_the_majority_goes_on() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    sim.run_until("a leader", |s| s.agreed_leader().is_some());
    let old = sim.agreed_leader().expect("leader");
    // The new leader's own (empty) entry committed everywhere: nothing is
    // in flight that could still commit on the minority side
    // (and every node's join of the nodes' group) applied everywhere.
    sim.run_until("the leader's log applied everywhere", |s| {
        let last = s.node(old).node.last_index();
        s.live()
            .all(|n| n.node.directory().members(NODES_GROUP).len() == N as usize && n.handle.status().applied == last)
    });
    // The leader alone on its side: a minority of one.
    sim.partition(&[old]);
    let commit_before = sim.node(old).handle.status().commit;
    sim.node(old).handle.propose(&[message(1, 1)]).expect("queued");
    let majority: Vec<u64> = (1..=N).filter(|id| *id != old).collect();
    sim.run_until("a leader on the majority side", |s| {
        let leaders: HashSet<u64> = majority.iter().map(|id| s.node(*id).handle.status().leader).collect();
        leaders.len() == 1 && !leaders.contains(&0) && !leaders.contains(&old)
    });
    sim.node(majority[0]).handle.propose(&[message(2, 1)]).expect("queued");
    sim.run_until("the majority commits", |s| majority.iter().all(|id| Sim::messages(s.node(*id)).len() == 1));
    // Many election timeouts later the minority still committed nothing.
    for _ in 0..200 {
        sim.step();
    }
    assert_eq!(sim.node(old).handle.status().commit, commit_before);
    assert!(Sim::messages(sim.node(old)).is_empty());
    // Healed: the old leader takes the majority's log; its own proposal,
    // never committed, is gone.
    sim.heal();
    sim.run_until("the old leader catches up", |s| Sim::messages(s.node(old)).len() == 1);
    for _ in 0..100 {
        sim.step();
    }
    for node in sim.live() {
        assert_eq!(Sim::messages(node).iter().map(|m| m.1).collect::<Vec<_>>(), vec![2]);
    }
}

#[test]
fn hostile_messages_are_counted_and_dropped() {
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    sim.run_until("a leader", |s| s.agreed_leader().is_some());
    let target = 1u64;
    {
        let mut net = sim.net.lock().expect("net");
        let inbox = &mut net.inbox[target as usize];
        let envelope = |body: Vec<u8>| {
            let mut bytes = vec![ENVELOPE_VERSION];
            bytes.extend_from_slice(&7u64.to_le_bytes());
            bytes.extend_from_slice(&body);
            bytes
        };
        // Not protobuf.
        inbox.push_back(envelope(vec![0xff; 64]));
        // Too short for an envelope; an unknown envelope version.
        inbox.push_back(vec![ENVELOPE_VERSION; 4]);
        inbox.push_back(vec![9; 64]);
        // Larger than the limit.
        inbox.push_back(vec![0; DEFAULT_MAX_MESSAGE_BYTES + 1]);
        // Well-formed, but from a node that is not a voter.
        let mut forged = raft::eraftpb::Message { from: 42, to: target, ..Default::default() };
        forged.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
        inbox.push_back(envelope(protobuf::Message::write_to_bytes(&forged).expect("encodes")));
        // Addressed to another node.
        forged.from = 2;
        forged.to = 3;
        inbox.push_back(envelope(protobuf::Message::write_to_bytes(&forged).expect("encodes")));
        // A message raft makes only for itself.
        forged.to = target;
        forged.set_msg_type(raft::eraftpb::MessageType::MsgHup);
        inbox.push_back(envelope(protobuf::Message::write_to_bytes(&forged).expect("encodes")));
    }
    sim.step();
    assert_eq!(sim.node(target).handle.status().bad_messages, 7);
    // The cluster goes on.
    sim.node(target).handle.propose(&[message(5, 1)]).expect("queued");
    sim.run_until("committed everywhere", |s| s.live().all(|n| Sim::messages(n).len() == 1));
}

#[test]
fn proposals_are_bounded_and_checked() {
    let mut settings = ClusterSettings::new(1, vec![1]);
    settings.proposal_queue = 1;
    settings.max_message_bytes = 64;
    let net = Arc::new(Mutex::new(Net { inbox: vec![VecDeque::new(); 2], cut: HashSet::new(), safe_to: vec![0; 2] }));
    let (mut node, handle, _committed) = ClusterNode::new(settings, SimTransport { id: 1, net }).expect("node");
    // Without a leader (none elected yet) nothing is taken.
    assert_eq!(handle.propose(&[message(1, 1)]), Err(ProposeError::NoQuorum));
    let mut now = Instant::now();
    for _ in 0..MAX_STEPS {
        if handle.has_quorum() {
            break;
        }
        now += TICK;
        node.poll(now);
    }
    assert!(handle.has_quorum(), "a node alone is its own majority");
    let big = Command::Message { group: "g".into(), sender: 1, seq: 1, bytes: vec![0; 100] };
    assert!(matches!(handle.propose(&[big]), Err(ProposeError::TooLarge { max: 64, .. })));
    handle.propose(&[message(1, 1)]).expect("queued");
    assert_eq!(handle.propose(&[message(1, 2)]), Err(ProposeError::Full));
    drop(node);
    assert_eq!(handle.propose(&[message(1, 3)]), Err(ProposeError::NodeGone));
    let bad = ClusterSettings::new(4, vec![1, 2, 3]);
    let net = Arc::new(Mutex::new(Net::default()));
    assert!(matches!(ClusterNode::new(bad, SimTransport { id: 4, net }), Err(NodeError::Config(_))));
}

#[test]
fn node_ids_agree_whatever_the_order() {
    let a: std::net::SocketAddr = "127.0.0.1:7001".parse().expect("addr");
    let b: std::net::SocketAddr = "127.0.0.1:7002".parse().expect("addr");
    let c: std::net::SocketAddr = "127.0.0.1:7003".parse().expect("addr");
    let (id_b, all) = node_ids(b, &[c, a, b]);
    assert_eq!(id_b, 2);
    assert_eq!(all, vec![(1, a), (2, b), (3, c)]);
    assert_eq!(node_ids(c, &[b, a]).1, all);
    assert_eq!(node_ids(a, &[c, b]).0, 1);
}

/// A message parsed in place keeps its buffer alive through its entries'
/// data: entries that are most of it share it, a small entry riding with
/// a large message gets a buffer of its own (it may be kept until the log
/// is compacted).
#[test]
fn small_entries_do_not_keep_a_large_received_buffer() {
    use raft::eraftpb::{Entry, Message};
    let received = bytes::Bytes::from(vec![7u8; 10_000]);
    let with = |range: std::ops::Range<usize>| {
        let mut m = Message::default();
        m.entries.push(Entry { data: received.slice(range), ..Default::default() });
        m
    };
    let mut most = with(0..9_000);
    node::unpin_small_entries(&mut most, received.len());
    assert!(!received.is_unique(), "an entry that is most of the buffer shares it");
    drop(most);
    assert!(received.is_unique());
    let mut small = with(100..110);
    node::unpin_small_entries(&mut small, received.len());
    assert!(received.is_unique(), "a small entry has a buffer of its own");
    assert_eq!(&small.entries[0].data[..], &[7u8; 10][..]);
}

/// Past `compact_after_bytes` of entries, a node drops only what every node
/// of the view holds: a follower cut off (not yet taken down) still finds
/// every entry it lacks in the leader's log once its link heals, and only
/// then does the leader compact, long before `compact_after` entries.
#[test]
fn compaction_by_bytes_waits_for_every_node_of_the_view() {
    const BYTES: usize = 64 << 10;
    let mut sim = Sim::new(DEFAULT_COMPACT_AFTER);
    sim.compact_after_bytes = BYTES;
    for id in 1..=N {
        let node = sim.make(id);
        sim.nodes[id as usize] = Some(node);
    }
    sim.run_until("a leader", |s| s.agreed_leader().is_some());
    let leader = sim.agreed_leader().expect("leader");
    let cut = (1..=N).find(|id| *id != leader).expect("a follower");
    sim.partition(&[cut]);
    // Few enough steps that the cut follower is not taken down first.
    const COUNT: usize = 24;
    let big = |seq: u64| Command::Message { group: "g".into(), sender: 9, seq, bytes: vec![seq as u8; 8 << 10] };
    for seq in 1..=COUNT as u64 {
        sim.node(leader).handle.propose(&[big(seq)]).expect("queued");
        sim.step();
    }
    sim.run_until("every message applied at the two connected nodes", |s| {
        s.live().filter(|n| n.handle.status().leader == leader).filter(|n| Sim::messages(n).len() == COUNT).count() == 2
    });
    let status = sim.node(leader).handle.status();
    assert!(
        status.compacted_to <= sim.node(leader).handle.safe_index(),
        "compacted to {} past the safe index {}",
        status.compacted_to,
        sim.node(leader).handle.safe_index()
    );
    sim.heal();
    sim.run_until("the cut follower has every message", |s| Sim::messages(s.node(cut)).len() == COUNT);
    assert_eq!(Sim::messages(sim.node(cut)), Sim::messages(sim.node(leader)), "from the log, not a snapshot");
    // Every node holds them now: the next entries let the leader compact.
    for seq in COUNT as u64 + 1..=COUNT as u64 + 8 {
        sim.node(leader).handle.propose(&[big(seq)]).expect("queued");
        sim.step();
    }
    sim.run_until("the leader compacted by bytes", |s| s.node(leader).handle.status().compacted_to > 0);
    let status = sim.node(leader).handle.status();
    assert!(status.log_len < COUNT as u64, "the leader still holds {} entries", status.log_len);
    assert!(status.compacted_to <= sim.node(leader).handle.safe_index());
    // The snapshot is the directory at its own index: a fresh node that
    // starts from it applies every message after it, none dropped as
    // already seen.
    let victim = (1..=N).find(|id| *id != leader && *id != cut).expect("the other follower");
    sim.kill(victim);
    let fresh = sim.make(victim);
    sim.nodes[victim as usize] = Some(fresh);
    let commit = sim.node(leader).handle.status().commit;
    sim.run_until("the fresh node caught up", |s| s.node(victim).handle.status().commit >= commit);
    let from = sim.node(victim).handle.status().compacted_to;
    assert!(from > 0, "the fresh node started from a snapshot");
    let after: Vec<_> = Sim::messages(sim.node(leader)).into_iter().filter(|m| m.0 > from).collect();
    sim.run_until("the fresh node applied what follows its snapshot", |s| {
        Sim::messages(s.node(victim)).len() >= after.len()
    });
    assert_eq!(Sim::messages(sim.node(victim)), after);
}
