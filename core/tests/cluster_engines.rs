//! Three engines in one process, on loopback, each running a cluster node
//! over the bridge's links (`Cluster` frames): one leader, one order of
//! everyone's proposals everywhere, and a new leader after the leader's
//! engine stops, with nothing committed lost. (Engines in separate
//! processes and kill -9 are the next step: see the cluster's notes.)
#![cfg(feature = "cluster")]

use std::collections::HashSet;
use std::net::TcpListener;
use std::sync::mpsc::Receiver;

use ringflow_core::cluster::{Applied, Command, Committed};
use ringflow_core::config::EngineConfig;
use ringflow_core::remote::RemoteEngine;
use ringflow_testkit::wait_for;

struct Node {
    engine: RemoteEngine,
    committed: Receiver<Committed>,
    seen: Vec<(u64, u64, u64)>,
}

impl Node {
    fn drain(&mut self) {
        for c in self.committed.try_iter() {
            if let Applied::Message { sender, seq, .. } = c.applied {
                self.seen.push((c.index, sender, seq));
            }
        }
    }

    fn status(&self) -> ringflow_core::cluster::ClusterStatus {
        self.engine.cluster().expect("cluster").status()
    }
}

/// Free loopback ports (bound then released: another process could take
/// one in between, which would fail the start loudly, not silently).
fn ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

fn start(port: u16, all: &[u16], dir: &std::path::Path) -> Node {
    let peers: Vec<String> = all.iter().filter(|p| **p != port).map(|p| format!("127.0.0.1:{p}")).collect();
    let config = EngineConfig::builder()
        .listen(Some(&format!("127.0.0.1:{port}")))
        .peers(peers.iter().map(String::as_str))
        .cluster(true)
        .cluster_tick_ms(5)
        .cluster_election_ticks(20)
        .cluster_heartbeat_ticks(2)
        .build()
        .expect("config");
    let engine = RemoteEngine::start(&config, Some(dir.to_owned())).expect("engine");
    let committed = engine.take_cluster_committed().expect("committed stream");
    Node { engine, committed, seen: Vec::new() }
}

fn agreed_leader(nodes: &[Option<Node>]) -> Option<u64> {
    let leaders: HashSet<u64> = nodes.iter().flatten().map(|n| n.status().leader).collect();
    let leader = *leaders.iter().next()?;
    (leaders.len() == 1 && leader != 0).then_some(leader)
}

fn message(sender: u64, seq: u64) -> Command {
    Command::Message { group: "g".into(), sender, seq, bytes: vec![seq as u8] }
}

#[test]
fn three_engines_agree_order_and_survive_their_leader() {
    ringflow_testkit::isolate_runtime_dir();
    let dir = ringflow_testkit::temp_dir("cluster-engines");
    let all = ports(3);
    let mut nodes: Vec<Option<Node>> = all.iter().map(|p| Some(start(*p, &all, dir.path()))).collect();
    wait_for("a leader all three engines know", || agreed_leader(&nodes).is_some());
    // Node ids are by sorted address: index i of the sorted ports is id i+1.
    let mut sorted = all.clone();
    sorted.sort();
    let index_of = |id: u64| all.iter().position(|p| *p == sorted[id as usize - 1]).expect("known id");

    const EACH: u64 = 10;
    for seq in 1..=EACH {
        for (i, node) in nodes.iter().flatten().enumerate() {
            let handle = node.engine.cluster().expect("cluster");
            handle.propose(&[message(i as u64 + 1, seq)]).expect("queued");
        }
    }
    // A proposal made during an election is dropped; none is here (the
    // leader was agreed first), but re-proposing would be the sender's.
    wait_for("thirty messages committed everywhere", || {
        nodes.iter_mut().flatten().all(|n| {
            n.drain();
            n.seen.len() == 3 * EACH as usize
        })
    });
    let first = nodes[0].as_ref().expect("live").seen.clone();
    for node in nodes.iter().flatten() {
        assert_eq!(node.seen, first, "another order on another engine");
    }

    // The leader's engine stops: the other two elect one of themselves
    // and go on, keeping every committed entry.
    let old = agreed_leader(&nodes).expect("leader");
    let gone = index_of(old);
    let engine = nodes[gone].take().expect("live").engine;
    engine.shutdown().expect("shutdown");
    wait_for("a new leader among the two left", || agreed_leader(&nodes).is_some_and(|l| l != old));
    let survivor = nodes.iter().flatten().next().expect("a survivor");
    for seq in EACH + 1..=EACH + 5 {
        survivor.engine.cluster().expect("cluster").propose(&[message(9, seq)]).expect("queued");
    }
    wait_for("five more committed at both survivors", || {
        nodes.iter_mut().flatten().all(|n| {
            n.drain();
            n.seen.len() == 3 * EACH as usize + 5
        })
    });
    for node in nodes.iter().flatten() {
        assert_eq!(&node.seen[..first.len()], &first[..], "a committed entry changed");
    }
    for node in nodes.into_iter().flatten() {
        node.engine.shutdown().expect("shutdown");
    }
}
