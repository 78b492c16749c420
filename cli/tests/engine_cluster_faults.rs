//! Three `ringflow engine` processes with `cluster.enabled` under faults,
//! with proposals flowing all along (each engine's test feed,
//! `RINGFLOW_TEST_CLUSTER_FEED`: AGREED messages of its own, one in flight,
//! re-proposed when lost). Every link between two engines runs through a
//! proxy of the test's (`RINGFLOW_TEST_CLUSTER_VIA`), which cuts and restores it.
//!
//! Faults, in turn: link cuts shorter than the node timeout at random
//! moments (nothing taken down); the leader cut off from both others (a
//! partition: the majority elects another leader and goes on, the old one
//! reports the quorum lost and its feed is refused; then it is proposed
//! down, and when the links heal it comes back up); kill -9 of a follower
//! and of the leader, mid-stream, many times, each replaced by a fresh
//! engine. After each fault the committed logs of every engine must agree
//! entry by entry where they overlap, and every feed's sequence numbers
//! must follow one another without a gap or a repeat. Its log lines (the
//! `ringflow_core::cluster` target) are what the test reads; the times it
//! prints are figures for tuning.md, never assertions.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod support;

use ringflow_testkit::Proxy;
use support::{free_ports, log_field, wait_until, EngineProc, EngineSpec};

const N: usize = 3;
/// `cluster.node_timeout_ms` of these engines.
const NODE_TIMEOUT_MS: u64 = 1000;

/// What one engine said.
#[derive(Default)]
struct Seen {
    leader: u64,
    term: u64,
    /// The last quorum it reported (`None`: none reported yet).
    quorum: Option<bool>,
    /// Its feed was refused for want of a quorum.
    refused: bool,
    /// Committed entries: index → what each applied (in order).
    committed: BTreeMap<u64, Vec<String>>,
}

fn look(proc: &EngineProc, seen: &mut Seen) {
    for line in proc.said() {
        if line.contains("cluster leader") {
            seen.leader = log_field(&line, "leader").unwrap_or(0);
            seen.term = log_field(&line, "term").unwrap_or(0);
        } else if line.contains("cluster committed") {
            let applied = line.split("applied=").nth(1).unwrap_or_default().to_owned();
            if let Some(index) = log_field(&line, "index") {
                seen.committed.entry(index).or_default().push(applied);
            }
        } else if line.contains("cluster quorum lost") {
            seen.quorum = Some(false);
        } else if line.contains("cluster quorum regained") {
            seen.quorum = Some(true);
        } else if line.contains("cluster feed refused") {
            seen.refused = true;
        }
    }
}

/// The feed's messages in log order: (sender, seq).
fn feed(seen: &Seen) -> Vec<(u64, u64)> {
    seen.committed
        .values()
        .flatten()
        .filter(|a| a.contains("ringflow.feed"))
        .filter_map(|a| Some((number_after(a, "sender: ")?, number_after(a, "seq: ")?)))
        .collect()
}

fn number_after(text: &str, label: &str) -> Option<u64> {
    let at = text.find(label)? + label.len();
    text[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn count(seen: &Seen, needle: &str) -> usize {
    seen.committed.values().flatten().filter(|a| a.contains(needle)).count()
}

struct Cluster {
    dirs: Vec<ringflow_testkit::TempDir>,
    ports: Vec<u16>,
    /// `proxies[i][j]`: engine i's way to engine j.
    proxies: Vec<Vec<Option<Proxy>>>,
    procs: Vec<Option<EngineProc>>,
    seen: Vec<Seen>,
}

impl Cluster {
    fn start() -> Cluster {
        let ports = free_ports(N);
        let addr = |p: u16| -> SocketAddr { format!("127.0.0.1:{p}").parse().expect("addr") };
        let proxies =
            (0..N).map(|i| (0..N).map(|j| (i != j).then(|| Proxy::start(addr(ports[j])))).collect()).collect();
        let dirs = (0..N).map(|i| ringflow_testkit::temp_dir(&format!("clf-{i}"))).collect();
        let mut c = Cluster { dirs, ports, proxies, procs: (0..N).map(|_| None).collect(), seen: Vec::new() };
        c.seen = (0..N).map(|_| Seen::default()).collect();
        for i in 0..N {
            c.spawn(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let listen = format!("127.0.0.1:{}", self.ports[i]);
        let peers: Vec<String> = (0..N).filter(|j| *j != i).map(|j| format!("127.0.0.1:{}", self.ports[j])).collect();
        let via: Vec<String> = (0..N)
            .filter(|j| *j != i)
            .map(|j| format!("127.0.0.1:{}={}", self.ports[j], self.proxies[i][j].as_ref().expect("proxy").addr()))
            .collect();
        let proc = EngineSpec::new(self.dirs[i].path(), &listen)
            .env("RINGFLOW_NET_PEERS", &peers.join(", "))
            .env("RINGFLOW_CLUSTER_ENABLED", "true")
            .env("RINGFLOW_CLUSTER_TICK_MS", "10")
            .env("RINGFLOW_CLUSTER_ELECTION_TICKS", "20")
            .env("RINGFLOW_CLUSTER_HEARTBEAT_TICKS", "3")
            .env("RINGFLOW_CLUSTER_NODE_TIMEOUT_MS", &NODE_TIMEOUT_MS.to_string())
            .env("RINGFLOW_CLUSTER_COMPACT_AFTER", "1000000")
            .env("RINGFLOW_TEST_CLUSTER_FEED", "20")
            .env("RINGFLOW_TEST_CLUSTER_VIA", &via.join(","))
            .env("RINGFLOW_LOG", "ringflow_core::cluster=debug")
            .start();
        self.procs[i] = Some(proc);
        self.seen[i] = Seen::default();
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            p.kill();
        }
    }

    fn live(&self) -> Vec<usize> {
        (0..N).filter(|i| self.procs[*i].is_some()).collect()
    }

    fn look(&mut self) {
        for i in 0..N {
            if let Some(p) = &self.procs[i] {
                look(p, &mut self.seen[i]);
            }
        }
    }

    /// The node id of engine `i` (ids follow the sorted addresses).
    fn id_of(&self, i: usize) -> u64 {
        let mut sorted = self.ports.clone();
        sorted.sort();
        sorted.iter().position(|p| *p == self.ports[i]).expect("known") as u64 + 1
    }

    fn index_of(&self, id: u64) -> usize {
        (0..N).find(|i| self.id_of(*i) == id).expect("a node")
    }

    /// Cuts (or restores) both directions between engines `a` and `b`.
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

    /// The leader every engine in `among` names, once they agree.
    fn await_leader(&mut self, among: &[usize], not: u64) -> u64 {
        let mut leader = 0;
        wait_until("one leader agreed", || {
            self.look();
            let named: Vec<u64> = among.iter().map(|i| self.seen[*i].leader).collect();
            leader = named[0];
            if leader != 0 && leader != not && named.iter().all(|l| *l == leader) {
                Ok(())
            } else {
                Err(format!("leaders {named:?}"))
            }
        });
        leader
    }

    /// Waits until every engine of `among` committed `more` feed messages
    /// beyond what it has now.
    fn await_flow(&mut self, among: &[usize], more: usize) {
        self.look();
        let base: HashMap<usize, usize> = among.iter().map(|i| (*i, feed(&self.seen[*i]).len())).collect();
        wait_until("the feed flowing", || {
            self.look();
            let now: Vec<usize> = among.iter().map(|i| feed(&self.seen[*i]).len()).collect();
            if among.iter().zip(&now).all(|(i, n)| *n >= base[i] + more) {
                Ok(())
            } else {
                Err(format!("feed messages {now:?} (from {base:?})"))
            }
        });
    }

    /// Every pair of engines agrees wherever both logged an index; every
    /// feed's sequence numbers follow one another.
    fn check(&mut self, when: &str) {
        self.look();
        let live = self.live();
        for a in &live {
            for b in &live {
                for (index, applied) in &self.seen[*a].committed {
                    if let Some(other) = self.seen[*b].committed.get(index) {
                        assert_eq!(applied, other, "{when}: engines {a} and {b} differ at index {index}");
                    }
                }
            }
            let mut last: HashMap<u64, u64> = HashMap::new();
            for (sender, seq) in feed(&self.seen[*a]) {
                if let Some(prev) = last.insert(sender, seq) {
                    assert_eq!(seq, prev + 1, "{when}: engine {a}, sender {sender}: {prev} then {seq}");
                } else {
                    assert_eq!(seq, 1, "{when}: engine {a}, sender {sender} starts at {seq}");
                }
            }
        }
    }
}

/// A small deterministic generator (the seed is printed, to replay a run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn engines_survive_link_cuts_partitions_and_kills_with_one_log() {
    ringflow_testkit::isolate_runtime_dir();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    eprintln!("cluster faults: seed {seed}");
    let mut rng = Lcg(seed);
    let mut c = Cluster::start();
    let all: Vec<usize> = (0..N).collect();
    c.await_leader(&all, 0);
    c.await_flow(&all, 10);
    c.check("at the start");

    // 1. Link cuts shorter than the node timeout, at random moments: no
    // node is taken down, nothing is lost or repeated.
    for _ in 0..6 {
        let a = rng.next(N as u64) as usize;
        let b = (a + 1 + rng.next(N as u64 - 1) as usize) % N;
        std::thread::sleep(Duration::from_millis(rng.next(200)));
        c.link(a, b, false);
        std::thread::sleep(Duration::from_millis(100 + rng.next(300)));
        c.link(a, b, true);
    }
    c.await_flow(&all, 10);
    c.check("after short cuts");
    for i in &all {
        assert_eq!(count(&c.seen[*i], "NodeDown"), 0, "a short cut took a node down");
    }

    // 2. A partition: the leader alone. The majority elects another and
    // goes on; the old leader loses the quorum and its feed is refused;
    // the new leader proposes it down after the node timeout.
    let old = c.await_leader(&all, 0);
    let cut_off = c.index_of(old);
    let majority: Vec<usize> = all.iter().copied().filter(|i| *i != cut_off).collect();
    for i in &majority {
        c.link(cut_off, *i, false);
    }
    let cut_at = Instant::now();
    let new = c.await_leader(&majority, old);
    eprintln!("cluster faults: a new leader {:?} after the leader's links were cut", cut_at.elapsed());
    c.await_flow(&majority, 10);
    let down = format!("NodeDown {{ host: {old} }}");
    wait_until("the cut-off node down at the majority, its quorum lost", || {
        c.look();
        let downs: Vec<usize> = majority.iter().map(|i| count(&c.seen[*i], &down)).collect();
        let s = &c.seen[cut_off];
        if downs.iter().all(|n| *n > 0) && s.quorum == Some(false) && s.refused {
            Ok(())
        } else {
            Err(format!("node-down views {downs:?}, quorum {:?}, refused {}", s.quorum, s.refused))
        }
    });
    eprintln!("cluster faults: node {old} down at the majority {:?} after its links were cut", cut_at.elapsed());
    assert_eq!(count(&c.seen[cut_off], &down), 0, "the minority committed its own removal");
    // Healed: it catches up, comes back up (a node-up at all three).
    for i in &majority {
        c.link(cut_off, *i, true);
    }
    let up = format!("NodeUp {{ host: {old},");
    wait_until("the cut-off node up again everywhere, with the quorum", || {
        c.look();
        let ups: Vec<usize> = all.iter().map(|i| count(&c.seen[*i], &up)).collect();
        if ups.iter().all(|n| *n > 0) && c.seen[cut_off].quorum == Some(true) {
            Ok(())
        } else {
            Err(format!("node-up views {ups:?}, quorum {:?}", c.seen[cut_off].quorum))
        }
    });
    let _ = new;
    c.await_flow(&all, 10);
    c.check("after the partition");

    // 3. kill -9 of a follower, then of the leader, mid-stream, three times
    // each; a fresh engine takes each one's place.
    for round in 0..3 {
        for kill_leader in [false, true] {
            let live = c.live();
            let leader = c.await_leader(&live, 0);
            let victim = if kill_leader {
                c.index_of(leader)
            } else {
                *live.iter().find(|i| c.id_of(**i) != leader).expect("a follower")
            };
            let id = c.id_of(victim);
            std::thread::sleep(Duration::from_millis(rng.next(100)));
            c.check("before a kill");
            c.kill(victim);
            let killed = Instant::now();
            let survivors: Vec<usize> = all.iter().copied().filter(|i| *i != victim).collect();
            if kill_leader {
                c.await_leader(&survivors, id);
                eprintln!("cluster faults: a new leader {:?} after the leader's kill -9", killed.elapsed());
            }
            if round == 0 {
                // Wait for its removal, to measure it.
                let down = format!("NodeDown {{ host: {id} }}");
                let before: Vec<usize> = survivors.iter().map(|i| count(&c.seen[*i], &down)).collect();
                wait_until("the killed node down at the survivors", || {
                    c.look();
                    let now: Vec<usize> = survivors.iter().map(|i| count(&c.seen[*i], &down)).collect();
                    if now.iter().zip(&before).all(|(n, b)| n > b) {
                        Ok(())
                    } else {
                        Err(format!("node-down views {now:?}"))
                    }
                });
                eprintln!(
                    "cluster faults: node {id} down at the survivors {:?} after its kill -9 (node timeout {} ms)",
                    killed.elapsed(),
                    NODE_TIMEOUT_MS
                );
            }
            c.await_flow(&survivors, 5);
            c.spawn(victim);
            c.await_flow(&all, 10);
            c.check("after a kill");
        }
    }
    // Every engine that runs now, each a fresh one at least once or the
    // survivor of every fault, holds the whole log from its first command.
    c.look();
    let first: Vec<Option<u64>> = all.iter().map(|i| c.seen[*i].committed.keys().next().copied()).collect();
    assert!(first.iter().all(|f| f.is_some() && *f == first[0]), "first indexes {first:?}");
    c.check("at the end");
}
