//! Groups within one process: joins and their views, multicast in its three
//! forms, every member receiving every message (its own too) in one order,
//! leave and drop, refusals.

use std::time::Duration;

use ringflow_api::{ChangeKind, Event, Group, GroupOptions, GroupRecvError, Guarantee, JoinError, SlowMember};

fn opts() -> GroupOptions {
    GroupOptions::new().log_capacity(1 << 16).max_message(4096).max_members(8).spin(Duration::ZERO)
}

/// The next event, or a panic after a long hang guard.
fn next(g: &mut Group) -> Owned {
    match g.recv_timeout(Duration::from_secs(20)).expect("event") {
        Event::Message(mut m) => {
            let mut b = vec![0; m.len()];
            m.read_into(&mut b).expect("copy");
            Owned::Msg(m.sender().id, b)
        }
        Event::View(v) => Owned::View(
            v.id,
            v.members.iter().map(|m| m.id).collect(),
            v.changes.iter().map(|c| (c.member.id, c.kind)).collect(),
        ),
        Event::Lost { count } => Owned::Lost(count),
    }
}

#[derive(Debug, PartialEq, Eq, Clone)]
enum Owned {
    Msg(u64, Vec<u8>),
    View(u64, Vec<u64>, Vec<(u64, ChangeKind)>),
    Lost(u64),
}

#[test]
fn members_see_joins_messages_and_leaves_in_one_order() {
    ringflow_testkit::isolate_runtime_dir();
    let mut a = Group::join("g-order", &opts()).expect("create");
    let ida = a.local_member().id;
    assert_eq!(next(&mut a), Owned::View(1, vec![ida], vec![(ida, ChangeKind::Joined)]));
    let mut b = Group::join("g-order", &opts()).expect("join");
    let idb = b.local_member().id;
    assert_ne!(ida, idb);
    // b's first event is its own join; it never sees what came before.
    assert_eq!(next(&mut b), Owned::View(2, vec![ida, idb], vec![(idb, ChangeKind::Joined)]));
    assert_eq!(next(&mut a), Owned::View(2, vec![ida, idb], vec![(idb, ChangeKind::Joined)]));
    a.mcast(b"one").unwrap();
    b.mcast_gather(&[b"tw", b"o"]).unwrap();
    let mut loan = a.loan(5).unwrap();
    loan.write(0, b"three");
    loan.send().unwrap();
    let aborted = b.loan(3).unwrap();
    drop(aborted);
    for g in [&mut a, &mut b] {
        assert_eq!(next(g), Owned::Msg(ida, b"one".to_vec()));
        assert_eq!(next(g), Owned::Msg(idb, b"two".to_vec()));
        assert_eq!(next(g), Owned::Msg(ida, b"three".to_vec()));
        assert!(matches!(g.try_recv(), Err(GroupRecvError::WouldBlock)));
    }
    assert_eq!(a.members().len(), 2);
    b.leave().expect("leave");
    assert_eq!(next(&mut a), Owned::View(3, vec![ida], vec![(idb, ChangeKind::Left)]));
    // A later joiner gets the next id and a view of its own.
    let mut c = Group::join("g-order", &opts()).expect("join again");
    let idc = c.local_member().id;
    assert_eq!(next(&mut c), Owned::View(4, vec![ida, idc], vec![(idc, ChangeKind::Joined)]));
    drop(c);
    assert_eq!(next(&mut a), Owned::View(4, vec![ida, idc], vec![(idc, ChangeKind::Joined)]));
    assert_eq!(next(&mut a), Owned::View(5, vec![ida], vec![(idc, ChangeKind::Left)]));
    a.leave().expect("last leave");
    // The last member's going removes the name's socket, lock and presence
    // files: nothing of the group is left in the runtime directory.
    let left: Vec<_> = std::fs::read_dir(ringflow_testkit::isolate_runtime_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter(|n| n.to_string_lossy().starts_with("g-order"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn the_keeper_role_moves_when_the_creator_leaves() {
    ringflow_testkit::isolate_runtime_dir();
    let mut a = Group::join("g-move", &opts()).unwrap();
    let mut b = Group::join("g-move", &opts()).unwrap();
    let ida = a.local_member().id;
    next(&mut a);
    next(&mut b);
    next(&mut a);
    a.leave().unwrap();
    assert_eq!(next(&mut b).clone(), Owned::View(3, vec![b.local_member().id], vec![(ida, ChangeKind::Left)]));
    // b keeps the group now: a new member can join and talk.
    let mut c = Group::join("g-move", &opts()).expect("join after takeover");
    assert!(matches!(next(&mut c), Owned::View(4, _, _)));
    c.mcast(b"hi").unwrap();
    assert!(matches!(next(&mut b), Owned::View(4, _, _)));
    assert_eq!(next(&mut b), Owned::Msg(c.local_member().id, b"hi".to_vec()));
}

#[test]
fn joins_with_other_guarantees_or_policies_are_refused() {
    ringflow_testkit::isolate_runtime_dir();
    let _a = Group::join("g-opts", &opts()).unwrap();
    let e = Group::join("g-opts", &opts().guarantee(Guarantee::Safe)).err().expect("refused");
    assert!(matches!(e, JoinError::OptionsDiffer { what: "guarantee" }), "{e}");
    let e = Group::join("g-opts", &opts().slow_member(SlowMember::Lap)).err().expect("refused");
    assert!(matches!(e, JoinError::OptionsDiffer { .. }), "{e}");
    let e = Group::join("g-opts", &opts().max_message(1 << 20)).err().expect("refused");
    assert!(matches!(e, JoinError::OptionsDiffer { .. }), "{e}");
    assert!(matches!(Group::join("a/b", &opts()), Err(JoinError::Name(_))));
}

#[test]
fn a_block_group_times_out_on_a_member_that_does_not_read_and_a_lap_group_counts_losses() {
    ringflow_testkit::isolate_runtime_dir();
    let small = opts().log_capacity(8192).max_message(256);
    let mut a = Group::join("g-block", &small).unwrap();
    let _b = Group::join("g-block", &small).unwrap();
    let mut sent = 0;
    let err = loop {
        match a.mcast_timeout(&[7; 200], Duration::from_millis(50)) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 1000, "a Block group must hold a sender back");
    };
    assert!(matches!(err, ringflow_api::McastError::TimedOut), "{err}");

    let lap = small.clone().slow_member(SlowMember::Lap);
    let mut p = Group::join("g-lap", &lap).unwrap();
    let mut q = Group::join("g-lap", &lap).unwrap();
    next(&mut q);
    // q has heard nothing of p yet: its join view gave it p's baseline, so
    // the count is exact from the first message on.
    let total = 500u64;
    for i in 0..total {
        p.mcast(&i.to_le_bytes()).unwrap();
    }
    let (mut got, mut lost) = (0, 0);
    loop {
        match q.try_recv() {
            Ok(Event::Message(_)) => got += 1,
            Ok(Event::Lost { count }) => lost += count,
            Ok(_) => {}
            Err(GroupRecvError::WouldBlock) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(lost > 0, "500 messages overflow an 8 KiB log");
    assert_eq!(got + lost, total, "delivered and lost add up to what was sent");
}

#[test]
fn a_member_without_loopback_receives_the_others_messages_only() {
    ringflow_testkit::isolate_runtime_dir();
    let mut a = Group::join("g-loop", &opts().loopback(false)).unwrap();
    let mut b = Group::join("g-loop", &opts()).unwrap();
    let (ida, idb) = (a.local_member().id, b.local_member().id);
    assert!(matches!(next(&mut a), Owned::View(1, ..)));
    assert!(matches!(next(&mut a), Owned::View(2, ..)));
    assert!(matches!(next(&mut b), Owned::View(2, ..)));
    a.mcast(b"from a").unwrap();
    b.mcast(b"from b").unwrap();
    // a skips its own message; b (loopback on, the default) gets both.
    assert_eq!(next(&mut a), Owned::Msg(idb, b"from b".to_vec()));
    assert!(matches!(a.try_recv(), Err(GroupRecvError::WouldBlock)));
    assert_eq!(next(&mut b), Owned::Msg(ida, b"from a".to_vec()));
    assert_eq!(next(&mut b), Owned::Msg(idb, b"from b".to_vec()));
}

/// Two members without loopback answer each other for several laps of the
/// log, by copy and by loan, sometimes twice in a row: each receives
/// exactly the other's messages, in order, and never its own or a loss
/// (a member steps over its own last frame unread, also behind the padding
/// of a wrap, and reads and drops an earlier one).
#[test]
fn members_without_loopback_answer_each_other_for_laps() {
    ringflow_testkit::isolate_runtime_dir();
    let quiet = opts().loopback(false);
    let mut a = Group::join("g-pingpong", &quiet).unwrap();
    let mut b = Group::join("g-pingpong", &quiet).unwrap();
    let (ida, idb) = (a.local_member().id, b.local_member().id);
    assert!(matches!(next(&mut a), Owned::View(1, ..)));
    assert!(matches!(next(&mut a), Owned::View(2, ..)));
    assert!(matches!(next(&mut b), Owned::View(2, ..)));
    let msg = |from: u8, k: u32| {
        let mut m = vec![from; 40 + (k % 50) as usize];
        m[..4].copy_from_slice(&k.to_le_bytes());
        m
    };
    // 64 KiB of log, about 120 bytes a frame: some six laps.
    for k in 0..3000u32 {
        let (tx, rx, from, id) = if k % 2 == 0 { (&mut a, &mut b, b'a', ida) } else { (&mut b, &mut a, b'b', idb) };
        let m = msg(from, k);
        if k % 3 == 0 {
            let mut loan = tx.loan(m.len()).unwrap();
            loan.write(0, &m);
            loan.send().unwrap();
        } else {
            tx.mcast(&m).unwrap();
        }
        if k % 7 == 0 {
            // Twice in a row: the first own frame is read and dropped, the
            // second stepped over.
            tx.mcast(&msg(from, k)).unwrap();
            assert_eq!(next(rx), Owned::Msg(id, m.clone()));
        }
        assert_eq!(next(rx), Owned::Msg(id, m));
    }
    for g in [&mut a, &mut b] {
        assert!(matches!(g.try_recv(), Err(GroupRecvError::WouldBlock)), "nothing left, nothing of its own");
        let s = g.stats();
        assert_eq!(s.lost, 0);
    }
}

/// A member that only polls (`try_recv`: a plain message at the cursor is
/// handed out on the receive's straight path) still gets a join's view
/// between the messages around it, in the log's order, never its own
/// messages without loopback, and on a Lap group the exact loss before the
/// message that follows it.
#[test]
fn a_polling_member_gets_views_and_losses_in_the_log_order() {
    ringflow_testkit::isolate_runtime_dir();
    let lap = opts().log_capacity(8192).max_message(256).slow_member(SlowMember::Lap).loopback(false);
    let mut p = Group::join("g-poll", &lap).unwrap();
    let mut q = Group::join("g-poll", &lap).unwrap();
    let idp = p.local_member().id;
    let poll = |g: &mut Group| {
        let mut got = Vec::new();
        loop {
            match g.try_recv() {
                Ok(Event::Message(mut m)) => {
                    let mut b = [0u8; 8];
                    m.read_into(&mut b).expect("not overwritten: nothing laps it here");
                    got.push(Owned::Msg(m.sender().id, b.to_vec()));
                }
                Ok(Event::View(v)) => got.push(Owned::View(v.id, Vec::new(), Vec::new())),
                Ok(Event::Lost { count }) => got.push(Owned::Lost(count)),
                Err(GroupRecvError::WouldBlock) => return got,
                Err(e) => panic!("{e}"),
            }
        }
    };
    let view = |id| Owned::View(id, Vec::new(), Vec::new());
    let msg = |k: u64| Owned::Msg(idp, k.to_le_bytes().to_vec());
    for k in 0..3u64 {
        p.mcast(&k.to_le_bytes()).unwrap();
    }
    let r = Group::join("g-poll", &lap).unwrap();
    for k in 3..6u64 {
        p.mcast(&k.to_le_bytes()).unwrap();
    }
    let expected: Vec<_> = [view(2), msg(0), msg(1), msg(2), view(3), msg(3), msg(4), msg(5)].into();
    assert_eq!(poll(&mut q), expected);
    assert_eq!(poll(&mut p), [view(1), view(2), view(3)], "its own messages skipped");
    drop(r);
    let leave = poll(&mut q);
    assert!(matches!(leave[..], [] | [Owned::View(4, ..)]), "{leave:?}");
    // Past a lap: losses counted exactly, before the message after them.
    let total = 500u64;
    for k in 0..total {
        p.mcast(&k.to_le_bytes()).unwrap();
    }
    let events = poll(&mut q);
    let got = events.iter().filter(|e| matches!(e, Owned::Msg(..))).count() as u64;
    let lost: u64 = events.iter().map(|e| if let Owned::Lost(n) = e { *n } else { 0 }).sum();
    assert!(lost > 0, "500 messages overflow an 8 KiB log");
    assert_eq!(got + lost, total, "delivered and lost add up to what was sent");
    assert!(matches!(events.last(), Some(Owned::Msg(_, b)) if b[..] == (total - 1).to_le_bytes()), "the newest last");
}
