//! The gateway's unit tests: a gateway and members in one process, the
//! cluster played by the test (hostile committed commands, SAFE holding,
//! the batch in flight).

use super::*;
use crate::group::{Event, GroupOptions};
use crate::wait::Deadline;

/// Reads the local log until the gateway saw member `me` join (it
/// queues its Join); a hang guard of 10 s.
pub(super) fn seat(x: &mut Crossing, me: u64) {
    for _ in 0..10_000 {
        x.read_local();
        if x.local.contains_key(&me) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(x.local.contains_key(&me), "the gateway never saw member {me} join");
}

/// A gateway (host 1, intake `intake`) and a member of group `name` made
/// with `opts`, the member seated at the gateway; the member's id. The
/// test's runtime directory is its own.
pub(super) fn seated(name: &str, opts: &GroupOptions, intake: usize) -> (Crossing, GroupEnd, u64) {
    ringflow_testkit::isolate_runtime_dir();
    let gw = GroupEnd::join_gateway(name, opts, 1, None, Deadline::Never).expect("gateway");
    let member = GroupEnd::join(name, opts, Deadline::Never).expect("member");
    let me = member.local_member().id;
    let mut x = Crossing::new(name.into(), gw, 1, false, intake);
    seat(&mut x, me);
    (x, member, me)
}

fn message(sender: u64, member: u64, bytes: Vec<u8>) -> Applied {
    let note = Note::Message { member, seq: 1, sent_at: 0, bytes };
    Applied::Message { group: "xg-hostile".into(), sender, seq: 1, bytes: note.encode() }
}

/// What other engines commit is input: garbage notes, origins out of
/// range, messages larger than the group allows and members of hosts
/// out of range are skipped; the member delivers only what is valid.
#[test]
fn hostile_commits_reach_no_member() {
    let opts = GroupOptions::new().max_message(64);
    let (mut x, mut member, me) = seated("xg-hostile", &opts, crate::config::DEFAULT_GROUP_INTAKE_BYTES);
    let node = |host, member| NodeMember { host, member };
    x.committed(
        5,
        Applied::View {
            group: "xg-hostile".into(),
            members: vec![node(1, me), node(1 << 20, 1), node(2, 1 << 50), node(2, 3)],
            reason: crate::cluster::ViewReason::Join { member: node(1, me) },
        },
    );
    // Garbage, two origins out of range, too large, valid, not a member.
    let hostile = |x: &mut Crossing, at: u64, valid: &[u8]| {
        x.committed(at, Applied::Message { group: "xg-hostile".into(), sender: 2, seq: at, bytes: vec![9; 40] });
        x.committed(at + 1, message(1 << 20, 1, b"far host".to_vec()));
        x.committed(at + 2, message(2, 1 << 50, b"far member".to_vec()));
        x.committed(at + 3, message(2, 3, vec![7; 65]));
        x.committed(at + 4, message(2, 3, valid.to_vec()));
        x.committed(at + 5, message(2, 4, b"not a member of the view".to_vec()));
    };
    hostile(&mut x, 6, b"valid");
    assert_eq!(x.out.len(), 2, "one view, one message");
    assert_eq!(x.write_local(), 2);
    match member.recv(Deadline::Never).expect("view") {
        Event::View(v) => {
            assert_eq!(v.members, vec![Member { id: me, pid: 0, host: 1 }, Member { id: 3, pid: 0, host: 2 }])
        }
        _ => panic!("a view first"),
    }
    match member.recv(Deadline::Never).expect("message") {
        Event::Message(m) => {
            assert_eq!(m.payload(), Some(&b"valid"[..]));
            assert_eq!((m.sender().host, m.sender().id), (2, 3));
        }
        _ => panic!("the valid message"),
    }
    assert!(matches!(member.recv(Deadline::Now), Err(crate::group::RecvError::WouldBlock)));
    // Again with nothing queued before them: each message is judged before
    // it is written at once, as it was before it was queued.
    hostile(&mut x, 12, b"valid again");
    assert_eq!(x.out.len(), 0, "written at once");
    x.write_local();
    match member.recv(Deadline::Never).expect("message") {
        Event::Message(m) => assert_eq!(m.payload(), Some(&b"valid again"[..])),
        _ => panic!("the valid message"),
    }
    assert!(matches!(member.recv(Deadline::Now), Err(crate::group::RecvError::WouldBlock)));
}

/// A SAFE group: what the cluster committed (a view, then messages)
/// reaches no member while the safe index is below its entry, and
/// reaches it, in the log's order, once the safe index does; an AGREED
/// group's is written at once (the hold is SAFE's alone).
#[test]
fn safe_entries_wait_for_the_safe_index() {
    let opts = GroupOptions::new().guarantee(Guarantee::Safe);
    let (mut x, mut member, me) = seated("xg-safe", &opts, crate::config::DEFAULT_GROUP_INTAKE_BYTES);
    assert!(x.safe);
    let node = |host, member| NodeMember { host, member };
    let view = || Applied::View {
        group: "xg-safe".into(),
        members: vec![node(1, me), node(2, 3)],
        reason: crate::cluster::ViewReason::Join { member: node(2, 3) },
    };
    x.committed(5, view());
    let msg = |text: &[u8]| {
        let note = Note::Message { member: 3, seq: 1, sent_at: 0, bytes: text.to_vec() };
        Applied::Message { group: "xg-safe".into(), sender: 2, seq: 1, bytes: note.encode() }
    };
    x.committed(6, msg(b"first"));
    x.committed(8, msg(b"second"));
    // Nothing is safe yet: nothing is written, the member sees nothing.
    assert_eq!(x.release(4), 0);
    assert_eq!(x.write_local(), 0);
    assert!(matches!(member.recv(Deadline::Now), Err(crate::group::RecvError::WouldBlock)));
    // Safe up to 6: the view and the first message, in order.
    assert_eq!(x.release(6), 2);
    assert_eq!(x.write_local(), 2);
    match member.recv(Deadline::Never).expect("view") {
        Event::View(v) => assert_eq!(v.members.len(), 2),
        _ => panic!("the view first"),
    }
    match member.recv(Deadline::Never).expect("first") {
        Event::Message(m) => assert_eq!(m.payload(), Some(&b"first"[..])),
        _ => panic!("the first message"),
    }
    // Index 7 safe (another group's entry): the second still waits.
    assert_eq!(x.release(7), 0);
    assert_eq!(x.write_local(), 0);
    assert!(matches!(member.recv(Deadline::Now), Err(crate::group::RecvError::WouldBlock)));
    assert_eq!(x.release(8), 1);
    // Written at once (nothing waited before it in `out`); the write of
    // the cycle wakes whoever sleeps.
    assert_eq!(x.out_held().frames, 0);
    assert_eq!(x.write_local(), 0);
    match member.recv(Deadline::Never).expect("second") {
        Event::Message(m) => assert_eq!(m.payload(), Some(&b"second"[..])),
        _ => panic!("the second message"),
    }
    assert!(x.held.is_empty());
}

/// The gateway's own batch counts as committed only once it is safe:
/// the next batch waits for the previous one's safety (what bounds the
/// held queue).
#[test]
fn a_safe_groups_batch_is_in_flight_until_safe() {
    ringflow_testkit::isolate_runtime_dir();
    let opts = GroupOptions::new().guarantee(Guarantee::Safe);
    let gw = GroupEnd::join_gateway("xg-safe-own", &opts, 1, None, Deadline::Never).expect("gateway");
    let mut x = Crossing::new("xg-safe-own".into(), gw, 1, false, crate::config::DEFAULT_GROUP_INTAKE_BYTES);
    x.seq = 41;
    x.in_flight = Some(InFlight {
        commands: Vec::new(),
        last_seq: 42,
        leader: (1, 1),
        at: Instant::now(),
        held: Held::default(),
    });
    let mark = Applied::Message { group: "xg-safe-own".into(), sender: 1, seq: 42, bytes: Note::Mark.encode() };
    x.committed(9, mark);
    assert!(x.in_flight.is_some(), "committed, not safe: still in flight");
    assert_eq!(x.release(9), 1);
    assert!(x.in_flight.is_none(), "safe: the next batch may go");
}

/// A committed message written at once (nothing waits in `out`) wakes a
/// member asleep on the log with the cycle's `write_local`, which wakes
/// once for everything the cycle wrote.
#[test]
fn a_message_written_at_once_wakes_a_sleeping_member() {
    let (mut x, mut member, me) = seated("xg-wake", &GroupOptions::new(), crate::config::DEFAULT_GROUP_INTAKE_BYTES);
    let node = |host, member| NodeMember { host, member };
    x.committed(
        5,
        Applied::View {
            group: "xg-wake".into(),
            members: vec![node(1, me), node(2, 3)],
            reason: crate::cluster::ViewReason::Join { member: node(2, 3) },
        },
    );
    assert_eq!(x.write_local(), 1);
    assert!(matches!(member.recv(Deadline::Never), Ok(Event::View(_))));
    let asleep = std::thread::spawn(move || {
        // Far longer than any wake: a missed wake ends the wait at its
        // deadline (whose last look finds the message).
        let wait = std::time::Duration::from_secs(30);
        let deadline = std::time::Instant::now() + wait;
        let got = match member.recv(Deadline::after(wait)) {
            Ok(Event::Message(m)) => m.payload().map(<[u8]>::to_vec),
            other => panic!("not the message: {:?}", other.map(|_| ())),
        };
        (got, std::time::Instant::now() < deadline)
    });
    // Give the member time to go to sleep (the test holds either way).
    std::thread::sleep(std::time::Duration::from_millis(200));
    let note = Note::Message { member: 3, seq: 1, sent_at: 0, bytes: b"wake".to_vec() };
    x.committed(6, Applied::Message { group: "xg-wake".into(), sender: 2, seq: 1, bytes: note.encode() });
    assert_eq!(x.out_held().frames, 0, "written at once");
    x.write_local();
    let (got, woken) = asleep.join().expect("member thread");
    assert_eq!(got, Some(b"wake".to_vec()));
    assert!(woken, "the member was never woken: it found the message at its deadline");
}
