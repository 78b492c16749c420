//! Three `ringflow engine` processes on loopback with `cluster.enabled`:
//! their Raft nodes agree on a leader over the engines' links, commit every
//! node's "node up" entry in one order everywhere; kill -9 of the leader's
//! engine elects another among the two left, and a fresh engine started in
//! its place catches up with the very same log and takes the dead run's
//! place (a node-up). Their log lines (the
//! `ringflow_core::cluster` target) are what the test reads.

use std::time::Instant;

mod support;

use support::{free_ports, log_field, node_id, wait_until, EngineProc, EngineSpec};

/// What one engine said: its latest leader and every committed entry.
#[derive(Default)]
struct Seen {
    leader: u64,
    term: u64,
    /// "index=... term=... applied=..." of each committed entry, in order.
    committed: Vec<String>,
}

fn look(proc: &EngineProc, seen: &mut Seen) {
    for line in proc.said() {
        if line.contains("cluster leader") {
            seen.leader = log_field(&line, "leader").unwrap_or(0);
            seen.term = log_field(&line, "term").unwrap_or(0);
        } else if line.contains("cluster committed") {
            if let Some(at) = line.find("index=") {
                seen.committed.push(line[at..].to_owned());
            }
        }
    }
}

fn start(dir: &std::path::Path, port: u16, all: &[u16]) -> EngineProc {
    let listen = format!("127.0.0.1:{port}");
    EngineSpec::new(dir, &listen).cluster_node(port, all).start()
}

#[test]
fn engines_agree_and_a_killed_leader_is_replaced_and_its_engine_caught_up() {
    let dirs: Vec<_> = (0..3).map(|i| ringflow_testkit::temp_dir(&format!("cluster-{i}"))).collect();
    let all = free_ports(3);
    let mut procs: Vec<EngineProc> = (0..3).map(|i| start(dirs[i].path(), all[i], &all)).collect();
    let mut seen: Vec<Seen> = (0..3).map(|_| Seen::default()).collect();

    // One leader known to all; every engine's "node up" committed in one
    // order everywhere (three views of the nodes' group).
    wait_until("one leader and three node-up entries everywhere", || {
        for (p, s) in procs.iter().zip(seen.iter_mut()) {
            look(p, s);
        }
        let leaders: Vec<u64> = seen.iter().map(|s| s.leader).collect();
        let joined = seen.iter().all(|s| s.committed.len() >= 3);
        if leaders[0] != 0 && leaders.iter().all(|l| *l == leaders[0]) && joined {
            Ok(())
        } else {
            Err(format!(
                "leaders {leaders:?}, committed {:?}",
                seen.iter().map(|s| s.committed.len()).collect::<Vec<_>>()
            ))
        }
    });
    for s in &seen[1..] {
        assert_eq!(s.committed[..3], seen[0].committed[..3], "another order on another engine");
    }
    // `ringflow stat` shows each engine's node: its id, the leader, the
    // quorum, and its peers (the leader's with their match indexes).
    for (i, dir) in dirs.iter().enumerate() {
        let id = node_id(all[i], &all);
        let leader = seen[i].leader;
        wait_until("the cluster in `ringflow stat`", || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringflow"))
                .args(["stat", "--once", "--window-ms", "1", "--runtime-dir"])
                .arg(dir.path())
                .output()
                .expect("run ringflow stat");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let node = format!("cluster node {id}: term ");
            let peers = text.matches("    peer ").count();
            let shown =
                text.contains(&node) && text.contains(&format!("leader {leader},")) && text.contains("quorum yes");
            let matched = id != leader || !text.contains("match -");
            if shown && peers == 2 && matched && text.contains(": up, match") {
                Ok(())
            } else {
                Err(text)
            }
        });
    }
    let old = seen[0].leader;
    let old_term = seen[0].term;
    let gone = (0..3).find(|i| node_id(all[*i], &all) == old).expect("the leader is one of them");

    // kill -9 of the leader's engine.
    procs[gone].kill();
    let killed = Instant::now();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != gone).collect();
    wait_until("a new leader among the two left", || {
        for i in &survivors {
            look(&procs[*i], &mut seen[*i]);
        }
        let ok = survivors.iter().all(|i| seen[*i].leader != 0 && seen[*i].leader != old)
            && seen[survivors[0]].leader == seen[survivors[1]].leader;
        if ok {
            Ok(())
        } else {
            Err(format!("leaders {:?}", survivors.iter().map(|i| seen[*i].leader).collect::<Vec<_>>()))
        }
    });
    // A figure for tuning.md, not an assertion: elections are randomised.
    eprintln!(
        "cluster: a new leader {:?} after the leader's kill -9 (tick 10 ms, election 30 ticks)",
        killed.elapsed()
    );
    assert!(seen[survivors[0]].term > old_term, "a new leader in the old term");

    // A fresh engine in the dead one's place (empty log, same address):
    // it catches up with the whole log, and its own node-up is committed
    // after it, the same at all three.
    procs[gone] = start(dirs[gone].path(), all[gone], &all);
    seen[gone] = Seen::default();
    wait_until("the fresh engine holds the same log as the others", || {
        for (p, s) in procs.iter().zip(seen.iter_mut()) {
            look(p, s);
        }
        let lens: Vec<usize> = seen.iter().map(|s| s.committed.len()).collect();
        let same = lens[gone] >= 4 && seen.iter().all(|s| s.committed == seen[gone].committed);
        if same {
            Ok(())
        } else {
            Err(format!("committed {lens:?}"))
        }
    });
    // The fresh run took the dead one's place in the nodes' group: its
    // join is a node-up, and the group holds three runs.
    let last = seen[gone].committed.last().expect("entries").clone();
    assert!(last.contains("NodeUp"), "{last}");
    let members = last.split("reason").next().unwrap_or_default();
    assert_eq!(members.matches("Member {").count(), 3, "{last}");
}
