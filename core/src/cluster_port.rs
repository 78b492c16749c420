//! The hook between the bridge (which owns the engines' links) and the
//! cluster node (`crate::cluster`, feature `cluster`): `Cluster` frames
//! the bridge receives go to the node, and what the node sends to a peer's
//! address goes out on the bridge's link to it as a `Cluster` frame.
//!
//! Both directions are bounded channels used with `try_send` and
//! `try_recv` only: neither agent ever waits for the other, and what a full
//! queue drops is counted (raft resends what matters). It never looks
//! inside the messages: the node checks them. The group relay's messages
//! (`RELAY_KIND`) have queues of their own both ways, and the bridge sends
//! raft's first: a burst of a FIFO group fills the relay's queue (the
//! relay sends again what it drops), never raft's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, OnceLock};

use crate::engine::Waker;

/// Messages each direction holds before it drops.
pub const PORT_QUEUE: usize = 4096;

/// The first byte of a group relay message (`crate::xgroup`'s direct
/// relay of FIFO and UNORDERED groups): the bridge hands these to the
/// relay's queue, not the node's (raft's envelope starts with 1, the SAFE
/// message with 0x81).
pub const RELAY_KIND: u8 = 0x82;

/// A queue of messages for the bridge to send, each with its peer's address.
type Outbound = SyncSender<(SocketAddr, Vec<u8>)>;

/// Sent messages' buffers the bridge hands back for the node's next
/// messages: at most this many wait. A leader's append of a batch is
/// hundreds of KiB; a fresh buffer of that size each time came from pages
/// the allocator had given back to the system, a fault for each of them
/// (a fifth of an engine's time in a fan-out).
pub const SPARES: usize = 4;

/// The largest buffer handed back (larger ones are freed): twice the
/// cluster's default message limit.
pub const SPARE_MAX: usize = 2 << 20;

/// The bridge's end: hands received messages over, takes messages to send.
pub struct BridgePort {
    inbound: SyncSender<Vec<u8>>,
    relay: SyncSender<Vec<u8>>,
    outbound: Receiver<(SocketAddr, Vec<u8>)>,
    relay_outbound: Receiver<(SocketAddr, Vec<u8>)>,
    spares: SyncSender<Vec<u8>>,
    shared: Arc<PortShared>,
}

/// The cluster node's end (its `Transport` with the `cluster` feature).
pub struct NodePort {
    inbound: Receiver<Vec<u8>>,
    outbound: Outbound,
    spares: Receiver<Vec<u8>>,
    shared: Arc<PortShared>,
    /// The relay's two queues, until its end is taken.
    relay: Option<(Receiver<Vec<u8>>, Outbound)>,
}

/// The group relay's end: sends relay messages to other nodes' engines
/// and takes those that arrived, both lossy like the node's (the relay
/// acknowledges and sends again).
pub struct RelayPort {
    inbound: Receiver<Vec<u8>>,
    outbound: Outbound,
    addrs: HashMap<u64, SocketAddr>,
    shared: Arc<PortShared>,
}

/// What a relay port calls after the bridge queued a message for it.
pub type RelayWake = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct PortShared {
    /// Wakes the other agent's engine thread after a hand-over.
    bridge_waker: OnceLock<Waker>,
    node_waker: OnceLock<Waker>,
    relay_wake: OnceLock<RelayWake>,
    /// Messages dropped because a queue was full (either direction).
    dropped: AtomicU64,
}

impl PortShared {
    fn count_drop(&self) {
        // SYNC: Relaxed; a counter read alone (`BridgePort::dropped`).
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// A connected pair of ends.
pub fn cluster_port() -> (BridgePort, NodePort) {
    let (inbound_tx, inbound_rx) = mpsc::sync_channel(PORT_QUEUE);
    let (outbound_tx, outbound_rx) = mpsc::sync_channel(PORT_QUEUE);
    let (relay_tx, relay_rx) = mpsc::sync_channel(PORT_QUEUE);
    let (relay_out_tx, relay_out_rx) = mpsc::sync_channel(PORT_QUEUE);
    let (spares_tx, spares_rx) = mpsc::sync_channel(SPARES);
    let shared = Arc::new(PortShared::default());
    (
        BridgePort {
            inbound: inbound_tx,
            relay: relay_tx,
            outbound: outbound_rx,
            relay_outbound: relay_out_rx,
            spares: spares_tx,
            shared: Arc::clone(&shared),
        },
        NodePort {
            inbound: inbound_rx,
            outbound: outbound_tx,
            spares: spares_rx,
            shared,
            relay: Some((relay_rx, relay_out_tx)),
        },
    )
}

impl BridgePort {
    /// A `Cluster` frame's body arrived: queued for the node (copied: the
    /// frame borrows the receive buffer), or dropped and counted if full.
    pub fn deliver(&self, payload: &[u8]) {
        if payload.first() == Some(&RELAY_KIND) {
            if self.relay.try_send(payload.to_vec()).is_err() {
                self.shared.count_drop();
            } else if let Some(wake) = self.shared.relay_wake.get() {
                wake();
            }
            return;
        }
        if self.inbound.try_send(payload.to_vec()).is_err() {
            self.shared.count_drop();
            return;
        }
        if let Some(waker) = self.shared.node_waker.get() {
            waker.wake();
        }
    }

    /// The next message the node (first) or the relay queued for a peer,
    /// if any.
    pub fn next_outbound(&self) -> Option<(SocketAddr, Vec<u8>)> {
        self.outbound.try_recv().ok().or_else(|| self.relay_outbound.try_recv().ok())
    }

    /// Hands a sent message's buffer back for the node's next messages
    /// (freed if [`SPARES`] wait already, or it is larger than
    /// [`SPARE_MAX`]).
    pub fn give_back(&self, buf: Vec<u8>) {
        if buf.capacity() <= SPARE_MAX {
            let _ = self.spares.try_send(buf);
        }
    }

    /// Messages dropped so far on a full queue.
    pub fn dropped(&self) -> u64 {
        // SYNC: Relaxed; see `PortShared::count_drop`.
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

/// Sets the engines each end wakes after a hand-over (known only once the
/// engines run): the bridge's (the node sent), the node's (the bridge
/// delivered). Each is set once; later calls are ignored. An engine
/// leaves them unset: its node runs in the bridge's own duty cycle
/// (`crate::remote::guest`), which reads the port after the network.
pub struct PortWakers(Arc<PortShared>);

impl PortWakers {
    /// The bridge's engine.
    pub fn set_bridge(&self, waker: Waker) {
        let _ = self.0.bridge_waker.set(waker);
    }

    /// The node's engine.
    pub fn set_node(&self, waker: Waker) {
        let _ = self.0.node_waker.set(waker);
    }
}

impl NodePort {
    /// Where to set the engines to wake.
    pub fn wakers(&self) -> PortWakers {
        PortWakers(Arc::clone(&self.shared))
    }

    /// Queues `message` for the engine at `to`; dropped and counted if the
    /// bridge's queue is full.
    pub fn send_to(&self, to: SocketAddr, message: Vec<u8>) {
        if self.outbound.try_send((to, message)).is_err() {
            self.shared.count_drop();
            return;
        }
        if let Some(waker) = self.shared.bridge_waker.get() {
            waker.wake();
        }
    }

    /// The next message the bridge delivered, if any.
    pub fn try_recv(&self) -> Option<Vec<u8>> {
        self.inbound.try_recv().ok()
    }

    /// A buffer the bridge handed back ([`BridgePort::give_back`]), as it
    /// was sent (its taker clears it), if one waits.
    pub fn spare(&self) -> Option<Vec<u8>> {
        self.spares.try_recv().ok()
    }

    /// The group relay's end (once), sending to the nodes `addrs` name.
    pub fn take_relay(&mut self, addrs: HashMap<u64, SocketAddr>) -> Option<RelayPort> {
        let (inbound, outbound) = self.relay.take()?;
        Some(RelayPort { inbound, outbound, addrs, shared: Arc::clone(&self.shared) })
    }
}

impl RelayPort {
    /// Queues `message` for node `to`'s engine; false if `to` is unknown
    /// or the queue is full (dropped and counted).
    pub fn send(&self, to: u64, message: Vec<u8>) -> bool {
        let Some(addr) = self.addrs.get(&to) else { return false };
        if self.outbound.try_send((*addr, message)).is_err() {
            self.shared.count_drop();
            return false;
        }
        if let Some(waker) = self.shared.bridge_waker.get() {
            waker.wake();
        }
        true
    }

    /// The next relay message the bridge delivered, if any.
    pub fn try_recv(&self) -> Option<Vec<u8>> {
        self.inbound.try_recv().ok()
    }

    /// Sets what the bridge calls after it queued a relay message (once).
    pub fn set_wake(&self, wake: RelayWake) {
        let _ = self.shared.relay_wake.set(wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_both_ways_and_a_full_queue_drops_and_counts() {
        let (bridge, node) = cluster_port();
        let addr: SocketAddr = "127.0.0.1:7001".parse().expect("addr");
        bridge.deliver(b"in");
        assert_eq!(node.try_recv(), Some(b"in".to_vec()));
        assert_eq!(node.try_recv(), None);
        node.send_to(addr, b"out".to_vec());
        assert_eq!(bridge.next_outbound(), Some((addr, b"out".to_vec())));
        assert_eq!(bridge.next_outbound(), None);
        for _ in 0..PORT_QUEUE + 3 {
            bridge.deliver(b"x");
        }
        assert_eq!(bridge.dropped(), 3);
        // The other end gone: nothing blocks, everything is dropped.
        drop(node);
        assert_eq!(bridge.next_outbound(), None);
        bridge.deliver(b"y");
        assert_eq!(bridge.dropped(), 4);
    }

    /// A sent message's buffer comes back to the node with its capacity; at most `SPARES` wait, and none larger than `SPARE_MAX`.
    #[test]
    fn sent_buffers_come_back_for_the_next_messages() {
        let (bridge, node) = cluster_port();
        assert!(node.spare().is_none(), "none before a send");
        let mut sent = Vec::with_capacity(1000);
        sent.extend_from_slice(b"append");
        bridge.give_back(sent);
        let spare = node.spare().expect("the buffer back");
        assert!(spare.capacity() >= 1000);
        for _ in 0..SPARES + 2 {
            bridge.give_back(Vec::with_capacity(64));
        }
        bridge.give_back(Vec::with_capacity(SPARE_MAX + 1));
        let mut back = 0;
        while let Some(b) = node.spare() {
            assert!(b.capacity() <= SPARE_MAX);
            back += 1;
        }
        assert_eq!(back, SPARES);
    }

    /// Relay messages (first byte `RELAY_KIND`) go to the relay's end,
    /// never the node's; the relay sends to the nodes it was given only,
    /// and wakes whoever set its wake.
    #[test]
    fn relay_messages_go_to_the_relay_end() {
        let (bridge, mut node) = cluster_port();
        let addr: SocketAddr = "127.0.0.1:7002".parse().expect("addr");
        let relay = node.take_relay(HashMap::from([(2, addr)])).expect("the relay end");
        assert!(node.take_relay(HashMap::new()).is_none(), "taken once");
        let woken = Arc::new(AtomicU64::new(0));
        let w = Arc::clone(&woken);
        // SYNC: Relaxed; a counter read after the calls, on this thread.
        relay.set_wake(Box::new(move || {
            w.fetch_add(1, Ordering::Relaxed);
        }));
        bridge.deliver(&[RELAY_KIND, 1, 2]);
        bridge.deliver(&[1, 9]);
        assert_eq!(relay.try_recv(), Some(vec![RELAY_KIND, 1, 2]));
        assert_eq!(relay.try_recv(), None);
        assert_eq!(node.try_recv(), Some(vec![1, 9]));
        // SYNC: Relaxed; see the wake above.
        assert_eq!(woken.load(Ordering::Relaxed), 1);
        assert!(relay.send(2, vec![RELAY_KIND]));
        assert!(!relay.send(3, vec![RELAY_KIND]), "no such node");
        assert_eq!(bridge.next_outbound(), Some((addr, vec![RELAY_KIND])));
    }

    /// A relay that fills its queue takes no room from raft's: the node's
    /// messages still go, and go first.
    #[test]
    fn a_full_relay_queue_leaves_raft_its_own() {
        let (bridge, mut node) = cluster_port();
        let addr: SocketAddr = "127.0.0.1:7003".parse().expect("addr");
        let relay = node.take_relay(HashMap::from([(2, addr)])).expect("the relay end");
        for _ in 0..PORT_QUEUE {
            assert!(relay.send(2, vec![RELAY_KIND]));
        }
        assert!(!relay.send(2, vec![RELAY_KIND]), "the relay's queue is full");
        assert_eq!(bridge.dropped(), 1);
        node.send_to(addr, vec![1, 7]);
        assert_eq!(bridge.dropped(), 1, "raft's message was queued");
        assert_eq!(bridge.next_outbound(), Some((addr, vec![1, 7])), "raft's first");
        let mut relayed = 0;
        while let Some((_, m)) = bridge.next_outbound() {
            assert_eq!(m, vec![RELAY_KIND]);
            relayed += 1;
        }
        assert_eq!(relayed, PORT_QUEUE);
    }
}
