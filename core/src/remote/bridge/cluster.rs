//! The cluster's hook in the bridge (wp-raft's, issue 17): `Cluster` frames
//! go to the cluster node through its port, and what the node queued for a
//! peer goes out as a `Cluster` frame on the link to that peer's address
//! (dialled if there is none, at most once per `REDIAL` per address while
//! dials fail). Without a port attached, `Cluster` frames are dropped.
//!
//! It must stay a hook: no state of the data path is read or changed here.

use super::*;

use crate::cluster_port::BridgePort;

/// Messages taken from the node per duty cycle.
const DRAIN: usize = 256;
/// Pause before dialling an address whose dial failed.
const REDIAL: Duration = Duration::from_millis(100);

/// The port and when each failed address may be dialled again.
pub(in crate::remote) struct ClusterHook {
    port: BridgePort,
    retry_at: HashMap<SocketAddr, Instant>,
}

impl ClusterHook {
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(in crate::remote) fn new(port: BridgePort) -> ClusterHook {
        ClusterHook { port, retry_at: HashMap::new() }
    }
}

impl Bridge {
    /// A `Cluster` frame's body: the node checks it.
    pub(super) fn on_cluster(&mut self, payload: &[u8]) {
        if let Some(hook) = &self.cluster {
            hook.port.deliver(payload);
        }
    }

    /// Sends what the node queued; returns how many it took.
    pub(super) fn cluster_out(&mut self) -> usize {
        let Some(mut hook) = self.cluster.take() else { return 0 };
        let mut work = 0;
        let mut clock = None;
        while work < DRAIN {
            let Some((addr, message)) = hook.port.next_outbound() else { break };
            work += 1;
            let now = *clock.get_or_insert_with(Instant::now);
            if hook.retry_at.get(&addr).is_some_and(|at| now < *at) {
                continue;
            }
            match self.link_to(addr) {
                Ok(link) => {
                    hook.retry_at.remove(&addr);
                    // Dropped unless the link is up: raft sends again.
                    self.send_frame(link, &Frame::Cluster { payload: &message });
                    // Copied into the link's buffer: the node encodes its
                    // next message into it (a relay message's buffer is
                    // small; the node would grow it anyway).
                    if message.first() != Some(&crate::cluster_port::RELAY_KIND) {
                        hook.port.give_back(message);
                    }
                }
                Err(e) => {
                    tracing::debug!(peer = %addr, error = ?e, "cluster peer not reached");
                    hook.retry_at.insert(addr, now + REDIAL);
                }
            }
        }
        self.cluster = Some(hook);
        work
    }
}
