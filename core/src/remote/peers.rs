//! Plain flow names resolved through `net.peers` of the process's engine
//! configuration (file, `RINGFLOW_CONFIG`, `RINGFLOW_NET_PEERS`), once no
//! listener of this host has bound them:
//! - a named entry (`orders@10.0.0.2:7070`) says where `orders` lives, and
//!   the flow goes there as if `orders@10.0.0.2:7070` had been asked for;
//! - unnamed entries (`10.0.0.3:7070`) are engines asked in turn, in the
//!   order listed; the first whose host has the name gets the flow.
//!
//! A name bound on this host always wins, and `name@host:port` never looks
//! here. Nothing is contacted until a flow needs it.

use std::sync::{Arc, OnceLock};

use crate::config::Peer;
use crate::Deadline;

use crate::config::{ConfigError, EngineConfig};
use crate::flow::end::{FlowEnd, FlowOptions};
use crate::flow::error::AllocError;
use crate::flow::Qos;

/// `net.peers`, read once per process (as the embedded engine reads its
/// configuration once).
static PEERS: OnceLock<Result<Vec<Peer>, Arc<ConfigError>>> = OnceLock::new();

/// Allocates `name` through the configured peers; `NotFound` when none
/// lists it or has it.
pub(crate) fn alloc_through_peers(
    name: &str,
    qos: &Qos,
    deadline: Deadline,
    opts: FlowOptions,
) -> Result<FlowEnd, AllocError> {
    let peers = PEERS.get_or_init(|| EngineConfig::load().map(|c| c.net().peers.clone()).map_err(Arc::new));
    let peers = match peers {
        Ok(peers) => peers,
        // The name is not bound here, and where else it might be is unknown.
        Err(e) => return Err(AllocError::Config(Arc::clone(e))),
    };
    resolve(name, peers, qos, deadline, opts)
}

/// The lookup itself, over `peers` (for tests: any list).
pub(crate) fn resolve(
    name: &str,
    peers: &[Peer],
    qos: &Qos,
    deadline: Deadline,
    opts: FlowOptions,
) -> Result<FlowEnd, AllocError> {
    if let Some(peer) = peers.iter().find(|p| p.name() == Some(name)) {
        return super::alloc_embedded(&format!("{name}@{}", peer.addr()), qos, deadline, opts);
    }
    // Where the name was looked for on this host (before the peers).
    let dir = opts.dir().ok().map(|d| d.path().to_owned());
    let template = options_like(&opts);
    let mut first = Some(opts);
    let mut unreachable = None;
    for peer in peers.iter().filter(|p| p.name().is_none()) {
        // Caller-supplied memory goes with the first attempt only.
        let attempt = first.take().unwrap_or_else(|| options_like(&template));
        match super::alloc_embedded(&format!("{name}@{}", peer.addr()), qos, deadline, attempt) {
            Err(AllocError::NotFound { .. }) => {}
            Err(e @ (AllocError::EngineUnreachable { .. } | AllocError::RemoteUnreachable { .. })) => {
                unreachable.get_or_insert(e);
            }
            done => return done,
        }
    }
    Err(unreachable.unwrap_or_else(|| AllocError::NotFound { name: name.to_owned(), dir }))
}

/// `opts` without its memory (which can go with one flow only).
fn options_like(o: &FlowOptions) -> FlowOptions {
    FlowOptions {
        spin: o.spin,
        runtime_dir: o.runtime_dir.clone(),
        memory: None,
        latency: o.latency,
        prefault: o.prefault,
        name: o.name.clone(),
        from_other_host: o.from_other_host,
    }
}
