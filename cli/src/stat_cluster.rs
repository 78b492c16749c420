//! `ringflow stat`'s lines for a cluster node (an engine with
//! `cluster.enabled`): its id, term, leader, commit, applied and SAFE
//! indexes, quorum, and each peer's match index, lag and liveness, read
//! from the node's slots (kinds `cluster` and `cluster-peer`); then the
//! members of other hosts in each group that crosses hosts, as this
//! engine's gateway last saw the cluster's view (kind `group-remote`), and
//! what each gateway holds: its members' messages not yet committed
//! against its bound, committed frames waiting for the local log (kind
//! `group-gateway`). The JSON form prints these slots like any other,
//! counter by counter.

use std::fmt::Write as _;

use ringflow::stats::{ProcessStats, SlotKind};

/// Whether a slot is shown here rather than in the flows' table.
pub(crate) fn is_cluster(kind: SlotKind) -> bool {
    matches!(kind, SlotKind::Cluster | SlotKind::ClusterPeer | SlotKind::GroupRemote | SlotKind::GroupGateway)
}

/// The members of other hosts of group `group` that process `p`
/// publishes, as `member ID of host H (pid P)`.
pub(crate) fn remote_members(p: &ProcessStats, group: &str) -> Vec<String> {
    let mut all: Vec<(u64, u64, u64)> = p
        .slots
        .iter()
        .filter(|s| s.kind == SlotKind::GroupRemote && s.name == group)
        .map(|s| (s.peer, s.info, s.counters[0]))
        .collect();
    all.sort_unstable();
    all.iter().map(|(host, id, pid)| format!("member {id} of host {host} (pid {pid})")).collect()
}

/// What a crossing group's gateway holds, from its slot's counters
/// (`GroupGatewayCounter`'s order).
pub(crate) fn gateway_line(group: &str, c: &[u64]) -> String {
    let word = |i: usize| c.get(i).copied().unwrap_or(0);
    let at_bound = if word(3) == 1 { ", at its bound" } else { "" };
    format!(
        "group {group} gateway: holds {} messages, {} of {} bytes{at_bound}; {} frames ({} bytes) wait for the local log; {} held while the quorum is lost; {} proposed",
        word(0),
        word(1),
        word(2),
        word(4),
        word(5),
        word(6),
        word(7)
    )
}

/// The cluster lines of process `p` (nothing if it runs no node).
pub(crate) fn text(p: &ProcessStats, out: &mut String) {
    for node in p.slots.iter().filter(|s| s.kind == SlotKind::Cluster) {
        let c = &node.counters;
        let leader = if c[1] == 0 { "none".to_owned() } else { c[1].to_string() };
        let _ = writeln!(
            out,
            "  cluster node {}: term {}, leader {leader}, commit {}, applied {}, safe {}, last {}, quorum {}",
            node.info,
            c[0],
            c[2],
            c[3],
            c[4],
            c[6],
            if c[5] == 1 { "yes" } else { "LOST" }
        );
        for peer in p.slots.iter().filter(|s| s.kind == SlotKind::ClusterPeer && s.peer == node.info) {
            let c = &peer.counters;
            let state = match (c[3], c[2]) {
                (1, _) => "down (removed)",
                (_, 1) => "up",
                _ => "silent",
            };
            let silent = if c[4] == u64::MAX { "never heard".to_owned() } else { format!("heard {} ms ago", c[4]) };
            // Match indexes and lags are the leader's knowledge only.
            let (matched, lag) = if node.counters[1] == node.info {
                (c[0].to_string(), c[1].to_string())
            } else {
                ("-".to_owned(), "-".to_owned())
            };
            let _ = writeln!(out, "    peer {}: {state}, match {matched}, lag {lag}, {silent}", peer.info);
        }
    }
    let mut groups: Vec<&str> =
        p.slots.iter().filter(|s| s.kind == SlotKind::GroupRemote).map(|s| s.name.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    for group in groups {
        let _ = writeln!(out, "  group {group}, members of other hosts: {}", remote_members(p, group).join(", "));
    }
    for g in p.slots.iter().filter(|s| s.kind == SlotKind::GroupGateway) {
        let _ = writeln!(out, "  {}", gateway_line(&g.name, &g.counters));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateways_line_says_what_it_holds_against_its_bound() {
        let line = gateway_line("xg", &[20, 2000, 4096, 1, 3, 300, 0, 77]);
        assert_eq!(
            line,
            "group xg gateway: holds 20 messages, 2000 of 4096 bytes, at its bound; 3 frames (300 bytes) wait for \
             the local log; 0 held while the quorum is lost; 77 proposed"
        );
        assert!(!gateway_line("xg", &[0; 16]).contains("at its bound"));
    }
}
