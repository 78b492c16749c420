//! A lost quorum at a FIFO group's gateway (direct relay) and at an
//! engine that never had the quorum, as the members see it: nothing of
//! another host is delivered in a view of this host alone, what is kept
//! is delivered after the regain as the majority delivered it.

use super::*;
use crate::cluster::{Applied, Member as NodeMember, ViewReason};
use crate::group::{Event, GroupEnd, GroupOptions, Guarantee, McastError, RecvError};
use crate::wait::Deadline;
use crate::xgroup::crossing::Crossing;
use crate::xgroup::note::Note;
use crate::xgroup::sync::{Flush, Frame};

const E2: u64 = 22;
/// A sequence number above any this test's gateway gives (its probe).
const LATER: u64 = 1 << 60;

fn note(group: &str, sender: u64, seq: u64, note: Note) -> Applied {
    Applied::Message { group: group.into(), sender, seq, bytes: note.encode() }
}

/// An event as a short string: `v[host/id ...]` with its changes'
/// kinds, or the message's payload.
fn event(e: Event<'_>) -> String {
    match e {
        Event::View(v) => {
            let members: Vec<String> = v.members.iter().map(|m| format!("{}/{}", m.host, m.id)).collect();
            let changes: Vec<String> =
                v.changes.iter().map(|c| format!("{:?} {}/{}", c.kind, c.member.host, c.member.id)).collect();
            format!("v[{}] ({})", members.join(" "), changes.join(", "))
        }
        Event::Message(m) => String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
        _ => "other".into(),
    }
}

/// Everything the member can deliver now.
fn drain(member: &mut GroupEnd) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match member.recv(Deadline::Now) {
            Ok(e) => out.push(event(e)),
            Err(RecvError::WouldBlock) => return out,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// Host 1's gateway of FIFO group `name` and a member of it; both
/// gateways (hosts 1 and 2) started, and the view of entry 5 (the
/// member, host 2's member 3) installed with host 2's flush.
fn fifo(name: &str) -> (Crossing, GroupEnd, u64) {
    ringflow_testkit::isolate_runtime_dir();
    let opts = GroupOptions::new().guarantee(Guarantee::Fifo);
    let gw = GroupEnd::join_gateway(name, &opts, 1, None, Deadline::Never).expect("gateway");
    let member = GroupEnd::join(name, &opts, Deadline::Never).expect("member");
    let me = member.local_member().id;
    let mut x = Crossing::new(name.into(), gw, 1, true, crate::config::DEFAULT_GROUP_INTAKE_BYTES);
    let e1 = x.direct.as_ref().expect("a direct group").epoch();
    x.committed(2, note(name, 1, 1, Note::Start { epoch: e1 }));
    x.committed(3, note(name, 2, 1, Note::Start { epoch: E2 }));
    let node = |host, member| NodeMember { host, member };
    let members = vec![node(1, me), node(2, 3)];
    x.committed(5, Applied::View { group: name.into(), members, reason: ViewReason::Join { member: node(2, 3) } });
    let f = Flush { view: 5 * 256, host: 2, epoch: E2, upto: 0, links: vec![(1, e1, 1)], got: vec![] };
    x.committed(6, note(name, 2, 2, Note::Flush(f)));
    x.direct_cycle();
    let d = x.direct.as_mut().expect("direct");
    assert_eq!(d.sync.installed(), 5 * 256);
    assert!(d.sync.link(2, E2, 1));
    x.write_local();
    let mut member = member;
    assert_eq!(drain(&mut member), vec![format!("v[1/{me} 2/3] (Joined 1/{me}, Joined 2/3)")], "the view of entry 5");
    (x, member, me)
}

/// A frame of host 2's member 3, sent in the view of entry 5.
fn from_two(seq: u64, text: &str) -> Frame {
    Frame { origin: 2, seq, tag: 5 * 256, member: 3, mseq: seq, sent_at: 0, bytes: text.as_bytes().to_vec() }
}

/// Reads the member's submits until the gateway took `n` of them (a hang
/// guard of 10 s).
fn take_submits(x: &mut Crossing, n: u64) {
    for _ in 0..10_000 {
        x.read_local();
        if x.direct.as_ref().is_some_and(|d| d.counts.relayed >= n) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("the gateway never read {n} submits");
}

/// A FIFO group on the minority side, not taken down: a frame of another
/// host that arrives after the quorum-lost view waits (its sender is not
/// in that view), and so does the member's own frame the gateway read
/// after the loss; on the regain the other host's frame is delivered
/// after the regained view, the own one once the gateway's probe entry
/// shows the majority did not take the node down.
#[test]
fn a_direct_group_holds_what_arrives_while_the_quorum_is_lost() {
    let (mut x, mut member, me) = fifo("xf-held");
    let d = x.direct.as_mut().expect("direct");
    assert!(d.sync.arrived(from_two(1, "b1")));
    member.mcast(b"m1", Deadline::Now).expect("m1");
    take_submits(&mut x, 1);
    x.direct_cycle();
    // Sent before the loss, not read by the gateway yet.
    member.mcast(b"m2", Deadline::Now).expect("m2");
    x.turn(Turn::Lost);
    take_submits(&mut x, 2);
    assert!(x.direct.as_mut().expect("direct").sync.arrived(from_two(2, "b2")));
    assert_eq!(x.direct_cycle(), 0, "nothing written while the quorum is lost");
    x.write_local();
    let lost = format!("v[1/{me}] (QuorumLost 2/3)");
    assert_eq!(drain(&mut member), vec!["m1".to_owned(), "b1".into(), lost]);
    assert!(matches!(member.mcast(b"no", Deadline::Now), Err(McastError::NoQuorum)));

    x.turn(Turn::Regained);
    x.direct_cycle();
    x.write_local();
    let back = format!("v[1/{me} 2/3] (QuorumRegained 2/3)");
    assert_eq!(drain(&mut member), vec![back, "b2".into()], "the own frame waits for the probe");
    // The probe (the Mark the regain queued) is applied: nothing of a
    // node-down came before it.
    x.committed(9, note("xf-held", 1, LATER, Note::Mark));
    x.direct_cycle();
    x.write_local();
    assert_eq!(drain(&mut member), vec!["m2".to_owned()]);
    member.mcast(b"m3", Deadline::Now).expect("a multicast with the quorum back");
}

/// A FIFO group on the minority side that the majority took down
/// meanwhile: after the regain its members deliver the node-down view
/// the majority delivered, and of their own frames kept through the loss
/// only those the survivors got (the cut: host 2 got up to seq 2); the
/// one beyond it, which no survivor delivers, is dropped.
#[test]
fn a_direct_group_taken_down_meanwhile_delivers_its_own_frames_up_to_the_cut() {
    let (mut x, mut member, me) = fifo("xf-down");
    member.mcast(b"m1", Deadline::Now).expect("m1");
    take_submits(&mut x, 1);
    x.direct_cycle();
    member.mcast(b"m2", Deadline::Now).expect("m2");
    member.mcast(b"m3", Deadline::Now).expect("m3");
    x.turn(Turn::Lost);
    take_submits(&mut x, 3);
    x.direct_cycle();
    x.write_local();
    let lost = format!("v[1/{me}] (QuorumLost 2/3)");
    assert_eq!(drain(&mut member), vec!["m1".to_owned(), lost]);

    x.turn(Turn::Regained);
    // The catch-up: host 1 taken down at entry 9, host 2's flushes of the
    // view and of the barrier (it got host 1's frames up to 2), then the
    // probe.
    let name = "xf-down";
    let members = vec![NodeMember { host: 2, member: 3 }];
    x.committed(9, Applied::View { group: name.into(), members, reason: ViewReason::NodeDown { host: 1 } });
    x.direct_cycle();
    x.write_local();
    let back = format!("v[1/{me} 2/3] (QuorumRegained 2/3)");
    assert_eq!(drain(&mut member), vec![back], "the own frames wait for the survivors' cut");
    for view in [9 * 256, 9 * 256 + 255] {
        let f = Flush { view, host: 2, epoch: E2, upto: 0, links: vec![], got: vec![(1, 2)] };
        x.committed(10, note(name, 2, 3, Note::Flush(f)));
    }
    // Its own departure known, the cut needs no probe.
    x.direct_cycle();
    x.write_local();
    assert_eq!(drain(&mut member), vec!["m2".to_owned(), format!("v[2/3] (NodeDown 1/{me})")]);
    x.committed(11, note(name, 1, LATER, Note::Mark));
    x.direct_cycle();
    x.write_local();
    assert_eq!(drain(&mut member), Vec::<String>::new(), "m3 never");
    let d = x.direct.as_ref().expect("direct");
    assert_eq!(d.sync.pending(), 0, "the node-down view and its barrier installed");
    assert!(d.counts.dropped >= 1, "m3 dropped");
}

/// An engine that never had the quorum: once the bound passes its
/// members get a view of their own host (each a change of kind
/// `QuorumLost`) and `NoQuorum` on multicast; a member joining then is
/// told the same way; on the regain, a view of kind `QuorumRegained`.
/// For an AGREED group and a FIFO one (whose relay never started).
#[test]
fn members_of_an_engine_that_never_had_the_quorum_are_told() {
    for (name, guarantee, relay) in [("xg-never", Guarantee::Agreed, false), ("xf-never", Guarantee::Fifo, true)] {
        ringflow_testkit::isolate_runtime_dir();
        let opts = GroupOptions::new().guarantee(guarantee);
        let gw = GroupEnd::join_gateway(name, &opts, 1, None, Deadline::Never).expect("gateway");
        let mut a = GroupEnd::join(name, &opts, Deadline::Never).expect("member a");
        let ida = a.local_member().id;
        let mut x = Crossing::new(name.into(), gw, 1, relay, crate::config::DEFAULT_GROUP_INTAKE_BYTES);
        x.read_local();
        let mut watch = QuorumWatch::new(std::time::Duration::from_millis(100));
        let t0 = std::time::Instant::now();
        assert_eq!(watch.check(false, t0), None);
        let turn = watch.check(false, t0 + std::time::Duration::from_millis(100)).expect("a loss");
        x.turn(turn);
        // A FIFO group's gateway reads the keeper's views only now (its
        // relay never started): the members are told on that read.
        x.read_local();
        x.write_local();
        assert_eq!(drain(&mut a), vec![format!("v[1/{ida}] (QuorumLost 1/{ida})")], "{name}");
        assert!(matches!(a.mcast(b"no", Deadline::Now), Err(McastError::NoQuorum)), "{name}");

        let mut b = GroupEnd::join(name, &opts, Deadline::Never).expect("member b");
        let idb = b.local_member().id;
        for _ in 0..10_000 {
            x.read_local();
            if x.out_held().frames > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        x.write_local();
        let both = format!("v[1/{ida} 1/{idb}] (QuorumLost 1/{idb})");
        assert_eq!(drain(&mut a), vec![both.clone()], "{name}");
        assert_eq!(drain(&mut b), vec![both], "{name}: its first view");
        assert!(matches!(b.mcast(b"no", Deadline::Now), Err(McastError::NoQuorum)), "{name}");

        x.turn(watch.check(true, t0 + std::time::Duration::from_millis(200)).expect("a regain"));
        x.write_local();
        let back = format!("v[1/{ida} 1/{idb}] (QuorumRegained 1/{ida}, QuorumRegained 1/{idb})");
        assert_eq!(drain(&mut a), vec![back.clone()], "{name}");
        assert_eq!(drain(&mut b), vec![back], "{name}");
    }
}
