//! A group that crosses hosts through invoker-mode engines (no engine
//! thread: the members' calls drive their host's engine, as a remote
//! flow's do): members on two hosts see each other and exchange messages,
//! and while neither calls in for several node timeouts the engines' minders
//! keep the cluster's heartbeats going, so nobody is taken for down.
#![cfg(feature = "cluster")]

use std::time::Duration;

use ringflow_core::config::{EngineConfig, ThreadingMode};
use ringflow_core::group::{Event, GroupEnd, GroupOptions, Guarantee, RecvError};
use ringflow_core::remote::RemoteEngine;
use ringflow_core::Deadline;

const GROUP: &str = "xg-invoker";
/// Silence after which the leader proposes a node's removal.
const NODE_TIMEOUT_MS: u64 = 300;

fn start(i: usize, ports: &[u16], dir: &std::path::Path) -> RemoteEngine {
    let peers: Vec<String> =
        ports.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| format!("127.0.0.1:{p}")).collect();
    let config = EngineConfig::builder()
        .mode(ThreadingMode::Invoker)
        .listen(Some(&format!("127.0.0.1:{}", ports[i])))
        .peers(peers.iter().map(String::as_str))
        .cluster(true)
        .cluster_tick_ms(10)
        .cluster_election_ticks(10)
        .cluster_heartbeat_ticks(2)
        .cluster_node_timeout_ms(NODE_TIMEOUT_MS)
        .cluster_group(GROUP, Guarantee::Agreed)
        .build()
        .expect("config");
    let engine = RemoteEngine::start(&config, Some(dir.to_owned())).expect("engine");
    assert!(engine.invoker().is_some(), "an invoker-mode engine");
    engine
}

/// The next message's payload at `member`, with the views delivered before it.
fn next_message(member: &mut GroupEnd) -> (Vec<u8>, usize) {
    let mut views = 0;
    loop {
        match member.recv(Deadline::after(Duration::from_secs(20))) {
            Ok(Event::Message(m)) => return (m.payload().expect("in place").to_vec(), views),
            Ok(Event::View(_)) => views += 1,
            Ok(Event::Lost { .. }) => panic!("an AGREED group lost messages"),
            Err(e) => panic!("no message: {e}"),
        }
    }
}

#[test]
fn members_drive_their_engines_and_minders_keep_idle_hosts_in_the_view() {
    ringflow_testkit::isolate_runtime_dir();
    let dirs = [ringflow_testkit::temp_dir("xg-invoker-a"), ringflow_testkit::temp_dir("xg-invoker-b")];
    let ports = ringflow_testkit::listen_ports(2);
    let engines: Vec<RemoteEngine> = (0..2).map(|i| start(i, &ports, dirs[i].path())).collect();
    let mut members: Vec<GroupEnd> = (0..2)
        .map(|i| {
            let opts =
                GroupOptions::new().loopback(false).runtime_dir(dirs[i].path()).invoker(engines[i].invoker().cloned());
            GroupEnd::join(GROUP, &opts, Deadline::after(Duration::from_secs(20))).expect("join")
        })
        .collect();
    // Each member's receive drives its own engine; the other host's minder
    // drives that one meanwhile.
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while members.iter().any(|m| m.members().len() < 2) {
        assert!(std::time::Instant::now() < until, "no view of both members");
        for m in &mut members {
            match m.recv(Deadline::after(Duration::from_millis(20))) {
                Ok(_) | Err(RecvError::TimedOut | RecvError::WouldBlock) => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
    let hosts: Vec<u64> = members.iter().map(|m| m.crossing_host().expect("a crossing group")).collect();
    assert_ne!(hosts[0], hosts[1], "one member per host");
    let view_ids: Vec<u64> = members.iter().map(GroupEnd::view_id).collect();

    // Nobody calls in for five node timeouts: only the minders run the
    // engines. Without them the leader would take the other node for down
    // and a view without its member would follow.
    std::thread::sleep(Duration::from_millis(5 * NODE_TIMEOUT_MS));

    members[0].mcast(b"ping", Deadline::after(Duration::from_secs(20))).expect("ping");
    let (ping, views) = next_message(&mut members[1]);
    assert_eq!(ping, b"ping");
    assert_eq!(views, 0, "a view change while the hosts were idle");
    members[1].mcast(b"pong", Deadline::after(Duration::from_secs(20))).expect("pong");
    let (pong, views) = next_message(&mut members[0]);
    assert_eq!(pong, b"pong");
    assert_eq!(views, 0, "a view change while the hosts were idle");
    for (m, id) in members.iter().zip(view_ids) {
        assert_eq!(m.view_id(), id, "the view changed");
        assert_eq!(m.members().len(), 2);
    }
    drop(members);
    for engine in engines {
        engine.shutdown_within(Duration::from_secs(5)).expect("shutdown");
    }
}
