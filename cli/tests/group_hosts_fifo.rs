//! A FIFO group on three hosts, relayed directly between the engines
//! (issue 17: no consensus round trip on the data path): three `ringflow
//! engine` processes on loopback with `cluster.groups = ["xf"]`, and a
//! member process on each host that made "xf" a FIFO group before its
//! engine started (the gateway takes a group as it finds it). Every
//! member multicasts; members write what they deliver, one line per
//! event, to a file the test reads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod support;

use ringflow::{GroupOptions, Guarantee};
use ringflow_testkit::Proxy;
use support::groups::{by_view, events, from_three, is_view, is_view_of, members_of, texts_of, MemberChild};
use support::{
    child_arg, free_ports, is_child, log_field, private_dir, wait_until, write_marker, AppProc, EngineProc, EngineSpec,
};

const NAMES: [&str; 3] = ["a", "b", "c"];

/// A member of the FIFO group "xf": creates or joins it, writes every
/// event it delivers, and once a view holds three members multicasts
/// EACH messages `NAME-k`, one per event or quiet 20 ms, each followed
/// by a pause of PACE_MS (0 by default).
#[test]
#[ignore]
fn child_fifo_member() {
    if !is_child() {
        return;
    }
    let opts = GroupOptions::new().guarantee(Guarantee::Fifo);
    let each: usize = child_arg("EACH").parse().unwrap_or(30);
    let pace = Duration::from_millis(child_arg("PACE_MS").parse().unwrap_or(0));
    MemberChild::join("xf", &opts).write_and_send(each, Duration::from_millis(20), pace);
}

/// A member of "xf" that multicasts every PACE_MS until the test stops
/// it (`MemberChild::send_until_stopped`).
#[test]
#[ignore]
fn child_fifo_member_through_a_partition() {
    if !is_child() {
        return;
    }
    let opts = GroupOptions::new().guarantee(Guarantee::Fifo);
    let pace = Duration::from_millis(child_arg("PACE_MS").parse().unwrap_or(10));
    MemberChild::join("xf", &opts).send_until_stopped(pace);
}

/// The three members (first, so that "xf" is FIFO on each host), then
/// the three engines; each engine's way to each other through a proxy of
/// the test's (`proxies[i][j]`: engine i's to engine j) when `proxied`,
/// the node timeout `node_timeout_ms`, and members that pause `pace_ms`
/// after each message.
#[allow(clippy::type_complexity)]
fn start(
    top: &Path,
    each: usize,
    pace_ms: u64,
    proxied: bool,
    node_timeout_ms: u64,
) -> (Vec<AppProc>, Vec<EngineProc>, Vec<u16>, Vec<Vec<Option<Proxy>>>) {
    start_with("child_fifo_member", top, each, pace_ms, proxied, node_timeout_ms)
}

/// [`start`] with members that run test `child`.
#[allow(clippy::type_complexity)]
fn start_with(
    child: &'static str,
    top: &Path,
    each: usize,
    pace_ms: u64,
    proxied: bool,
    node_timeout_ms: u64,
) -> (Vec<AppProc>, Vec<EngineProc>, Vec<u16>, Vec<Vec<Option<Proxy>>>) {
    let runtimes: Vec<PathBuf> = (0..3).map(|i| private_dir(top, &format!("host{i}"))).collect();
    let members: Vec<AppProc> = (0..3)
        .map(|i| {
            let args = [
                ("DIR", top.display().to_string()),
                ("NAME", NAMES[i].to_owned()),
                ("RUNTIME", runtimes[i].display().to_string()),
                ("EACH", each.to_string()),
                ("PACE_MS", pace_ms.to_string()),
            ];
            AppProc::spawn(child, &args)
        })
        .collect();
    wait_until("each member in its own group", || {
        let ready = NAMES.iter().filter(|n| events(top, n).iter().any(|l| l.starts_with("view "))).count();
        if ready == 3 {
            Ok(())
        } else {
            Err(format!("{ready} of 3 members joined"))
        }
    });
    let all = free_ports(3);
    let addr = |p: u16| -> SocketAddr { format!("127.0.0.1:{p}").parse().expect("addr") };
    let proxies: Vec<Vec<Option<Proxy>>> =
        (0..3).map(|i| (0..3).map(|j| (proxied && i != j).then(|| Proxy::start(addr(all[j])))).collect()).collect();
    let engines = (0..3)
        .map(|i| {
            let listen = format!("127.0.0.1:{}", all[i]);
            let via: Vec<String> = (0..3)
                .filter_map(|j| proxies[i][j].as_ref().map(|p| format!("127.0.0.1:{}={}", all[j], p.addr())))
                .collect();
            EngineSpec::new(&runtimes[i], &listen)
                .cluster_node(all[i], &all)
                .env("RINGFLOW_CLUSTER_GROUPS", "xf")
                .env("RINGFLOW_CLUSTER_NODE_TIMEOUT_MS", &node_timeout_ms.to_string())
                .env("RINGFLOW_TEST_CLUSTER_VIA", &via.join(","))
                .env("RINGFLOW_LOG", "ringflow_core::cluster=debug,ringflow_core::xgroup=info")
                .start()
        })
        .collect();
    (members, engines, all, proxies)
}

/// Whether every member delivered `n` messages of every sender.
fn delivered(top: &Path, n: usize) -> Result<(), String> {
    let counts: Vec<usize> =
        NAMES.iter().flat_map(|r| NAMES.iter().map(move |s| texts_of(&events(top, r), s).len())).collect();
    if counts.iter().all(|c| *c >= n) {
        Ok(())
    } else {
        Err(format!("messages delivered (at a, b, c of a, b, c) {counts:?}"))
    }
}

/// Every member delivered every sender's `n` messages once each, in
/// order, and the same views with the same messages between them.
fn one_sequence(top: &Path, n: usize) {
    for r in NAMES {
        let e = events(top, r);
        for s in NAMES {
            let want: Vec<String> = (1..=n).map(|k| format!("{s}-{k}")).collect();
            assert_eq!(texts_of(&e, s), want, "{s}'s messages at {r}: once each, in order");
        }
    }
    let seqs: Vec<Vec<(String, Vec<String>)>> = NAMES.iter().map(|r| by_view(&from_three(&events(top, r)))).collect();
    assert!(!seqs[0].is_empty(), "a never saw a view of three");
    for (r, s) in NAMES.iter().zip(&seqs) {
        assert_eq!(s, &seqs[0], "{r}'s views, and the messages between them, differ from a's");
    }
}

/// Every member delivers every sender's messages once, in its order, and
/// the same views with the same messages between them (virtual
/// synchrony). No member's message went through the cluster's log: each
/// gateway relayed its host's frames directly and proposed none.
#[test]
fn fifo_messages_are_relayed_directly_in_one_view_sequence() {
    if is_child() {
        return;
    }
    const EACH: usize = 40;
    let top = ringflow_testkit::temp_dir("group-hosts-fifo");
    let (members, engines, _, _) = start(top.path(), EACH, 0, false, 2000);
    wait_until("every member delivered every message", || delivered(top.path(), EACH));
    one_sequence(top.path(), EACH);
    // Each gateway relayed its member's frames and proposed none (its
    // counts are logged twice a second; `said` hands each line once).
    let mut last = vec![String::new(); 3];
    wait_until("every gateway's counts logged after the stream", || {
        let counts: Vec<(u64, u64, u64)> = engines
            .iter()
            .zip(&mut last)
            .map(|(e, last)| {
                if let Some(l) = e.said().into_iter().rev().find(|l| l.contains("group relay counts")) {
                    *last = l;
                }
                let f = |n| log_field(last, n).unwrap_or(0);
                (f("relayed"), f("received"), f("proposed_messages"))
            })
            .collect();
        if counts.iter().all(|(relayed, received, _)| *relayed >= EACH as u64 && *received >= 2 * EACH as u64) {
            assert!(counts.iter().all(|c| c.2 == 0), "a member's message went through the log: {counts:?}");
            Ok(())
        } else {
            Err(format!("(relayed, received, proposed) {counts:?}"))
        }
    });
    drop(members);
    drop(engines);
}

/// kill -9 of a sending host's engine mid-stream: the two survivors
/// deliver the same prefix of its member's messages, in the same views,
/// then the same node-down view, and every message of each other.
#[test]
fn a_senders_engine_killed_mid_stream_leaves_one_prefix_at_the_survivors() {
    if is_child() {
        return;
    }
    const MANY: usize = 1500;
    let top = ringflow_testkit::temp_dir("group-hosts-fifo-kill");
    // 1 ms between a member's messages: the kill comes mid-stream.
    let (members, mut engines, _, _) = start(top.path(), MANY, 1, false, 2000);
    wait_until("the stream under way", || {
        let n = texts_of(&events(top.path(), "a"), "c").len();
        if n >= 30 {
            Ok(())
        } else {
            Err(format!("c's messages at a: {n}"))
        }
    });
    engines[2].kill();
    let left = ["a", "b"];
    let mut said = vec![String::new(); 2];
    let mut logs: Vec<Vec<String>> = vec![Vec::new(); 2];
    wait_until("the survivors saw c's node go and delivered each other's messages", || {
        let mut why = Vec::new();
        for ((e, last), log) in engines.iter().zip(&mut said).zip(&mut logs) {
            let lines = e.said();
            if let Some(l) = lines.iter().rev().find(|l| l.contains("group relay counts")) {
                last.clone_from(l);
            }
            log.extend(
                lines.into_iter().filter(|l| l.contains("View") || l.contains("node down") || l.contains("panic")),
            );
        }
        let views: Vec<&[String]> = logs.iter().map(|l| &l[l.len().saturating_sub(4)..]).collect();
        why.push(format!("gateways said {said:?}, their last views {views:?}"));
        for r in left {
            let e = events(top.path(), r);
            if !e.iter().any(|l| l.starts_with("view ") && l.contains("NodeDown")) {
                why.push(format!("no node-down view at {r}"));
            }
            for s in left {
                let n = texts_of(&e, s).len();
                if n < MANY {
                    why.push(format!("{s}'s at {r}: {n}"));
                }
            }
        }
        if why.len() == 1 {
            Ok(())
        } else {
            Err(why.join(", "))
        }
    });
    let (a, b) = (events(top.path(), "a"), events(top.path(), "b"));
    let (ca, cb) = (texts_of(&a, "c"), texts_of(&b, "c"));
    assert_eq!(ca, cb, "the survivors delivered different prefixes of c's messages");
    let want: Vec<String> = (1..=ca.len()).map(|k| format!("c-{k}")).collect();
    assert_eq!(ca, want, "c's messages once each, in order");
    assert!(ca.len() < MANY, "c's engine was killed after its member sent everything: not mid-stream");
    for r in [&a, &b] {
        for s in left {
            let want: Vec<String> = (1..=MANY).map(|k| format!("{s}-{k}")).collect();
            assert_eq!(texts_of(r, s), want, "{s}'s messages at a survivor");
        }
    }
    // The same views, with the same messages between them, up to and
    // including the node-down view (after it the two go on).
    let upto_down = |e: &[String]| {
        let v = by_view(&from_three(e));
        let at = v.iter().position(|(l, _)| l.contains("NodeDown")).map_or(v.len(), |i| i + 1);
        v[..at].to_vec()
    };
    let (va, vb) = (upto_down(&a), upto_down(&b));
    assert!(
        va.last().is_some_and(|(l, _)| l.contains("NodeDown") && is_view_of(l, 2)),
        "a's node-down view: {:?}",
        va.last()
    );
    assert_eq!(va.len(), vb.len(), "as many views at both");
    for (x, y) in va.iter().zip(&vb) {
        assert_eq!(x.0, y.0, "the same view at both");
        let c_only = |m: &[String]| m.iter().filter(|t| t.starts_with("c-")).cloned().collect::<Vec<_>>();
        assert_eq!(c_only(&x.1), c_only(&y.1), "c's messages in the same view at both ({})", x.0);
    }
    drop(members);
    drop(engines);
}

/// Links cut and restored mid-stream, each cut shorter than the node
/// timeout: every relay link resumes (its unacknowledged frames sent
/// again), and every member delivers every message once, in its sender's
/// order, in one view sequence with no node taken down.
#[test]
fn link_cuts_shorter_than_the_node_timeout_lose_nothing() {
    if is_child() {
        return;
    }
    const MANY: usize = 1500;
    let top = ringflow_testkit::temp_dir("group-hosts-fifo-cut");
    // 2 ms between a member's messages: the stream outlasts the cuts.
    let (members, engines, _, proxies) = start(top.path(), MANY, 2, true, 5000);
    wait_until("the stream under way", || {
        let n = texts_of(&events(top.path(), "a"), "c").len();
        if n >= 30 {
            Ok(())
        } else {
            Err(format!("c's messages at a: {n}"))
        }
    });
    let cut = |x: usize, y: usize, up: bool| {
        for (i, j) in [(x, y), (y, x)] {
            let p = proxies[i][j].as_ref().expect("a proxy");
            if up {
                p.restore();
            } else {
                p.cut();
            }
        }
    };
    for (x, y) in [(0, 2), (1, 2), (0, 1), (0, 2), (1, 2)] {
        cut(x, y, false);
        std::thread::sleep(Duration::from_millis(300));
        cut(x, y, true);
        std::thread::sleep(Duration::from_millis(200));
    }
    let before = texts_of(&events(top.path(), "a"), "c").len();
    assert!(before < MANY, "the cuts came after the stream: nothing was tested");
    let refused: u64 = proxies.iter().flatten().flatten().map(Proxy::refused).sum();
    assert!(refused > 0, "no engine dialled through a cut proxy: the links did not go through them");
    wait_until("every member delivered every message", || delivered(top.path(), MANY));
    one_sequence(top.path(), MANY);
    for r in NAMES {
        let down = events(top.path(), r).into_iter().find(|l| l.starts_with("view ") && l.contains("NodeDown"));
        assert_eq!(down, None, "a node taken down at {r}");
    }
    drop(members);
    drop(engines);
}

/// Whether every message of `events` was delivered in a view that holds
/// its sender; the offending line if not.
fn sender_outside_its_view(events: &[String]) -> Option<String> {
    let mut members: Vec<String> = Vec::new();
    for l in events {
        if is_view(l) {
            members = members_of(l);
        } else if let Some(rest) = l.strip_prefix("msg ") {
            let sender = rest.split(' ').next().unwrap_or("");
            if !members.iter().any(|m| m == sender) {
                return Some(format!("{l} in a view of {members:?}"));
            }
        }
    }
    None
}

/// `sender`'s numbers in `texts` (`sender-k`) strictly increase: none
/// twice, none out of order.
fn increasing(texts: &[String]) -> bool {
    let n: Vec<u64> = texts.iter().filter_map(|t| t.rsplit('-').next()?.parse().ok()).collect();
    n.len() == texts.len() && n.windows(2).all(|w| w[0] < w[1])
}

/// A partition isolating host c past the node timeout while every member
/// multicasts, then healed. c's member gets a view of its own host and
/// `NoQuorum`; no member anywhere delivers a message in a view without
/// its sender (c's member none of a's or b's while the quorum is lost);
/// a's and b's members deliver every message either of them sent, and
/// the same views with the same messages between them; c's messages are
/// delivered at a and b once each, in order; healed, c's member is back
/// in a view of three and its new messages reach the others.
#[test]
fn a_partition_keeps_a_fifo_groups_views_synchronous() {
    if is_child() {
        return;
    }
    let top = ringflow_testkit::temp_dir("group-hosts-fifo-partition");
    let (mut members, engines, _, proxies) =
        start_with("child_fifo_member_through_a_partition", top.path(), 0, 10, true, 1000);
    let cut = |x: usize, y: usize, up: bool| {
        for (i, j) in [(x, y), (y, x)] {
            let p = proxies[i][j].as_ref().expect("a proxy");
            if up {
                p.restore();
            } else {
                p.cut();
            }
        }
    };
    let count = |r: &str, s: &str| texts_of(&events(top.path(), r), s).len();
    wait_until("the stream under way", || {
        let n: Vec<usize> = NAMES.iter().map(|r| count(r, "c")).collect();
        if n.iter().all(|n| *n >= 20) {
            Ok(())
        } else {
            Err(format!("c's messages at a, b, c: {n:?}"))
        }
    });
    cut(2, 0, false);
    cut(2, 1, false);
    wait_until("the quorum-lost view and a refusal at c", || {
        let e = events(top.path(), "c");
        let lost = e.iter().position(|l| is_view(l) && l.contains("(QuorumLost"));
        // The refusal may come first: the word is set as the view is
        // written, before the member reads it.
        let refused = e.iter().rposition(|l| l == "refused NoQuorum");
        match (lost, refused) {
            (Some(_), Some(_)) => Ok(()),
            other => Err(format!("quorum-lost view, last refusal at {other:?}")),
        }
    });
    let (a_before, b_before) = (count("a", "a"), count("b", "b"));
    wait_until("a and b go on", || {
        if count("b", "a") > a_before + 20 && count("a", "b") > b_before + 20 {
            Ok(())
        } else {
            Err(format!("a's at b {}, b's at a {}", count("b", "a"), count("a", "b")))
        }
    });
    cut(2, 0, true);
    cut(2, 1, true);
    let c_healed = count("a", "c");
    wait_until("c back in a view of three, its new messages at a and b", || {
        let e = events(top.path(), "c");
        let lost = e.iter().position(|l| is_view(l) && l.contains("(QuorumLost")).unwrap_or(e.len());
        // The regained view, or the view of its join again if the
        // majority took its node down meanwhile: its last view holds three.
        let three = e[lost..].iter().rev().find(|l| is_view(l)).is_some_and(|l| is_view_of(l, 3));
        let (at_a, at_b) = (count("a", "c"), count("b", "c"));
        if three && at_a > c_healed + 10 && at_b > c_healed + 10 {
            Ok(())
        } else {
            Err(format!("a view of three after the loss at c: {three}; c's at a {at_a}, at b {at_b}"))
        }
    });
    for n in NAMES {
        write_marker(top.path(), &format!("stop-{n}"), "");
    }
    let mut sent = Vec::new();
    for (i, n) in NAMES.iter().enumerate() {
        let marker = top.path().join(format!("sent-{n}"));
        members[i].await_marker(&marker);
        sent.push(std::fs::read_to_string(&marker).expect("sent").trim().parse::<usize>().expect("a count"));
    }
    wait_until("a's and b's messages all delivered at a and b", || {
        let short: Vec<(&str, &str, usize)> = ["a", "b"]
            .iter()
            .flat_map(|r| ["a", "b"].iter().map(move |s| (*r, *s)))
            .map(|(r, s)| (r, s, count(r, s)))
            .filter(|(_, s, n)| *n < sent[usize::from(*s == "b")])
            .collect();
        if short.is_empty() {
            Ok(())
        } else {
            Err(format!("(receiver, sender, delivered) short: {short:?} of {sent:?}"))
        }
    });
    for r in NAMES {
        let e = events(top.path(), r);
        assert_eq!(sender_outside_its_view(&e), None, "at {r}");
        for s in NAMES {
            assert!(increasing(&texts_of(&e, s)), "{s}'s messages at {r} once each, in order: {:?}", texts_of(&e, s));
        }
    }
    for r in ["a", "b"] {
        for (s, n) in [("a", sent[0]), ("b", sent[1])] {
            let want: Vec<String> = (1..=n).map(|j| format!("{s}-{j}")).collect();
            assert_eq!(texts_of(&events(top.path(), r), s), want, "{s}'s at {r}");
        }
    }
    let (va, vb) = (by_view(&from_three(&events(top.path(), "a"))), by_view(&from_three(&events(top.path(), "b"))));
    let shortest = va.len().min(vb.len());
    assert!(shortest >= 3, "a's views {va:?}");
    assert_eq!(va[..shortest], vb[..shortest], "a's and b's views and the messages between them");
    // Said, never asserted: whether the majority took c down meanwhile
    // (the views c went through).
    let c_views: Vec<String> = events(top.path(), "c").into_iter().filter(|l| is_view(l)).collect();
    eprintln!("c's views: {c_views:#?}");
    drop(members);
    drop(engines);
}
