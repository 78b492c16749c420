//! A group whose members live on three hosts: three `ringflow engine`
//! processes on loopback with the cluster on and `cluster.groups = ["xg"]`
//! (each engine is the group's gateway on its host, each host its own
//! runtime directory), and a member process on each host. Every member
//! multicasts AGREED messages: every member delivers the same sequence of
//! views and messages from the view that holds all three on; a member's
//! kill -9 is a process-down view at the other two hosts; an engine's
//! kill -9 leaves its host's member on one host, every member of the
//! others gone with a node-down view. A SAFE group on the three hosts
//! delivers nothing while a follower's engine is stopped, and everything
//! once it continues or is taken down. Members write
//! what they deliver, one line per event, to a file the test reads.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod support;

use ringflow::{Deadline, Event, Group, GroupOptions};
use support::groups::{events, from_three, line, payloads, texts_of, MemberChild};
use support::{
    child_arg, child_dir, free_ports, is_child, node_id, private_dir, wait_until, AppProc, EngineProc, EngineSpec, LONG,
};

/// Messages each member multicasts.
const EACH: usize = 20;

fn engine(runtime: &Path, port: u16, all: &[u16]) -> EngineProc {
    let listen = format!("127.0.0.1:{port}");
    EngineSpec::new(runtime, &listen).cluster_node(port, all).env("RINGFLOW_CLUSTER_GROUPS", "xg").start()
}

/// The latest leader an engine's log lines named (0: none yet).
fn leader_said(proc: &EngineProc, last: &mut u64) -> u64 {
    for line in proc.said() {
        if line.contains("cluster leader") {
            if let Some(at) = line.find(" leader=") {
                *last = line[at + 8..]
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    *last
}

/// A member on one host: joins "xg" in the host's runtime directory,
/// waits for a view of three, multicasts its messages, and writes every
/// event it delivers (until killed).
#[test]
#[ignore]
fn child_member_of_three_hosts() {
    if !is_child() {
        return;
    }
    let each: usize = child_arg("EACH").parse().unwrap_or(EACH);
    MemberChild::join("xg", &GroupOptions::new()).write_and_send(each, Duration::from_millis(200), Duration::ZERO);
}

#[test]
fn agreed_messages_and_views_are_one_sequence_on_three_hosts() {
    if is_child() {
        return;
    }
    let top = ringflow_testkit::temp_dir("group-hosts");
    let runtimes: Vec<PathBuf> = (0..3).map(|i| private_dir(top.path(), &format!("host{i}"))).collect();
    let all = free_ports(3);
    let engines: Vec<EngineProc> = (0..3).map(|i| engine(&runtimes[i], all[i], &all)).collect();
    let names = ["a", "b", "c"];
    let mut members: Vec<AppProc> = (0..3)
        .map(|i| {
            let args = [
                ("DIR", top.path().display().to_string()),
                ("NAME", names[i].to_owned()),
                ("RUNTIME", runtimes[i].display().to_string()),
            ];
            AppProc::spawn("child_member_of_three_hosts", &args)
        })
        .collect();

    // Every member delivers all 3 × EACH messages.
    wait_until("every member delivered every message", || {
        let counts: Vec<usize> =
            names.iter().map(|n| events(top.path(), n).iter().filter(|l| l.starts_with("msg ")).count()).collect();
        if counts.iter().all(|c| *c >= 3 * EACH) {
            Ok(())
        } else {
            Err(format!("messages delivered {counts:?}"))
        }
    });
    let seqs: Vec<Vec<String>> = names.iter().map(|n| from_three(&events(top.path(), n))).collect();
    for (n, s) in names.iter().zip(&seqs) {
        assert!(!s.is_empty(), "{n} never saw a view of three");
    }
    let shortest = seqs.iter().map(Vec::len).min().unwrap_or(0);
    for (n, s) in names.iter().zip(&seqs) {
        assert_eq!(&s[..shortest], &seqs[0][..shortest], "{n} delivered another sequence than a");
    }
    // Each sender's messages once each, in its order, with its host.
    for sender in names {
        let texts: Vec<String> = seqs[0]
            .iter()
            .filter(|l| l.starts_with("msg "))
            .filter_map(|l| l.rsplit(' ').next())
            .filter(|t| t.starts_with(&format!("{sender}-")))
            .map(str::to_owned)
            .collect();
        let want: Vec<String> = (1..=EACH).map(|k| format!("{sender}-{k}")).collect();
        assert_eq!(texts, want, "{sender}'s messages at a");
    }

    // `ringflow stat` on a's host lists the members of the other two
    // hosts (what a's engine, the group's gateway there, publishes).
    let stat = std::process::Command::new(env!("CARGO_BIN_EXE_ringflow"))
        .args(["stat", "--once", "--window-ms", "50", "--runtime-dir"])
        .arg(&runtimes[0])
        .output()
        .expect("run ringflow stat");
    let stat = String::from_utf8_lossy(&stat.stdout).into_owned();
    let listed = stat.lines().find(|l| l.contains("group xg, members of other hosts:")).unwrap_or_default();
    for i in [1, 2] {
        let host = node_id(all[i], &all);
        assert!(listed.contains(&format!(" of host {host} (pid ")), "host {host} in {listed:?}; stat said {stat}");
    }
    assert!(stat.contains("  remote: member "), "the group's table lists remote members: {stat}");
    assert!(stat.contains("  group xg gateway: holds "), "what the gateway holds: {stat}");
    assert!(!listed.contains(&format!(" of host {} ", node_id(all[0], &all))), "a's own host in {listed:?}");

    // kill -9 of b's member: a process-down view at a and c.
    members[1].kill();
    wait_until("a process-down view of b's member at a and c", || {
        let seen: Vec<bool> = ["a", "c"]
            .iter()
            .map(|n| events(top.path(), n).iter().any(|l| l.starts_with("view ") && l.contains("ProcessDown")))
            .collect();
        if seen.iter().all(|s| *s) {
            Ok(())
        } else {
            Err(format!("seen at a, c: {seen:?}"))
        }
    });
    let (a, c) = (events(top.path(), "a"), events(top.path(), "c"));
    let down = |e: &[String]| e.iter().find(|l| l.contains("ProcessDown")).cloned();
    assert_eq!(down(&a), down(&c), "the same view at both");

    // kill -9 of c's engine (its gateway, and the group's first keeper):
    // c's member is on its own host again, every member of other hosts
    // gone with a node-down view.
    let mut engines = engines;
    engines[2].kill();
    wait_until("c's member back on one host", || {
        let e = events(top.path(), "c");
        match e.iter().rev().find(|l| l.starts_with("view ")) {
            Some(l) if l.contains("NodeDown 1/") || l.contains("NodeDown 2/") || l.contains("NodeDown 3/") => Ok(()),
            other => Err(format!("c's last view {other:?}")),
        }
    });
    let e = events(top.path(), "c");
    let last = e.iter().rev().find(|l| l.starts_with("view ")).cloned().unwrap_or_default();
    let kept = last.split('[').nth(1).and_then(|m| m.split(']').next()).unwrap_or("").to_owned();
    assert!(kept.split_whitespace().all(|m| m.starts_with("0/")), "only c's host is left, as host 0: {last}");
    assert_eq!(last.matches("NodeDown").count(), 1, "a's member went with its host: {last}");

    // A fresh engine in its place (same address, empty log): it joins the
    // group c's member kept, which crosses hosts again; c's member (still
    // listed by the cluster) joins again, and a and c see the same view.
    engines[2] = engine(&runtimes[2], all[2], &all);
    let host_c = node_id(all[2], &all);
    wait_until("c's member in the cluster again, the same view at a and c", || {
        let last = |n: &str| events(top.path(), n).iter().rev().find(|l| l.starts_with("view ")).cloned();
        match (last("a"), last("c")) {
            (Some(a), Some(c)) if a == c && c.contains(&format!("(Joined {host_c}/")) => Ok(()),
            other => Err(format!("last views at a and c: {other:?}")),
        }
    });
    drop(members);
    drop(engines);
}

/// Spawns the member of host `i` of `names`.
fn member(top: &Path, runtime: &Path, name: &str, each: usize) -> AppProc {
    let args = [
        ("DIR", top.display().to_string()),
        ("NAME", name.to_owned()),
        ("RUNTIME", runtime.display().to_string()),
        ("EACH", each.to_string()),
    ];
    AppProc::spawn("child_member_of_three_hosts", &args)
}

/// kill -9 of the Raft leader's engine while every member multicasts: a
/// new leader is elected, the survivors' gateways propose again what was
/// not committed, and the members of the two hosts left deliver every one
/// of their senders' messages once, in order, in one sequence.
#[test]
fn the_leaders_engine_killed_mid_stream_loses_nothing_of_the_survivors() {
    if is_child() {
        return;
    }
    const MANY: usize = 150;
    let top = ringflow_testkit::temp_dir("group-hosts-leader");
    let runtimes: Vec<PathBuf> = (0..3).map(|i| private_dir(top.path(), &format!("host{i}"))).collect();
    let all = free_ports(3);
    let mut engines: Vec<EngineProc> = (0..3).map(|i| engine(&runtimes[i], all[i], &all)).collect();
    let names = ["a", "b", "c"];
    let members: Vec<AppProc> = (0..3).map(|i| member(top.path(), &runtimes[i], names[i], MANY)).collect();
    let mut leaders = [0u64; 3];
    // Mid-stream: some messages delivered, a leader known to all.
    wait_until("a leader known to all and the stream under way", || {
        let l: Vec<u64> = (0..3).map(|i| leader_said(&engines[i], &mut leaders[i])).collect();
        let delivered = events(top.path(), "a").iter().filter(|l| l.starts_with("msg ")).count();
        if l[0] != 0 && l.iter().all(|x| *x == l[0]) && delivered >= 20 {
            Ok(())
        } else {
            Err(format!("leaders {l:?}, delivered at a {delivered}"))
        }
    });
    let gone = (0..3).find(|i| node_id(all[*i], &all) == leaders[0]).expect("the leader is one of them");
    engines[gone].kill();
    let left: Vec<usize> = (0..3).filter(|i| *i != gone).collect();
    wait_until("the survivors delivered all their senders' messages", || {
        let counts: Vec<usize> = left
            .iter()
            .flat_map(|r| left.iter().map(move |s| (r, s)))
            .map(|(r, s)| texts_of(&events(top.path(), names[*r]), names[*s]).len())
            .collect();
        if counts.iter().all(|c| *c >= MANY) {
            Ok(())
        } else {
            Err(format!("survivors' messages delivered {counts:?}"))
        }
    });
    let seqs: Vec<Vec<String>> = left.iter().map(|i| from_three(&events(top.path(), names[*i]))).collect();
    let shortest = seqs.iter().map(Vec::len).min().unwrap_or(0);
    assert_eq!(seqs[0][..shortest], seqs[1][..shortest], "the survivors delivered different sequences");
    for r in &left {
        let e = events(top.path(), names[*r]);
        for s in &left {
            let want: Vec<String> = (1..=MANY).map(|k| format!("{}-{k}", names[*s])).collect();
            assert_eq!(texts_of(&e, names[*s]), want, "{}'s messages at {}", names[*s], names[*r]);
        }
    }
    drop(members);
    drop(engines);
}

/// A member of the SAFE group "xs" on one host: creates or joins it
/// (before its host's engine starts: the gateway takes the group as it
/// is), writes every event it delivers, multicasts EACH messages once a
/// view of three holds it, and EACH more for each marker `more-NAME-n`
/// (n = 1, 2, ...) the test writes, numbering on.
#[test]
#[ignore]
fn child_safe_member() {
    if !is_child() {
        return;
    }
    let dir = child_dir();
    let me = child_arg("NAME");
    std::env::set_var("RINGFLOW_RUNTIME_DIR", child_arg("RUNTIME"));
    let opts = GroupOptions::new().guarantee(ringflow::Guarantee::Safe);
    let mut group = Group::join_timeout("xs", &opts, LONG).expect("join");
    let mut out = std::fs::File::create(dir.join(format!("events-{me}"))).expect("events file");
    let each: usize = child_arg("EACH").parse().unwrap_or(EACH);
    let (mut sent, mut allowed, mut three) = (0, each, false);
    loop {
        let text = match group.recv_deadline(Deadline::after(Duration::from_millis(50))) {
            Ok(e) => {
                if let Event::View(v) = &e {
                    three |= v.members.len() == 3;
                }
                line(&e)
            }
            Err(ringflow::GroupRecvError::TimedOut) => String::new(),
            Err(e) => panic!("{me}: receive: {e}"),
        };
        if !text.is_empty() {
            writeln!(out, "{text}").expect("write an event");
        }
        if dir.join(format!("more-{me}-{}", allowed / each)).exists() {
            allowed += each;
        }
        if three && sent < allowed {
            sent += 1;
            group.mcast_timeout(format!("{me}-{sent}").as_bytes(), LONG).expect("mcast");
        }
    }
}

/// The payloads delivered at `name`, in order.
fn messages(dir: &Path, name: &str) -> Vec<String> {
    payloads(&events(dir, name), "")
}

/// A SAFE group on three hosts: every member delivers the same sequence.
/// With a follower's engine stopped (SIGSTOP: its match index stops, it
/// is not yet taken down), the members of the other two hosts multicast
/// and deliver nothing new; once it continues (SIGCONT) every member
/// delivers all of it once, in one sequence. Stopped again past
/// `cluster.node_timeout_ms`, the leader takes its node down and the two
/// others deliver what their members sent meanwhile.
#[test]
fn safe_messages_wait_for_every_node_of_the_view() {
    if is_child() {
        return;
    }
    const EACH_SAFE: usize = 10;
    let top = ringflow_testkit::temp_dir("group-hosts-safe");
    let runtimes: Vec<PathBuf> = (0..3).map(|i| private_dir(top.path(), &format!("host{i}"))).collect();
    let names = ["a", "b", "c"];
    // The members first: they make "xs" a SAFE group on each host.
    let members: Vec<AppProc> = (0..3)
        .map(|i| {
            let args = [
                ("DIR", top.path().display().to_string()),
                ("NAME", names[i].to_owned()),
                ("RUNTIME", runtimes[i].display().to_string()),
                ("EACH", EACH_SAFE.to_string()),
            ];
            AppProc::spawn("child_safe_member", &args)
        })
        .collect();
    wait_until("each member in its own group", || {
        let ready = names.iter().filter(|n| events(top.path(), n).iter().any(|l| l.starts_with("view "))).count();
        if ready == 3 {
            Ok(())
        } else {
            Err(format!("{ready} of 3 members joined"))
        }
    });
    let all = free_ports(3);
    let engines: Vec<EngineProc> = (0..3)
        .map(|i| {
            let listen = format!("127.0.0.1:{}", all[i]);
            EngineSpec::new(&runtimes[i], &listen)
                .cluster_node(all[i], &all)
                .env("RINGFLOW_CLUSTER_GROUPS", "xs")
                .env("RINGFLOW_CLUSTER_NODE_TIMEOUT_MS", "2000")
                .start()
        })
        .collect();
    let delivered_all = |want: usize, at: &[usize]| {
        let counts: Vec<usize> = at.iter().map(|i| messages(top.path(), names[*i]).len()).collect();
        if counts.iter().all(|c| *c >= want) {
            Ok(())
        } else {
            Err(format!("messages delivered {counts:?} of {want}"))
        }
    };
    wait_until("every member delivered every message", || delivered_all(3 * EACH_SAFE, &[0, 1, 2]));
    let same = |at: &[usize]| {
        let seqs: Vec<Vec<String>> = at.iter().map(|i| from_three(&events(top.path(), names[*i]))).collect();
        let shortest = seqs.iter().map(Vec::len).min().unwrap_or(0);
        for (i, s) in at.iter().zip(&seqs) {
            assert_eq!(&s[..shortest], &seqs[0][..shortest], "{} delivered another sequence", names[*i]);
        }
    };
    same(&[0, 1, 2]);

    // A follower's engine stopped: its node holds nothing new.
    let mut leaders = [0u64; 3];
    wait_until("a leader known to all", || {
        let l: Vec<u64> = (0..3).map(|i| leader_said(&engines[i], &mut leaders[i])).collect();
        if l[0] != 0 && l.iter().all(|x| *x == l[0]) {
            Ok(())
        } else {
            Err(format!("leaders {l:?}"))
        }
    });
    let stopped = (0..3).find(|i| node_id(all[*i], &all) != leaders[0]).expect("a follower");
    let others: Vec<usize> = (0..3).filter(|i| *i != stopped).collect();
    let before: Vec<usize> = others.iter().map(|i| messages(top.path(), names[*i]).len()).collect();
    engines[stopped].signal(libc::SIGSTOP);
    for i in &others {
        support::write_marker(top.path(), &format!("more-{}-1", names[*i]), "");
    }
    // Well within the node timeout (2 s): committed by the two, safe at
    // none, so delivered nowhere (a hang guard would be the other way).
    std::thread::sleep(Duration::from_millis(700));
    let held: Vec<usize> = others.iter().map(|i| messages(top.path(), names[*i]).len()).collect();
    assert_eq!(held, before, "a SAFE message was delivered while a node of the view lacked it");
    engines[stopped].signal(libc::SIGCONT);
    wait_until("everything delivered once it continued", || delivered_all(5 * EACH_SAFE, &[0, 1, 2]));
    same(&[0, 1, 2]);
    for r in 0..3 {
        let got = messages(top.path(), names[r]);
        for s in 0..3 {
            let n = if s == stopped { EACH_SAFE } else { 2 * EACH_SAFE };
            let want: Vec<String> = (1..=n).map(|k| format!("{}-{k}", names[s])).collect();
            let have: Vec<String> = got.iter().filter(|t| t.starts_with(&format!("{}-", names[s]))).cloned().collect();
            assert_eq!(have, want, "{}'s messages at {}", names[s], names[r]);
        }
    }

    // Stopped again past the node timeout: taken down, the others go on.
    engines[stopped].signal(libc::SIGSTOP);
    for i in &others {
        support::write_marker(top.path(), &format!("more-{}-2", names[*i]), "");
    }
    wait_until("the others delivered their members' messages without it", || delivered_all(7 * EACH_SAFE, &others));
    same(&others);
    for r in &others {
        let e = events(top.path(), names[*r]);
        assert!(
            e.iter().any(|l| l.starts_with("view ") && l.contains("NodeDown")),
            "no node-down view at {}",
            names[*r]
        );
    }
    engines[stopped].signal(libc::SIGCONT);
    drop(members);
    drop(engines);
}

/// A member of group "xi" on one host, made (before its engine starts)
/// with a log small beside what it sends: writes every event it
/// delivers, and once a view of two holds it multicasts EACH messages
/// `NAME-k.xxx…` (200 bytes) as fast as its log takes them, receiving
/// whenever the log is full (its own cursor frees room too).
#[test]
#[ignore]
fn child_fast_member() {
    if !is_child() {
        return;
    }
    let opts = GroupOptions::new().log_capacity(64 << 10).max_message(1024);
    let mut m = MemberChild::join("xi", &opts);
    let each: usize = child_arg("EACH").parse().unwrap_or(0);
    let (mut sent, mut two) = (0, false);
    loop {
        let quiet = if two && sent < each { Duration::ZERO } else { Duration::from_millis(50) };
        loop {
            match m.group.recv_deadline(Deadline::after(quiet)) {
                Ok(e) => {
                    if let Event::View(v) = &e {
                        two |= v.members.len() == 2;
                    }
                    writeln!(m.out, "{}", line(&e)).expect("write an event");
                }
                Err(ringflow::GroupRecvError::TimedOut | ringflow::GroupRecvError::WouldBlock) => break,
                Err(e) => panic!("{}: receive: {e}", m.me),
            }
        }
        while two && sent < each {
            let mut text = format!("{}-{}.", m.me, sent + 1).into_bytes();
            text.resize(200, b'x');
            match m.group.try_mcast(&text) {
                Ok(()) => sent += 1,
                Err(ringflow::McastError::WouldBlock) => break,
                Err(e) => panic!("{}: mcast: {e}", m.me),
            }
        }
    }
}

/// A sender far faster than the cluster commits, through engines whose
/// gateways hold at most 4 KiB of their members' messages (a 64 KiB log
/// on each host): the gateway stops taking submits at its bound, the
/// sender's log fills and its multicasts wait, and still every message is
/// delivered once, in order, at both hosts; the gateway's counts never
/// show more held than the bound.
#[test]
fn a_fast_sender_waits_for_the_cluster_at_a_small_intake() {
    if is_child() {
        return;
    }
    const FAST: usize = 2000;
    const INTAKE: usize = 4096;
    let top = ringflow_testkit::temp_dir("group-hosts-intake");
    let runtimes: Vec<PathBuf> = (0..2).map(|i| private_dir(top.path(), &format!("host{i}"))).collect();
    let names = ["a", "b"];
    let sends = [FAST, 0];
    let members: Vec<AppProc> = (0..2)
        .map(|i| {
            let args = [
                ("DIR", top.path().display().to_string()),
                ("NAME", names[i].to_owned()),
                ("RUNTIME", runtimes[i].display().to_string()),
                ("EACH", sends[i].to_string()),
            ];
            AppProc::spawn("child_fast_member", &args)
        })
        .collect();
    wait_until("each member in its own group", || {
        let ready = names.iter().filter(|n| events(top.path(), n).iter().any(|l| l.starts_with("view "))).count();
        if ready == 2 {
            Ok(())
        } else {
            Err(format!("{ready} of 2 members joined"))
        }
    });
    let all = free_ports(2);
    let engines: Vec<EngineProc> = (0..2)
        .map(|i| {
            let listen = format!("127.0.0.1:{}", all[i]);
            EngineSpec::new(&runtimes[i], &listen)
                .cluster_node(all[i], &all)
                .env("RINGFLOW_CLUSTER_GROUPS", "xi")
                .env("RINGFLOW_CLUSTER_MAX_MESSAGE_BYTES", &INTAKE.to_string())
                .env("RINGFLOW_CLUSTER_GROUP_INTAKE_BYTES", &INTAKE.to_string())
                .env("RINGFLOW_LOG", "ringflow_core::cluster=debug,ringflow_core::xgroup=info")
                .start()
        })
        .collect();
    let texts = |name: &str| -> Vec<String> {
        payloads(&events(top.path(), name), "a-").iter().map(|t| t.split('.').next().unwrap_or("").to_owned()).collect()
    };
    let mut counts = Vec::new();
    wait_until("both members delivered every message", || {
        counts.extend(engines[0].said().into_iter().filter(|l| l.contains("group gateway counts")));
        let got: Vec<usize> = names.iter().map(|n| texts(n).len()).collect();
        if got.iter().all(|g| *g >= FAST) {
            Ok(())
        } else {
            Err(format!("delivered {got:?} of {FAST}"))
        }
    });
    let want: Vec<String> = (1..=FAST).map(|k| format!("a-{k}")).collect();
    for n in names {
        assert_eq!(texts(n), want, "a's messages at {n}: once each, in order");
    }
    // Its counts are logged every 500 ms: what they caught (the stream
    // takes about a second here) is within the bound.
    for l in &counts {
        let held = support::log_field(l, "held_bytes").unwrap_or_else(|| panic!("no held_bytes in {l:?}"));
        assert!(held <= INTAKE as u64, "the gateway held {held} bytes: {l}");
    }
    drop(members);
    drop(engines);
}
