//! The gateway's intake bound (`cluster.group_intake_bytes`), with a
//! gateway and a member in one process and the cluster played by the test:
//! a batch is formed as `propose` forms it and committed when the test
//! says so, so the cluster's pace is the test's.

use super::*;
use crate::group::{Event, GroupOptions, RecvError};
use crate::wait::Deadline;

/// The members' message bytes the gateway holds at most.
const INTAKE: usize = 2000;
/// Every member's message is this long: the bound holds 20 of them.
const LEN: usize = 100;
/// The cluster's largest message: a batch is at most half of it.
const RAFT_MESSAGE: usize = 2048;
/// A small log, so that a member fills it quickly.
const LOG: usize = 16 << 10;
/// Duty cycles a test runs at most before it calls it a wedge.
const CYCLES: usize = 20_000;

/// The cluster's log as one gateway's batches reach it: each command
/// committed at the next index, joins and leaves as views of the group.
struct Cluster {
    group: String,
    index: u64,
    members: Vec<NodeMember>,
    /// What a member must deliver, in the log's order: `view <n>` for a
    /// view of n members, `<host>/<member> #<i>` for message i.
    expected: Vec<String>,
}

impl Cluster {
    fn new(group: &str) -> Cluster {
        Cluster { group: group.into(), index: 100, members: Vec::new(), expected: Vec::new() }
    }

    fn commit(&mut self, x: &mut Crossing, commands: &[Command]) {
        for c in commands {
            self.index += 1;
            let applied = match c.clone() {
                Command::Join { host, member, .. } => {
                    let m = NodeMember { host, member };
                    self.members.push(m);
                    self.expected.push(format!("view {}", self.members.len()));
                    Applied::View {
                        group: self.group.clone(),
                        members: self.members.clone(),
                        reason: ViewReason::Join { member: m },
                    }
                }
                Command::Leave { host, member, .. } => {
                    let m = NodeMember { host, member };
                    self.members.retain(|o| *o != m);
                    self.expected.push(format!("view {}", self.members.len()));
                    Applied::View {
                        group: self.group.clone(),
                        members: self.members.clone(),
                        reason: ViewReason::Leave { member: m },
                    }
                }
                Command::Message { group, sender, seq, bytes } => {
                    if let Ok(Note::Message { member, bytes: b, .. }) = Note::decode(&bytes) {
                        self.expected.push(format!("{sender}/{member} #{}", index_of(&b)));
                    }
                    Applied::Message { group, sender, seq, bytes }
                }
                Command::NodeDown { .. } => panic!("a gateway proposes no node-down"),
            };
            x.committed(self.index, applied);
        }
    }

    /// Forms the gateway's next batch as `propose` does; it is in flight
    /// until [`commit_in_flight`](Self::commit_in_flight).
    fn propose(&mut self, x: &mut Crossing) -> bool {
        if x.in_flight.is_some() {
            return false;
        }
        match x.batch(RAFT_MESSAGE) {
            Some(batch) => {
                x.in_flight = Some(batch);
                true
            }
            None => false,
        }
    }

    /// Commits the batch in flight, if there is one.
    fn commit_in_flight(&mut self, x: &mut Crossing) -> bool {
        let Some(commands) = x.in_flight.as_ref().map(|f| f.commands.clone()) else { return false };
        self.commit(x, &commands);
        assert!(x.in_flight.is_none(), "the gateway saw its batch committed");
        true
    }

    /// Another host's member's message `i`, committed now.
    fn remote(&mut self, x: &mut Crossing, host: u64, member: u64, i: u32) {
        let note = Note::Message { member, seq: u64::from(i) + 1, sent_at: 0, bytes: payload(i) };
        let seq = self.index + 1;
        let c = Command::Message { group: self.group.clone(), sender: host, seq, bytes: note.encode() };
        self.commit(x, &[c]);
    }
}

fn payload(i: u32) -> Vec<u8> {
    let mut p = vec![0xa5; LEN];
    p[..4].copy_from_slice(&i.to_le_bytes());
    p
}

fn index_of(payload: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&payload[..4]);
    u32::from_le_bytes(w)
}

/// A gateway (host 1, intake `INTAKE`) and a member of a group with a
/// small log, the member seated and its join committed and delivered.
fn set_up(name: &str) -> (Crossing, GroupEnd, Cluster) {
    let opts = GroupOptions::new().log_capacity(LOG).max_message(256);
    let (mut x, mut member, _) = super::tests::seated(name, &opts, INTAKE);
    let mut cluster = Cluster::new(name);
    assert!(cluster.propose(&mut x));
    assert!(cluster.commit_in_flight(&mut x));
    assert_eq!(x.write_local(), 1, "the member's view");
    match member.recv(Deadline::Never).expect("view") {
        Event::View(v) => assert_eq!(v.members.len(), 1),
        _ => panic!("a view first"),
    }
    cluster.expected.clear();
    (x, member, cluster)
}

/// Multicasts the member's messages `*next..upto` without waiting while
/// the log has room; returns how many went.
fn send(member: &mut GroupEnd, next: &mut u32, upto: u32) -> usize {
    let mut n = 0;
    while *next < upto {
        match member.mcast(&payload(*next), Deadline::Now) {
            Ok(()) => {
                *next += 1;
                n += 1;
            }
            Err(McastError::WouldBlock) => break,
            Err(e) => panic!("mcast: {e}"),
        }
    }
    n
}

/// Delivers what the member has, as [`Cluster::expected`] writes it.
fn receive(member: &mut GroupEnd, got: &mut Vec<String>) -> usize {
    let mut n = 0;
    loop {
        match member.recv(Deadline::Now) {
            Ok(Event::Message(m)) => {
                let s = m.sender();
                got.push(format!("{}/{} #{}", s.host, s.id, index_of(m.payload().expect("in place"))));
            }
            Ok(Event::View(v)) => got.push(format!("view {}", v.members.len())),
            Ok(Event::Lost { count }) => panic!("lost {count} of a reliable group"),
            Err(RecvError::WouldBlock) => return n,
            Err(e) => panic!("recv: {e}"),
        }
        n += 1;
    }
}

/// A member that multicasts faster than the cluster commits: the gateway
/// takes its submits up to the bound and no further (the member's log
/// fills, its multicasts return WouldBlock), goes on once a batch commits,
/// and every message is delivered once, in order.
#[test]
fn a_fast_member_waits_at_the_intake_bound() {
    let (mut x, mut member, mut cluster) = set_up("xg-intake");
    let me = member.local_member().id;
    const N: u32 = 400;
    let mut next = 0;
    let mut got = Vec::new();

    // No commit yet: the gateway and the member go on until neither can.
    // (The member receives first: its own cursor must not be what holds
    // the log.)
    for _ in 0..CYCLES {
        let received = receive(&mut member, &mut got);
        let sent = send(&mut member, &mut next, N);
        let read = x.read_local();
        assert!(x.held().bytes <= INTAKE, "held {:?}", x.held());
        if received == 0 && sent == 0 && read == 0 {
            break;
        }
    }
    assert_eq!(x.held(), Held { frames: INTAKE / LEN, bytes: INTAKE / LEN * LEN }, "the gateway holds its bound");
    assert!(x.throttled(), "a submit waits in the log");
    assert!(next < N, "the member was made to wait");

    assert!(matches!(member.mcast(&payload(next), Deadline::Now), Err(McastError::WouldBlock)));
    assert_eq!(x.read_local(), 0, "at the bound nothing more is taken");
    // What `ringflow stat` shows of it.
    x.publish();
    let shown: Vec<u64> = (0..8).map(|i| x.slot.get(i)).collect();
    assert_eq!(shown, [20, 2000, INTAKE as u64, 1, 0, 0, 0, 20]);
    assert!(got.is_empty(), "nothing committed, nothing delivered");

    // One batch proposed, then committed: the gateway takes submits again.
    assert!(cluster.propose(&mut x));
    assert_eq!(x.read_local(), 0, "proposed is not committed: still held");
    assert!(cluster.commit_in_flight(&mut x));
    assert!(x.held().bytes < INTAKE);
    assert!(x.read_local() > 0, "room again after the commit");
    assert!(x.held().bytes <= INTAKE);

    // The rest at the cluster's pace: one batch committed every other
    // cycle, the member sending as fast as its log lets it.
    let mut throttled = 0;
    for cycle in 0..CYCLES {
        send(&mut member, &mut next, N);
        x.read_local();
        assert!(x.held().bytes <= INTAKE, "held {:?}", x.held());
        throttled += usize::from(x.throttled());
        if cycle % 2 == 0 {
            cluster.commit_in_flight(&mut x);
        }
        cluster.propose(&mut x);
        x.write_local();
        receive(&mut member, &mut got);
        if next == N && got.len() == N as usize {
            break;
        }
    }
    assert!(throttled > 0, "the bound was met again");
    let want: Vec<String> = (0..N).map(|i| format!("1/{me} #{i}")).collect();
    assert_eq!(got, want, "every message once, in order");
    assert_eq!(cluster.expected.iter().filter(|e| !e.starts_with("view")).count(), N as usize);
    assert_eq!(x.held(), Held::default());
}

/// No wedge: the log full of submits the gateway has not read (it is at
/// its bound) and committed frames of another host waiting for room (a
/// view among them). Neither the gateway's reads nor its writes can go on
/// until its batch commits, which needs nothing of the local log; then
/// everything flows, in the cluster's order.
#[test]
fn a_full_log_at_the_bound_does_not_wedge() {
    let (mut x, mut member, mut cluster) = set_up("xg-wedge");
    let me = member.local_member().id;
    let join = |member| Command::Join { group: "xg-wedge".into(), host: 2, member };
    cluster.commit(&mut x, &[join(7)]);
    const N: u32 = 300;
    const M: u32 = 60;
    let mut next = 0;
    let mut got = Vec::new();
    for _ in 0..CYCLES {
        let received = receive(&mut member, &mut got);
        let sent = send(&mut member, &mut next, N);
        let read = x.read_local();
        if received == 0 && sent == 0 && read == 0 && x.write_local() == 0 {
            break;
        }
    }
    assert!(x.throttled() && x.held().bytes <= INTAKE);
    assert!(matches!(member.mcast(&payload(next), Deadline::Now), Err(McastError::WouldBlock)), "the log is full");
    // Host 2's member's messages, a second member of it joining midway.
    for i in 0..M {
        if i == M / 2 {
            cluster.commit(&mut x, &[join(8)]);
        }
        cluster.remote(&mut x, 2, 7, i);
    }
    assert_eq!(x.write_local(), 0, "no room for what was committed");
    assert!(x.out_held().frames > M as usize, "the messages and the view wait");
    assert_eq!(x.read_local(), 0, "and the gateway reads nothing");
    assert!(matches!(member.mcast(&payload(next), Deadline::Now), Err(McastError::WouldBlock)));

    // The agent's duty cycle, the cluster committing each batch the cycle
    // after it is proposed.
    let mut cycles = 0;
    while cycles < CYCLES {
        cycles += 1;
        send(&mut member, &mut next, N);
        x.read_local();
        assert!(x.held().bytes <= INTAKE);
        cluster.commit_in_flight(&mut x);
        cluster.propose(&mut x);
        x.write_local();
        receive(&mut member, &mut got);
        if next == N && got.len() == cluster.expected.len() && x.held() == Held::default() {
            break;
        }
    }
    assert!(cycles < CYCLES, "wedged: got {} of {} items", got.len(), cluster.expected.len());
    assert_eq!(got, cluster.expected, "every item once, in the cluster's order");
    let own = got.iter().filter(|g| g.starts_with(&format!("1/{me} "))).count();
    let remote = got.iter().filter(|g| g.starts_with("2/7 ")).count();
    assert_eq!((own, remote), (N as usize, M as usize));
    assert!(got.contains(&"view 3".to_owned()), "host 2's second member's join");
    assert_eq!(x.out_held(), Held::default());
}

/// A quorum lost while the gateway is at its bound with a full log: the
/// members are refused (`NoQuorum`), so the gateway reads what the log
/// holds past its bound, and the view that tells them of the loss finds
/// room at once instead of waiting for the quorum.
#[test]
fn a_lost_quorum_lifts_the_bound_for_the_view() {
    let (mut x, mut member, mut cluster) = set_up("xg-intake-quorum");
    cluster.commit(&mut x, &[Command::Join { group: "xg-intake-quorum".into(), host: 2, member: 7 }]);
    let mut next = 0;
    let mut got = Vec::new();
    for _ in 0..CYCLES {
        let received = receive(&mut member, &mut got);
        let sent = send(&mut member, &mut next, 1000);
        let read = x.read_local();
        if received == 0 && sent == 0 && read == 0 && x.write_local() == 0 {
            break;
        }
    }
    assert!(x.throttled());
    assert!(matches!(member.mcast(&payload(next), Deadline::Now), Err(McastError::WouldBlock)), "the log is full");
    x.turn(quorum::Turn::Lost);
    assert_eq!(x.write_local(), 0, "no room for the quorum-lost view yet");
    assert!(x.read_local() > 0, "the gateway reads past its bound");
    assert!(x.write_local() > 0);
    receive(&mut member, &mut got);
    assert_eq!(got.last().map(String::as_str), Some("view 1"), "the quorum-lost view: this host's member alone");
    assert!(matches!(member.mcast(&payload(next), Deadline::Now), Err(McastError::NoQuorum)));
}
