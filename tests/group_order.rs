//! Order across real processes (issue 15): three member processes multicast
//! numbered messages at once while a fourth member (this process, the first
//! joiner and so the group's keeper) records. Every member writes down each
//! event it is delivered, views and messages, in order; the parent compares
//! them.
//!
//! - AGREED and SAFE: from the view in which all four are members on, every
//!   member delivers the same sequence of events (messages and views in the
//!   same places), each sender's messages in its order, none lost or
//!   repeated, and a member receives its own messages.
//! - FIFO: each sender's messages in order at every member.
//! - UNORDERED: every message reaches every member exactly once.
//!
//! The log is small (64 KiB) so that it wraps many times and senders meet
//! back-pressure: `Block` holds them at the slowest member.

mod common;

use common::group::*;
use common::is_child;
use ringflow::Group;

const SENDERS: u32 = 3;
const N: u64 = 2000;

/// Runs three senders and this process as a recorder; the four logs, this
/// process's first.
fn run(name: &str, spec: Spec) -> Vec<(Key, Vec<Rec>)> {
    ringflow_testkit::isolate_runtime_dir();
    let tmp = ringflow_testkit::temp_dir("gorder");
    let dir = tmp.path();
    let mut g = Group::join_timeout(name, &spec.options(), LONG).unwrap();
    let mut rec = Recorder::new(&g);
    rec.next(&mut g);
    let all: Vec<u32> = (0..SENDERS).collect();
    let until = all.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let mut children: Vec<_> = (0..SENDERS)
        .map(|i| {
            let args = [
                ("TAG", i.to_string()),
                ("N", N.to_string()),
                ("MEMBERS", (SENDERS + 1).to_string()),
                ("UNTIL", until.clone()),
                ("FORMS", "all".to_string()),
            ];
            spawn_member("group_order_child", dir, name, &spec, &format!("s{i}"), "sender", &args)
        })
        .collect();
    rec.until_lasts(&mut g, &all);
    for (i, c) in children.iter_mut().enumerate() {
        wait_success(c, &format!("sender {i}"));
    }
    let mut logs = vec![(rec.me, strip(&rec.recs))];
    for i in 0..SENDERS {
        let (me, recs) = read_log(&dir.join(format!("s{i}.log")));
        logs.push((me, strip(&recs)));
    }
    g.leave().unwrap();
    logs
}

/// The events from the first view naming every member up to the one that
/// completes the last message of every sender.
fn window(recs: &[Rec], members: usize) -> &[Rec] {
    let start = recs
        .iter()
        .position(|r| matches!(r, Rec::View { members: m, .. } if m.len() == members))
        .expect("a view of every member");
    let all: Vec<u32> = (0..SENDERS).collect();
    let timed: Vec<(u64, Rec)> = recs.iter().map(|r| (0, r.clone())).collect();
    let end = (start..=recs.len()).find(|&e| has_last_from(&timed[..e], &all)).expect("every sender's last message");
    &recs[start..end]
}

/// Every sender's messages reach every member exactly once (in the sender's
/// order when `fifo`), each tag comes from one member, and each sender
/// receives all of its own.
fn check_complete(logs: &[(Key, Vec<Rec>)], fifo: bool) {
    let mut sender_of = std::collections::HashMap::new();
    for (i, (me, recs)) in logs.iter().enumerate() {
        let w = window(recs, SENDERS as usize + 1);
        let timed: Vec<(u64, Rec)> = w.iter().map(|r| (0, r.clone())).collect();
        let by_tag = counts_by_tag(&timed);
        for tag in 0..SENDERS {
            let mut ns = by_tag.get(&tag).cloned().unwrap_or_default();
            if !fifo {
                ns.sort_unstable();
            }
            assert_contiguous(&ns, 0, &format!("member {i}, sender {tag}"));
            assert_eq!(ns.len() as u64, N, "member {i}: sender {tag}'s messages");
        }
        if fifo {
            assert_fifo(&timed, &format!("member {i}"));
        }
        for r in w {
            if let Rec::Msg { sender, tag, .. } = r {
                assert_eq!(*sender_of.entry(*tag).or_insert(*sender), *sender, "tag {tag} from two members");
            }
        }
        if i > 0 {
            let own = w.iter().filter(|r| matches!(r, Rec::Msg { sender, .. } if sender == me)).count();
            assert_eq!(own as u64, N, "member {i} receives each of its own messages");
        }
    }
}

/// Total order: one sequence of events, views in the same places.
fn check_agreed(logs: &[(Key, Vec<Rec>)]) {
    let members = SENDERS as usize + 1;
    let first = window(&logs[0].1, members);
    assert!(first.iter().filter(|r| r.is_msg()).count() as u64 == N * SENDERS as u64);
    for (i, (_, recs)) in logs.iter().enumerate().skip(1) {
        let w = window(recs, members);
        if let Some(at) = first.iter().zip(w).position(|(a, b)| a != b) {
            panic!("member {i} departs from member 0 at event {at}: {:?} against {:?}", w[at], first[at]);
        }
        assert_eq!(w.len(), first.len(), "member {i}: as many events as member 0");
    }
    // The senders' joins: each child's first event is its own join.
    for (i, (me, recs)) in logs.iter().enumerate().skip(1) {
        assert!(recs[0].view_change(*me, "Joined"), "member {i}'s first event is its own join: {:?}", recs[0]);
    }
}

#[test]
fn agreed_every_member_delivers_one_order() {
    let logs = run("order-agreed", Spec::new("agreed", "block", 1 << 16));
    check_complete(&logs, true);
    check_agreed(&logs);
}

#[test]
fn safe_every_member_delivers_one_order() {
    let logs = run("order-safe", Spec::new("safe", "block", 1 << 16));
    check_complete(&logs, true);
    check_agreed(&logs);
}

#[test]
fn fifo_each_senders_messages_in_its_order() {
    let logs = run("order-fifo", Spec::new("fifo", "block", 1 << 16));
    check_complete(&logs, true);
}

#[test]
fn unordered_every_message_once() {
    let logs = run("order-unord", Spec::new("unordered", "block", 1 << 16));
    check_complete(&logs, false);
}

#[test]
#[ignore = "child process of the group order tests"]
fn group_order_child() {
    if !is_child() {
        return;
    }
    let ctx = Ctx::from_env();
    let role = ctx.arg("ROLE");
    assert!(shared_role(&ctx, &role), "unknown role {role}");
}
