//! The cluster node of a [`crate::remote::RemoteEngine`] (`cluster.enabled`):
//! numbered from `net.listen` and `net.peers`, talking through the bridge's
//! links (`crate::cluster_port`), run as a guest of the bridge's duty cycle
//! (`crate::remote::guest`): a `Cluster` frame the bridge received is
//! handled in the cycle that received it, and what the node sends leaves
//! in that cycle, with no thread woken in between. Its ticks bound the
//! bridge's sleep.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::Receiver;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::handle::ClusterHandle;
use super::node::{ClusterNode, Transport};
use super::{ClusterSettings, Committed};
use crate::cluster_port::{cluster_port, BridgePort, NodePort, RelayPort};
use crate::config::EngineConfig;
use crate::engine::{Agent as _, EngineError, Waker};

/// A test hook: `RINGFLOW_TEST_CLUSTER_FEED=<ms>` makes the node propose
/// AGREED messages of its own every `<ms>` (see `FEED_GROUP`), so that
/// tests of engine processes have proposals flowing through their faults.
pub const TEST_FEED_ENV: &str = "RINGFLOW_TEST_CLUSTER_FEED";

/// A test hook: `RINGFLOW_TEST_CLUSTER_VIA=<addr>=<via>,...` dials the node whose
/// address is `<addr>` at `<via>` instead (a proxy that cuts links), while
/// the nodes are still numbered by their own addresses.
pub const VIA_ENV: &str = "RINGFLOW_TEST_CLUSTER_VIA";

/// The node's transport: raft ids to engine addresses, over the port.
pub struct LinkTransport {
    port: NodePort,
    addrs: HashMap<u64, SocketAddr>,
}

impl Transport for LinkTransport {
    fn send(&mut self, to: u64, message: Vec<u8>) {
        if let Some(addr) = self.addrs.get(&to) {
            self.port.send_to(*addr, message);
        }
    }

    fn try_recv(&mut self) -> Option<Vec<u8>> {
        self.port.try_recv()
    }

    fn spare(&mut self) -> Option<Vec<u8>> {
        self.port.spare()
    }
}

/// The node as the bridge's duty cycle runs it: its ticks bound the
/// bridge's sleep; what it receives comes from that very duty cycle, and
/// proposals from other threads wake the bridge (the handle's waker).
struct Guest(ClusterNode<LinkTransport>);

impl crate::remote::guest::Guest for Guest {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn do_work(&mut self) -> usize {
        self.0.poll(Instant::now())
    }

    fn before_sleep(&mut self, sleep: &mut crate::remote::guest::Sleep) {
        if let Some(tick) = self.0.next_tick() {
            sleep.at_most(tick.saturating_duration_since(Instant::now()));
        }
    }

    fn has_work(&self) -> bool {
        false
    }

    fn after_sleep(&mut self) {}
}

/// A running cluster node's handles (the node itself runs in the
/// bridge's duty cycle, which drops it when the engine stops).
pub struct ClusterRun {
    handle: ClusterHandle,
    committed: Mutex<Option<Receiver<Committed>>>,
    relay: Mutex<Option<RelayPort>>,
}

impl ClusterRun {
    /// The handle to propose through and read the node's state.
    pub fn handle(&self) -> &ClusterHandle {
        &self.handle
    }

    /// What the node commits, in log order (once: the first caller takes
    /// it). Until someone does, and once they stop reading, what does not
    /// fit the bounded queue is dropped and counted
    /// (`ClusterStatus::committed_dropped`).
    pub fn take_committed(&self) -> Option<Receiver<Committed>> {
        self.committed.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// The group relay's end of the port (once: the first caller takes it).
    pub fn take_relay(&self) -> Option<RelayPort> {
        self.relay.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// The bridge's engine, woken by proposals from other threads.
    pub fn set_bridge_waker(&self, waker: Waker) {
        self.handle.set_waker(waker);
    }
}

/// Makes the node `config` describes for the engine listening at
/// `listen`; returns its handles, the bridge's end of its port and the
/// node, to run as a guest of the bridge's duty cycle (it runs nowhere
/// else: nothing happens until the bridge's engine starts).
pub(crate) fn start(
    config: &EngineConfig,
    listen: SocketAddr,
) -> Result<(ClusterRun, BridgePort, Box<dyn crate::remote::guest::Guest>), EngineError> {
    let bad = |why: String| EngineError::Config(format!("cluster: {why}"));
    if listen.port() == 0 {
        return Err(bad("net.listen needs a fixed port: it numbers the cluster's nodes".to_owned()));
    }
    let mut peers = Vec::new();
    for peer in &config.net().peers {
        let addr = peer.addr();
        let resolved = (addr.host(), addr.port()).to_socket_addrs().ok().and_then(|mut a| a.next());
        peers.push(resolved.ok_or_else(|| bad(format!("net.peers entry {addr} does not resolve")))?);
    }
    let (id, numbered) = super::node_ids(listen, &peers);
    let c = config.cluster();
    let mut settings = ClusterSettings::new(id, numbered.iter().map(|(id, _)| *id).collect());
    settings.tick = c.tick;
    settings.election_ticks = c.election_ticks;
    settings.heartbeat_ticks = c.heartbeat_ticks;
    settings.compact_after = c.compact_after;
    settings.compact_after_bytes = c.compact_after_bytes;
    settings.max_message_bytes = c.max_message_bytes;
    settings.node_timeout = c.node_timeout;
    settings.test_feed =
        std::env::var(TEST_FEED_ENV).ok().and_then(|v| v.trim().parse().ok()).map(Duration::from_millis);
    let via = parse_via(&std::env::var(VIA_ENV).unwrap_or_default()).map_err(bad)?;
    // Both ends run on the bridge's thread: neither wakes the other (the
    // port's wakers stay unset).
    let (bridge_port, mut node_port) = cluster_port();
    let addrs: HashMap<u64, SocketAddr> =
        numbered.iter().filter(|(n, _)| *n != id).map(|(n, a)| (*n, via.get(a).copied().unwrap_or(*a))).collect();
    let relay = Mutex::new(node_port.take_relay(addrs.clone()));
    let transport = LinkTransport { port: node_port, addrs };
    let (mut node, handle, committed) = ClusterNode::new(settings, transport).map_err(|e| bad(e.to_string()))?;
    if let Ok(dir) = crate::control::RuntimeDir::resolve() {
        node.attach_stats(dir.path());
    }
    tracing::info!(node = id, nodes = ?numbered, "cluster node started");
    let committed = Mutex::new(Some(committed));
    Ok((ClusterRun { handle, committed, relay }, bridge_port, Box::new(Guest(node))))
}

/// `RINGFLOW_TEST_CLUSTER_VIA`'s value: `addr=via` pairs, comma-separated.
fn parse_via(text: &str) -> Result<HashMap<SocketAddr, SocketAddr>, String> {
    let mut out = HashMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair.split_once('=').and_then(|(a, v)| Some((a.trim().parse().ok()?, v.trim().parse().ok()?)));
        let (addr, via) = parsed.ok_or_else(|| format!("{VIA_ENV}: `{pair}` is not addr=via"))?;
        out.insert(addr, via);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn via_pairs_parse_and_garbage_is_refused() {
        let via = super::parse_via(" 127.0.0.1:1=127.0.0.1:2 ,127.0.0.1:3=127.0.0.1:4").expect("parses");
        assert_eq!(via.len(), 2);
        assert_eq!(via.get(&"127.0.0.1:1".parse().expect("addr")), Some(&"127.0.0.1:2".parse().expect("addr")));
        assert!(super::parse_via("").expect("empty").is_empty());
        assert!(super::parse_via("127.0.0.1:1").is_err());
        assert!(super::parse_via("x=y").is_err());
    }
}
