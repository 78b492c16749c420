//! An AGREED group on three hosts under faults: three `ringflow engine`
//! processes on loopback, each the group's gateway on its host
//! (`cluster.groups = ["xg"]`), each dialling the others through a proxy
//! of the test's (`RINGFLOW_TEST_CLUSTER_VIA`) that cuts and restores the
//! link, and a member process on each host multicasting all along (one
//! message every few milliseconds, until the test says stop). Members
//! write what they deliver, one line per event, to a file the test reads;
//! a multicast refused for want of a quorum is a line of its own.
//!
//! - A partition: one host cut off from both others. The two others go on
//!   delivering one sequence; the cut-off member gets a view saying its
//!   host lost the quorum and `NoQuorum` on multicast; healed, it gets a
//!   view again, its multicasts go, and it delivered what the majority
//!   delivered in every view that held it, in the same order; every
//!   message a member sent (its multicast returned `Ok`) is delivered at
//!   every host once, in its sender's order.
//! - Link cuts shorter than the node timeout, many, at random moments:
//!   nothing lost, duplicated or reordered, one sequence of views and
//!   messages at every member.
//! - kill -9 of the leader's engine and of a follower's engine, mid-stream,
//!   in turn, each replaced by a fresh engine: after each, the surviving
//!   hosts' members delivered one sequence, their senders' messages once
//!   each and in order. The time from the kill to the node-down view at
//!   the survivors is printed (a figure, never asserted).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

mod support;

use ringflow::GroupOptions;
use ringflow_testkit::Proxy;
use support::groups::{events, is_view, members_of, texts_of, MemberChild};
use support::{free_ports, is_child, node_id, private_dir, wait_until, write_marker, AppProc, EngineProc, EngineSpec};

const N: usize = 3;
const NAMES: [&str; N] = ["a", "b", "c"];
/// Between two multicasts of one member.
const PACE: Duration = Duration::from_millis(15);

/// A member on one host: joins "xg" and multicasts every [`PACE`] until
/// the test stops it (`MemberChild::send_until_stopped`).
#[test]
#[ignore]
fn child_member() {
    if !is_child() {
        return;
    }
    MemberChild::join("xg", &GroupOptions::new()).send_until_stopped(PACE);
}

/// Three hosts: their runtime directories, engines, proxies and members.
/// Dropped in field order: members, engines, proxies (killed and reaped,
/// threads joined), then the directory.
struct Hosts {
    members: Vec<Option<AppProc>>,
    engines: Vec<Option<EngineProc>>,
    /// `proxies[i][j]`: engine i's way to engine j.
    proxies: Vec<Vec<Option<Proxy>>>,
    runtimes: Vec<PathBuf>,
    ports: Vec<u16>,
    node_timeout_ms: u64,
    /// The leader each engine last named (0: none yet).
    leaders: Vec<u64>,
    /// Every line the engines said, as `index: line`.
    log: Vec<String>,
    top: ringflow_testkit::TempDir,
}

impl Hosts {
    fn start(name: &str, node_timeout_ms: u64) -> Hosts {
        let top = ringflow_testkit::temp_dir(name);
        let runtimes = (0..N).map(|i| private_dir(top.path(), &format!("host{i}"))).collect();
        let ports = free_ports(N);
        let addr = |p: u16| -> SocketAddr { format!("127.0.0.1:{p}").parse().expect("addr") };
        let proxies =
            (0..N).map(|i| (0..N).map(|j| (i != j).then(|| Proxy::start(addr(ports[j])))).collect()).collect();
        let mut h = Hosts {
            members: (0..N).map(|_| None).collect(),
            engines: (0..N).map(|_| None).collect(),
            proxies,
            runtimes,
            ports,
            node_timeout_ms,
            leaders: vec![0; N],
            log: Vec::new(),
            top,
        };
        for i in 0..N {
            h.start_engine(i);
        }
        for (i, name) in NAMES.iter().enumerate() {
            let args = [
                ("DIR", h.top.path().display().to_string()),
                ("NAME", (*name).to_owned()),
                ("RUNTIME", h.runtimes[i].display().to_string()),
            ];
            h.members[i] = Some(AppProc::spawn("child_member", &args));
        }
        h
    }

    /// Starts host `i`'s engine (a fresh one, empty log, same address).
    fn start_engine(&mut self, i: usize) {
        let listen = format!("127.0.0.1:{}", self.ports[i]);
        let via: Vec<String> = (0..N)
            .filter(|j| *j != i)
            .map(|j| format!("127.0.0.1:{}={}", self.ports[j], self.proxies[i][j].as_ref().expect("proxy").addr()))
            .collect();
        let engine = EngineSpec::new(&self.runtimes[i], &listen)
            .cluster_node(self.ports[i], &self.ports)
            .env("RINGFLOW_CLUSTER_GROUPS", "xg")
            .env("RINGFLOW_CLUSTER_NODE_TIMEOUT_MS", &self.node_timeout_ms.to_string())
            .env("RINGFLOW_TEST_CLUSTER_VIA", &via.join(","))
            .start();
        self.engines[i] = Some(engine);
        self.leaders[i] = 0;
    }

    fn host_id(&self, i: usize) -> u64 {
        node_id(self.ports[i], &self.ports)
    }

    /// Cuts (or restores) both directions between hosts `a` and `b`.
    fn link(&self, a: usize, b: usize, up: bool) {
        for (x, y) in [(a, b), (b, a)] {
            let proxy = self.proxies[x][y].as_ref().expect("proxy");
            if up {
                proxy.restore();
            } else {
                proxy.cut();
            }
        }
    }

    fn events(&self, i: usize) -> Vec<String> {
        events(self.top.path(), NAMES[i])
    }

    /// Member `i`'s messages delivered so far.
    fn delivered(&self, i: usize) -> usize {
        self.events(i).iter().filter(|l| l.starts_with("msg ")).count()
    }

    /// Waits until every member in `at` delivered `more` messages beyond
    /// what it has now.
    fn await_flow(&self, at: &[usize], more: usize) {
        let base: Vec<usize> = at.iter().map(|i| self.delivered(*i)).collect();
        wait_until("the members delivering", || {
            let now: Vec<usize> = at.iter().map(|i| self.delivered(*i)).collect();
            if now.iter().zip(&base).all(|(n, b)| *n >= b + more) {
                Ok(())
            } else {
                Err(format!("delivered {now:?} (from {base:?})"))
            }
        });
    }

    /// Stops every sender; returns how many messages each sent.
    fn stop(&mut self) -> Vec<u64> {
        for n in NAMES {
            write_marker(self.top.path(), &format!("stop-{n}"), "");
        }
        let mut sent = Vec::new();
        for (i, n) in NAMES.iter().enumerate() {
            let marker = self.top.path().join(format!("sent-{n}"));
            self.members[i].as_mut().expect("a member").await_marker(&marker);
            sent.push(std::fs::read_to_string(&marker).expect("sent").trim().parse().expect("a count"));
        }
        sent
    }

    /// The leader every live engine names, once they agree.
    fn leader(&mut self) -> u64 {
        let mut leader = 0;
        wait_until("one leader named by every engine", || {
            self.hear();
            // An engine names a leader when it learns of one: a fresh
            // engine may not have yet. Two engines naming one leader, and
            // none naming another, suffice.
            let named: Vec<u64> = (0..N).map(|i| self.leaders[i]).filter(|l| *l != 0).collect();
            leader = named.first().copied().unwrap_or(0);
            if named.len() >= 2 && named.iter().all(|l| *l == leader) {
                Ok(())
            } else {
                let said: Vec<&String> =
                    self.log.iter().filter(|l| l.contains("cluster leader") || l.contains("quorum")).collect();
                Err(format!("leaders named {named:?}; the engines said {said:#?}"))
            }
        });
        leader
    }

    /// What the engines said since the last look (the leaders they named
    /// kept), as `index: line`.
    fn hear(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, e) in self.engines.iter().enumerate() {
            for l in e.iter().flat_map(EngineProc::said) {
                if l.contains("cluster leader") {
                    self.leaders[i] = support::log_field(&l, "leader").unwrap_or(0);
                }
                out.push(format!("{i}: {l}"));
            }
        }
        self.log.extend(out.iter().cloned());
        out
    }

    /// Waits until every receiver r delivered all `sent[s]` messages of
    /// every sender s that `pair(r, s)` names.
    fn await_sent(&self, sent: &[u64], pair: impl Fn(usize, usize) -> bool) {
        wait_until("every message delivered", || {
            let short: Vec<(usize, usize, usize)> = (0..N)
                .flat_map(|r| (0..N).map(move |s| (r, s)))
                .filter(|(r, s)| pair(*r, *s))
                .map(|(r, s)| (r, s, texts_of(&self.events(r), NAMES[s]).len()))
                .filter(|(_, s, n)| (*n as u64) < sent[*s])
                .collect();
            if short.is_empty() {
                Ok(())
            } else {
                Err(format!("(receiver, sender, delivered) short: {short:?} of {sent:?}"))
            }
        });
    }

    /// Waits until every member's last view holds all three.
    fn await_three(&self) {
        wait_until("every member in a view of three", || {
            let last: Vec<Option<String>> =
                (0..N).map(|i| self.events(i).into_iter().rev().find(|l| is_view(l))).collect();
            if last.iter().all(|l| l.as_deref().is_some_and(|l| members_of(l).len() == 3)) {
                Ok(())
            } else {
                Err(format!("last views {last:?}"))
            }
        });
    }
}

/// The agreed stream of a member: from its first view of three on,
/// without its refusals and without the views of its own host alone (a
/// lost quorum and its regain, never agreed).
fn agreed(events: &[String]) -> Vec<String> {
    let at = events.iter().position(|l| is_view(l) && members_of(l).len() == 3).unwrap_or(events.len());
    events[at..]
        .iter()
        .filter(|l| !l.starts_with("refused "))
        .filter(|l| !(l.contains("(QuorumLost") || l.contains("(QuorumRegained")))
        .cloned()
        .collect()
}

/// `sender-1` to `sender-n`.
fn numbered(sender: &str, n: u64) -> Vec<String> {
    (1..=n).map(|k| format!("{sender}-{k}")).collect()
}

/// What a member of host `host` should deliver of `stream` (another
/// member's agreed stream): all of it, except what comes after a view
/// without it and before the next view that holds it again.
fn as_seen_by(stream: &[String], host: u64) -> Vec<String> {
    let holds = |l: &str| members_of(l).iter().any(|m| m.starts_with(&format!("{host}/")));
    let mut out = Vec::new();
    let mut away = false;
    for l in stream {
        if away {
            if is_view(l) && holds(l) {
                away = false;
                out.push(l.clone());
            }
        } else {
            out.push(l.clone());
            away = is_view(l) && !holds(l);
        }
    }
    out
}

/// One host cut off from both others past the node timeout, then healed.
#[test]
fn a_partition_the_majority_goes_on_the_minority_loses_the_quorum_and_comes_back() {
    if is_child() {
        return;
    }
    let mut h = Hosts::start("xg-partition", 1000);
    h.await_flow(&[0, 1, 2], 30);
    let cut = 2;
    let host_c = h.host_id(cut);
    let majority = [0, 1];
    h.link(cut, 0, false);
    h.link(cut, 1, false);
    // The majority goes on, and takes the cut-off node down.
    h.await_flow(&majority, 40);
    wait_until("a node-down view of the cut-off host at the majority", || {
        let seen: Vec<bool> = majority
            .iter()
            .map(|i| h.events(*i).iter().any(|l| is_view(l) && l.contains(&format!("NodeDown {host_c}/"))))
            .collect();
        if seen.iter().all(|s| *s) {
            Ok(())
        } else {
            Err(format!("seen at a, b: {seen:?}"))
        }
    });
    // The minority's member: a view of its own host, then refusals.
    wait_until("the quorum-lost view and a refusal at the cut-off member", || {
        let e = h.events(cut);
        let lost = e.iter().position(|l| is_view(l) && l.contains("(QuorumLost"));
        let refused = e.iter().rposition(|l| l == "refused NoQuorum");
        match (lost, refused) {
            (Some(v), Some(r)) if r > v => Ok(()),
            other => Err(format!("quorum-lost view, last refusal at {other:?}")),
        }
    });
    let e = h.events(cut);
    let lost = e.iter().find(|l| is_view(l) && l.contains("(QuorumLost")).cloned().unwrap_or_default();
    assert!(members_of(&lost).iter().all(|m| m.starts_with(&format!("{host_c}/"))), "only its own host: {lost}");
    assert_eq!(lost.matches("QuorumLost").count(), 2, "both other hosts' members: {lost}");
    let before_heal = texts_of(&h.events(cut), NAMES[cut]).len();

    h.link(cut, 0, true);
    h.link(cut, 1, true);
    // Healed: its view again (the regain, then its join as the majority
    // took it down), and its multicasts reach the others.
    wait_until("the cut-off member in the cluster's view again", || {
        let e = h.events(cut);
        let back = e.iter().position(|l| is_view(l) && l.contains("(QuorumRegained"));
        let joined = e.iter().rposition(|l| is_view(l) && l.contains(&format!("Joined {host_c}/")));
        match (back, joined) {
            (Some(b), Some(j)) if j > b => Ok(()),
            other => Err(format!("regained view, its join at {other:?}")),
        }
    });
    wait_until("the cut-off member's new messages at the majority", || {
        let n: Vec<usize> = majority.iter().map(|i| texts_of(&h.events(*i), NAMES[cut]).len()).collect();
        if n.iter().all(|n| *n > before_heal + 10) {
            Ok(())
        } else {
            Err(format!("its messages at a, b {n:?} (it had sent about {before_heal} before the heal)"))
        }
    });
    let sent = h.stop();
    // Every message sent is delivered at every host, once, in order (the
    // cut-off member's: none lost with the partition).
    h.await_sent(&sent, |r, s| r != cut || s == cut);
    let streams: Vec<Vec<String>> = (0..N).map(|i| agreed(&h.events(i))).collect();
    for r in 0..N {
        for s in 0..N {
            if r != cut || s == cut {
                assert_eq!(
                    texts_of(&streams[r], NAMES[s]),
                    numbered(NAMES[s], sent[s]),
                    "{}'s at {}",
                    NAMES[s],
                    NAMES[r]
                );
            }
        }
    }
    let shortest = streams[0].len().min(streams[1].len());
    assert_eq!(streams[0][..shortest], streams[1][..shortest], "the majority's members delivered different sequences");
    // The cut-off member: what the majority delivered in every view that
    // held it, in the same order.
    let want = as_seen_by(&streams[0], host_c);
    wait_until("the cut-off member delivered all it should", || {
        let n = agreed(&h.events(cut)).len();
        if n >= want.len() {
            Ok(())
        } else {
            Err(format!("{n} of {} events", want.len()))
        }
    });
    let got = agreed(&h.events(cut));
    assert_eq!(got, want, "the cut-off member delivered another sequence");
    assert!(
        got.iter().any(|l| is_view(l) && l.contains(&format!("NodeDown {host_c}/"))),
        "it saw its own removal before its join"
    );
}

/// A member's agreed stream since its host's engine last came back: after
/// the last view of its own host alone (every member host 0).
fn stretch(events: &[String]) -> Vec<String> {
    let all = agreed(events);
    let alone = |l: &String| is_view(l) && members_of(l).iter().all(|m| m.starts_with("0/"));
    let at = all.iter().rposition(alone).map_or(0, |p| p + 1);
    all[at..].to_vec()
}

/// Whether two members' streams are one from the first view they share on
/// (to the shorter's end).
fn one_stream(x: &[String], y: &[String]) -> Result<(), String> {
    let (ix, iy) = y
        .iter()
        .enumerate()
        .filter(|(_, l)| is_view(l))
        .find_map(|(iy, l)| x.iter().position(|m| m == l).map(|ix| (ix, iy)))
        .ok_or("no view in common")?;
    let (x, y) = (&x[ix..], &y[iy..]);
    let n = x.len().min(y.len());
    match (0..n).find(|k| x[*k] != y[*k]) {
        None => Ok(()),
        Some(k) => Err(format!("they differ at {k} after {:?}: {:?} vs {:?}", x[0], x[k], y[k])),
    }
}

/// The numbers of `texts` (`name-n`).
fn numbers(texts: &[String]) -> Vec<u64> {
    texts.iter().filter_map(|t| t.rsplit('-').next()?.parse().ok()).collect()
}

/// A small xorshift, seeded from the clock (printed, to replay a run).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
        println!("seed {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Links cut for less than the node timeout, many times, at random
/// moments, while every member multicasts: nothing lost, duplicated or
/// reordered, one sequence of views and messages at every member, and no
/// node taken down.
#[test]
fn link_cuts_shorter_than_the_node_timeout_lose_nothing() {
    if is_child() {
        return;
    }
    const CUTS: usize = 12;
    let mut h = Hosts::start("xg-cuts", 3000);
    h.await_flow(&[0, 1, 2], 30);
    let mut rng = Rng::new();
    for _ in 0..CUTS {
        let a = rng.below(N as u64) as usize;
        let b = (a + 1 + rng.below(N as u64 - 1) as usize) % N;
        h.link(a, b, false);
        std::thread::sleep(Duration::from_millis(50 + rng.below(350)));
        h.link(a, b, true);
        std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
    }
    h.await_flow(&[0, 1, 2], 30);
    let sent = h.stop();
    h.await_sent(&sent, |_, _| true);
    let streams: Vec<Vec<String>> = (0..N).map(|i| agreed(&h.events(i))).collect();
    for r in 0..N {
        for s in 0..N {
            assert_eq!(texts_of(&streams[r], NAMES[s]), numbered(NAMES[s], sent[s]), "{}'s at {}", NAMES[s], NAMES[r]);
        }
        assert_eq!(streams[r], streams[0], "{} delivered another sequence than a", NAMES[r]);
        let e = h.events(r);
        assert!(!e.iter().any(|l| l.starts_with("refused ")), "a multicast refused at {}", NAMES[r]);
        let views: Vec<&String> = streams[r].iter().filter(|l| is_view(l)).collect();
        assert_eq!(views.len(), 1, "views after the one of three at {}: {views:?}", NAMES[r]);
    }
}

/// kill -9 of the leader's engine, then of a follower's, in turn, while
/// every member multicasts; each replaced by a fresh engine before the
/// next. After each kill the survivors' members deliver one sequence and
/// lose nothing of each other's senders across the fault.
#[test]
fn kill_9_of_leader_and_follower_engines_mid_stream() {
    if is_child() {
        return;
    }
    const ROUNDS: usize = 6;
    let mut h = Hosts::start("xg-kills", 1000);
    h.await_flow(&[0, 1, 2], 30);
    let mut took = Vec::new();
    for round in 0..ROUNDS {
        h.await_three();
        h.await_flow(&[0, 1, 2], 20);
        let leader = h.leader();
        let leaders_host = (0..N).find(|i| h.host_id(*i) == leader).expect("the leader is a host");
        let victim = if round % 2 == 0 { leaders_host } else { (leaders_host + 1 + round / 2 % 2) % N };
        let role = if victim == leaders_host { "leader" } else { "follower" };
        let host = h.host_id(victim);
        let survivors: Vec<usize> = (0..N).filter(|i| *i != victim).collect();
        let downs = |h: &Hosts, i: usize| {
            h.events(i).iter().filter(|l| is_view(l) && l.contains(&format!("NodeDown {host}/"))).count()
        };
        let before: Vec<usize> = survivors.iter().map(|i| downs(&h, *i)).collect();
        let marks: Vec<usize> = survivors.iter().map(|i| h.events(*i).len()).collect();
        let killed = Instant::now();
        h.engines[victim].as_mut().expect("an engine").kill();
        h.engines[victim] = None;
        let mut seen: Vec<Option<Duration>> = vec![None; survivors.len()];
        wait_until("the node-down view at the survivors", || {
            h.hear();
            for (k, i) in survivors.iter().enumerate() {
                if seen[k].is_none() && downs(&h, *i) > before[k] {
                    seen[k] = Some(killed.elapsed());
                }
            }
            if seen.iter().all(Option::is_some) {
                Ok(())
            } else {
                let views: Vec<Vec<String>> =
                    survivors.iter().map(|i| h.events(*i).into_iter().filter(|l| is_view(l)).collect()).collect();
                let said: Vec<&String> =
                    h.log.iter().filter(|l| l.contains("node down") || l.contains("reason: Node")).collect();
                Err(format!(
                    "seen after {seen:?}; host {host}; the survivors' views {views:?}; the engines said {said:#?}"
                ))
            }
        });
        println!("round {round}: kill -9 of the {role}'s engine (host {host}); node-down view at the survivors after {seen:?} (node timeout {} ms)", h.node_timeout_ms);
        took.extend(seen.iter().flatten().copied());
        h.await_flow(&survivors, 20);
        let (x, y) = (stretch(&h.events(survivors[0])), stretch(&h.events(survivors[1])));
        if let Err(why) = one_stream(&x, &y) {
            let views =
                |i: usize| -> Vec<String> { h.events(i).into_iter().filter(|l| !l.starts_with("msg ")).collect() };
            panic!(
                "round {round}: the survivors delivered different sequences: {why}\n{:?}\n{:?}",
                views(survivors[0]),
                views(survivors[1])
            );
        }
        // The survivors' senders: nothing lost or repeated across the kill.
        for (k, r) in survivors.iter().enumerate() {
            let e = h.events(*r);
            for s in &survivors {
                let before = numbers(&texts_of(&e[..marks[k]], NAMES[*s]));
                let after = numbers(&texts_of(&e[marks[k]..], NAMES[*s]));
                let from = before.last().copied().unwrap_or(0);
                let want: Vec<u64> = (from + 1..from + 1 + after.len() as u64).collect();
                assert_eq!(after, want, "round {round}: {}'s messages at {} after the kill", NAMES[*s], NAMES[*r]);
            }
        }
        h.start_engine(victim);
    }
    h.await_three();
    h.await_flow(&[0, 1, 2], 20);
    let sent = h.stop();
    for (r, receiver) in NAMES.iter().enumerate() {
        let e = h.events(r);
        for (s, sender) in NAMES.iter().enumerate() {
            let n = numbers(&texts_of(&e, sender));
            assert!(n.windows(2).all(|w| w[0] < w[1]), "{sender}'s messages at {receiver} repeated or reordered");
            assert!(n.last().is_none_or(|l| *l <= sent[s]), "{sender}'s messages at {receiver}: more than it sent");
        }
    }
    let mean = took.iter().sum::<Duration>() / took.len().max(1) as u32;
    println!("kill -9 to the node-down view at the survivors: {took:?}, mean {mean:?}");
}
