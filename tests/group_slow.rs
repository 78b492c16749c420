//! Slow members, one policy each (issue 15), with a member process that
//! does not read while this process multicasts into a small (64 KiB) log:
//!
//! - `Block`: the sender waits for the slowest live member, and a deadline
//!   ends the wait with `TimedOut` (the message not sent); once the slow
//!   member is gone the sender goes on.
//! - `Lap`: the slow member is overtaken and told `Lost { count }`, exactly:
//!   each count is the gap in the sender's numbering it stands for, so
//!   delivered + lost = sent; also when it is overtaken before it read a
//!   single message of the sender.
//! - `Evict { after }`: the slow member is removed, the others see a view
//!   saying `Evicted`, the sender goes on, and the evicted member is told so
//!   (`Evicted` from its receive and its multicast).

mod common;

use std::time::Duration;

use common::await_file;
use common::group::*;
use ringflow::{Deadline, Event, Group, GroupRecvError, McastError};

const OWN: u32 = 9;
const ENTRY: &str = "group_slow_child";
const LOG: usize = 1 << 16;

fn setup(name: &str, spec: &Spec, tmp: &ringflow_testkit::TempDir) -> (Group, Recorder) {
    let _ = tmp;
    let mut g = Group::join_timeout(name, &spec.options(), LONG).unwrap();
    let mut rec = Recorder::new(&g);
    rec.next(&mut g);
    (g, rec)
}

#[test]
fn block_a_deadline_ends_the_wait_for_a_slow_member() {
    ringflow_testkit::isolate_runtime_dir();
    let tmp = ringflow_testkit::temp_dir("gblock");
    let (dir, name, spec) = (tmp.path(), "slow-block", Spec::new("agreed", "block", LOG));
    let (mut g, mut rec) = setup(name, &spec, &tmp);
    let mut slow = spawn_member(ENTRY, dir, name, &spec, "slow", "idle", &[]);
    await_stage(dir, "slow", "joined");
    let pid = slow.id();
    rec.until_any(&mut g, |r| r.view_change_pid(pid, "Joined"));
    let sent = fill_until_held(&mut g, &mut rec, OWN, 0, LOG);
    let mut buf = Vec::new();
    payload(OWN, sent, 0, &mut buf);
    for _ in 0..3 {
        assert!(matches!(g.try_mcast(&buf), Err(McastError::WouldBlock)));
        assert!(matches!(g.mcast_deadline(&buf, Deadline::Now), Err(McastError::WouldBlock)));
        let r = g.mcast_timeout(&buf, Duration::from_millis(50));
        assert!(matches!(r, Err(McastError::TimedOut)), "{r:?}");
        let r = g.mcast_deadline(&buf, Deadline::after(Duration::from_millis(50)));
        assert!(matches!(r, Err(McastError::TimedOut)), "{r:?}");
        assert_eq!(rec.drain(&mut g), 0, "a multicast that timed out was delivered");
    }
    kill9(&mut slow);
    rec.until_any(&mut g, |r| r.view_change_pid(pid, "ProcessDown"));
    mcast_recording(&mut g, &mut rec, &buf, Form::Copy).unwrap();
    payload(OWN, sent + 1, LAST, &mut buf);
    mcast_recording(&mut g, &mut rec, &buf, Form::Copy).unwrap();
    rec.until_lasts(&mut g, &[OWN]);
    assert_contiguous(&counts_by_tag(&rec.recs)[&OWN], 0, "this member's messages");
    g.leave().unwrap();
}

/// A Lap group's slow member reads `primed` messages, then none while the
/// sender sends `SENT` in all, then everything: each `Lost` count must be
/// the exact gap it stands for, and delivered + lost = sent.
fn lap_exact_loss(name: &str, primed: u64) {
    ringflow_testkit::isolate_runtime_dir();
    let tmp = ringflow_testkit::temp_dir("glap");
    let (dir, spec) = (tmp.path(), Spec::new("agreed", "lap", LOG));
    const SENT: u64 = 3000;
    let (mut g, mut rec) = setup(name, &spec, &tmp);
    let extra = [("PRIMED", primed.to_string())];
    let mut slow = spawn_member(ENTRY, dir, name, &spec, "slow", "late_reader", &extra);
    await_stage(dir, "slow", "joined");
    let pid = slow.id();
    rec.until_any(&mut g, |r| r.view_change_pid(pid, "Joined"));
    // Never held back by the slow member: a lossy log laps it.
    let mut buf = Vec::new();
    for n in 0..SENT {
        if n == primed {
            await_stage(dir, "slow", "primed");
        }
        payload(OWN, n, if n + 1 == SENT { LAST } else { 0 }, &mut buf);
        g.mcast_timeout(&buf, LONG).unwrap();
        rec.drain(&mut g);
    }
    rec.until_lasts(&mut g, &[OWN]);
    assert_contiguous(&counts_by_tag(&rec.recs)[&OWN], 0, "the sender, reading as it sends, loses nothing");
    std::fs::write(dir.join("read"), b"").unwrap();
    wait_success(&mut slow, "the slow member");
    let (_, log) = read_log(&dir.join("slow.log"));
    // After its join: lost counts and messages, each count the exact gap.
    let (mut next, mut pending, mut delivered, mut lost) = (0u64, 0u64, 0u64, 0u64);
    for (_, r) in &log[1..] {
        match r {
            Rec::Lost { count } => {
                assert!(*count > 0, "Lost {{ count: 0 }}");
                pending += count;
                lost += count;
            }
            Rec::Msg { n, tag: OWN, .. } => {
                assert_eq!(*n, next + pending, "message {n} after {pending} reported lost since message {next}");
                (next, pending) = (n + 1, 0);
                delivered += 1;
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!(pending, 0, "a loss reported after the last message");
    assert_eq!(next, SENT, "the slow member reads through to the last message");
    assert_eq!(delivered + lost, SENT, "delivered + lost = sent");
    assert!(lost > 0, "{SENT} messages through a {LOG}-byte log to a member that did not read lost none");
    let stats_lost: u64 = std::fs::read_to_string(dir.join("slow-stats")).unwrap().trim().parse().unwrap();
    assert_eq!(stats_lost, lost, "the slow member's statistics count what it was told it lost");
    g.leave().unwrap();
}

#[test]
fn lap_a_slow_member_is_told_exactly_how_many_it_lost() {
    lap_exact_loss("slow-lap", 1);
}

/// The same for a member overtaken before it read a single message of
/// the sender: its losses count as much (the join view gives the member
/// every sender's first sequence number after it).
#[test]
fn lap_a_member_overtaken_before_its_first_message_is_told_too() {
    lap_exact_loss("slow-lap-first", 0);
}

#[test]
fn evict_a_slow_member_is_removed_and_told() {
    ringflow_testkit::isolate_runtime_dir();
    let tmp = ringflow_testkit::temp_dir("gevict");
    let name = "slow-evict";
    let spec = Spec { evict_ms: 200, ..Spec::new("agreed", "evict", LOG) };
    let dir = tmp.path();
    const SENT: u64 = 3000;
    let (mut g, mut rec) = setup(name, &spec, &tmp);
    let mut slow = spawn_member(ENTRY, dir, name, &spec, "slow", "evictee", &[]);
    await_stage(dir, "slow", "joined");
    let pid = slow.id();
    rec.until_any(&mut g, |r| r.view_change_pid(pid, "Joined"));
    // Far more than the log holds: the sender waits for the slow member
    // until it is evicted, then goes on.
    let mut buf = Vec::new();
    for n in 0..SENT {
        payload(OWN, n, if n + 1 == SENT { LAST } else { 0 }, &mut buf);
        // This member has read everything: only the slow one can hold a
        // multicast that waits, for as long as the policy lets it.
        g.mcast_timeout(&buf, LONG).unwrap();
        rec.drain(&mut g);
    }
    rec.until_lasts(&mut g, &[OWN]);
    // The keeper commits the view wherever the log is when it evicts: the
    // sender, released from the gate at that moment, may have committed
    // its last message before it.
    rec.until_any(&mut g, |r| r.view_change_pid(pid, "Evicted"));
    let evicted = rec.recs.iter().find(|(_, r)| r.view_change_pid(pid, "Evicted"));
    let (_, view) = evicted.expect("a view evicting the slow member");
    let Rec::View { members, .. } = view else { unreachable!() };
    assert!(members.iter().all(|m| m.1 != pid), "the evicted member is still listed: {view:?}");
    assert_contiguous(&counts_by_tag(&rec.recs)[&OWN], 0, "the sender's own messages");
    std::fs::write(dir.join("read"), b"").unwrap();
    wait_success(&mut slow, "the evicted member");
    let told = std::fs::read_to_string(dir.join("slow-told")).unwrap();
    assert_eq!(told.trim(), "recv Evicted, mcast Evicted", "what the evicted member was told");
    g.leave().unwrap();
}

/// Block holds a sender at the slowest member's cursor, and the sender's
/// own cursor counts as soon as it consumed a message, not only at its next
/// receive: a member that received a large message and then multicasts
/// into a log others filled finds that message's room (a request answered
/// with a reply, the commonest pattern, must not wait on itself).
#[test]
fn block_a_consumed_message_is_room_for_the_consumers_own_multicast() {
    ringflow_testkit::isolate_runtime_dir();
    let spec = Spec::new("agreed", "block", LOG);
    let mut a = Group::join_timeout("slow-own-room", &spec.options(), LONG).unwrap();
    let mut b = Group::join_timeout("slow-own-room", &spec.options(), LONG).unwrap();
    let (mut ra, mut rb) = (Recorder::new(&a), Recorder::new(&b));
    ra.drain(&mut a);
    rb.drain(&mut b);
    let big = vec![1u8; MAX_MSG - 96];
    b.mcast(&big).unwrap();
    let mut buf = vec![0u8; MAX_MSG];
    match a.recv_timeout(LONG).unwrap() {
        Event::Message(mut m) => assert_eq!(m.read_into(&mut buf).unwrap(), big.len()),
        _ => panic!("not the message"),
    }
    // b fills the log behind a's cursor, reading its own as it goes.
    let mut full = 0;
    while full < 2 {
        full = if b.try_mcast(&big).is_err() { full + 1 } else { 0 };
        while let Ok(ev) = b.try_recv() {
            drop(ev);
        }
    }
    a.mcast_timeout(&big, Duration::from_secs(5)).unwrap();
}

#[test]
#[ignore = "child process of the slow-member tests"]
fn group_slow_child() {
    let Some((ctx, role)) = own_child_role() else { return };
    let mut g = ctx.join();
    let mut rec = Recorder::new(&g);
    rec.next(&mut g);
    ctx.mark("joined");
    let primed: usize = ctx.arg("PRIMED").parse().unwrap_or(0);
    if primed > 0 {
        let mut read = 0;
        rec.until_next(&mut g, |r| {
            read += usize::from(r.is_msg());
            read >= primed
        });
    }
    ctx.mark("primed");
    // Not reading until told to.
    await_file(&ctx.dir.join("read"));
    match role.as_str() {
        "late_reader" => {
            rec.until_lasts(&mut g, &[OWN]);
            rec.write(&ctx.log_path());
            std::fs::write(ctx.dir.join("slow-stats"), g.stats().lost.to_string()).unwrap();
            g.leave().unwrap();
        }
        "evictee" => {
            // Whatever is still there, then the news.
            let recv = loop {
                match g.recv_timeout(LONG) {
                    Ok(ev) => {
                        rec.take(ev).unwrap();
                    }
                    Err(GroupRecvError::Evicted) => break "Evicted".to_string(),
                    Err(e) => break format!("{e:?}"),
                }
            };
            let mut buf = Vec::new();
            payload(7, 0, 0, &mut buf);
            let mcast = match g.mcast_timeout(&buf, LONG) {
                Err(McastError::Evicted) => "Evicted".to_string(),
                other => format!("{other:?}"),
            };
            std::fs::write(ctx.dir.join("slow-told"), format!("recv {recv}, mcast {mcast}")).unwrap();
        }
        other => panic!("unknown role {other}"),
    }
}
