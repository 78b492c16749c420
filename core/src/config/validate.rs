//! The rules a configuration must satisfy: each value against its key's
//! [`Kind`], then the keys against each other.
//!
//! Range checks live here once and serve all three forms. Cross-field rules
//! are the kernel's own (DEFER_TASKRUN needs SINGLE_ISSUER; SQPOLL refuses
//! the task-run flags) or protect a small host (no more spinning threads than
//! CPUs). This module never reads files or the environment, and never asks
//! which CPUs the calling thread may run on: CPU ids are checked against the
//! host's configured count, as pinning by id works from any thread.

use std::collections::HashSet;
use std::sync::OnceLock;

use super::error::{ConfigError, Conflict};
use super::keys::{self, Kind, Raw};
use super::{CrossingGroup, EngineConfig, HostPort, IdleStrategy, Peer, ThreadingMode};

/// Why a value does not fit its key.
pub(crate) enum Problem {
    /// Not the type the key takes.
    WrongType,
    /// The right type, out of range or malformed; with a detail when one
    /// says more than the key's allowed values.
    Bad(Option<String>),
}

/// The number of CPUs configured on the host (`sysconf(_SC_NPROCESSORS_CONF)`),
/// at least 1. Not the calling thread's affinity mask, which may be narrower
/// (`core_affinity::get_core_ids()` reports only that).
pub fn configured_cpus() -> usize {
    static CPUS: OnceLock<usize> = OnceLock::new();
    *CPUS.get_or_init(|| {
        // SAFETY: sysconf takes no pointers; it only reads a system value.
        let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
        usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
    })
}

/// Checks one value against its key's kind.
pub(crate) fn check(kind: Kind, raw: &Raw) -> Result<(), Problem> {
    match (kind, raw) {
        (Kind::Bool, Raw::Bool(_)) => Ok(()),
        (Kind::Int { min, max, pow2 }, Raw::Int(n)) => {
            if *n < i128::from(min) || *n > i128::from(max) {
                Err(Problem::Bad(None))
            } else if pow2 && !u64::try_from(*n).is_ok_and(u64::is_power_of_two) {
                Err(Problem::Bad(Some("not a power of two".to_owned())))
            } else {
                Ok(())
            }
        }
        (Kind::Choice(words), Raw::Str(s)) => {
            if words.contains(&s.as_str()) {
                Ok(())
            } else {
                Err(Problem::Bad(None))
            }
        }
        (Kind::OptCore, Raw::Int(n)) => check_core(*n),
        (Kind::OptCore, Raw::Str(_)) if keys::is_none(raw) => Ok(()),
        (Kind::OptCore, Raw::Str(_)) => Err(Problem::Bad(None)),
        (Kind::Cores, Raw::List(items)) => check_cores(items),
        (Kind::OptAddr, Raw::Str(_)) if keys::is_none(raw) => Ok(()),
        (Kind::OptAddr, Raw::Str(s)) => HostPort::parse(s).map(drop).map_err(|e| Problem::Bad(Some(e.to_string()))),
        (Kind::Peers, Raw::List(items)) => check_peers(items),
        (Kind::Groups, Raw::List(items)) => check_groups(items),
        (Kind::OptPath, Raw::Str(s)) if s.contains('\0') => {
            Err(Problem::Bad(Some("a path cannot hold a NUL byte".to_owned())))
        }
        (Kind::OptPath, Raw::Str(_)) => Ok(()),
        _ => Err(Problem::WrongType),
    }
}

fn check_core(id: i128) -> Result<(), Problem> {
    let cpus = configured_cpus();
    if id < 0 || id >= cpus as i128 {
        return Err(Problem::Bad(Some(format!("CPU {id} does not exist: this host has {cpus} CPUs configured"))));
    }
    Ok(())
}

fn check_cores(items: &[Raw]) -> Result<(), Problem> {
    let mut seen = HashSet::new();
    for item in items {
        let Raw::Int(id) = item else { return Err(Problem::WrongType) };
        check_core(*id)?;
        if !seen.insert(*id) {
            return Err(Problem::Bad(Some(format!("CPU {id} is listed twice"))));
        }
    }
    Ok(())
}

fn check_peers(items: &[Raw]) -> Result<(), Problem> {
    let mut seen = HashSet::new();
    for item in items {
        let Raw::Str(text) = item else { return Err(Problem::WrongType) };
        let peer = Peer::parse(text).map_err(|e| Problem::Bad(Some(format!("{text:?}: {e}"))))?;
        let name = peer.name().map_or_else(|| peer.to_string(), str::to_owned);
        if !seen.insert(name) {
            return Err(Problem::Bad(Some(format!("{text:?} repeats an earlier peer's name or address"))));
        }
    }
    Ok(())
}

fn check_groups(items: &[Raw]) -> Result<(), Problem> {
    let mut seen = HashSet::new();
    for item in items {
        let Raw::Str(entry) = item else { return Err(Problem::WrongType) };
        let group = CrossingGroup::parse(entry).map_err(|e| Problem::Bad(Some(e)))?;
        let name = group.name;
        if name.len() > super::MAX_CLUSTER_GROUP_NAME {
            return Err(Problem::Bad(Some(format!("{name:?} is longer than {} bytes", super::MAX_CLUSTER_GROUP_NAME))));
        }
        // The name a group's keeper binds, as `Group::join` checks it.
        crate::control::validate_name(&format!("{name}.group"))
            .map_err(|e| Problem::Bad(Some(format!("{name:?}: {e}"))))?;
        if !seen.insert(name.clone()) {
            return Err(Problem::Bad(Some(format!("{name:?} is named twice"))));
        }
    }
    Ok(())
}

/// Checks the keys against each other. Every value is already in range.
pub(crate) fn cross_check(cfg: &EngineConfig) -> Result<(), ConfigError> {
    let engine = &cfg.engine;
    let uring = &cfg.io_uring;
    let cpus = configured_cpus();

    if !engine.cores.is_empty() && engine.cores.len() != engine.threads {
        return Err(conflict(
            cfg,
            keys::ENGINE_CORES,
            keys::ENGINE_THREADS,
            format!(
                "engine.cores names the core of each engine thread, so it lists either no core (no pinning) or \
                 exactly engine.threads = {} of them, not {}",
                engine.threads,
                engine.cores.len()
            ),
        ));
    }
    if engine.idle == IdleStrategy::Spin && engine.threads > cpus {
        return Err(conflict(
            cfg,
            keys::ENGINE_IDLE,
            keys::ENGINE_THREADS,
            format!(
                "{} spinning engine threads on a host with {cpus} CPUs configured would keep every CPU busy and \
                 starve the application; use engine.idle = \"backoff\" or \"park\", or at most {cpus} threads",
                engine.threads
            ),
        ));
    }
    if engine.mode == ThreadingMode::Invoker && engine.threads != 1 {
        return Err(conflict(
            cfg,
            keys::ENGINE_MODE,
            keys::ENGINE_THREADS,
            "in invoker mode the application's thread drives the engine and no engine thread is started, so \
             engine.threads must be 1"
                .to_owned(),
        ));
    }
    if engine.mode == ThreadingMode::Invoker && !engine.cores.is_empty() {
        return Err(conflict(
            cfg,
            keys::ENGINE_MODE,
            keys::ENGINE_CORES,
            "in invoker mode there is no engine thread to pin, and the engine does not pin the application's \
             thread; leave engine.cores empty"
                .to_owned(),
        ));
    }
    if uring.defer_taskrun && !uring.single_issuer {
        return Err(conflict(
            cfg,
            keys::URING_DEFER_TASKRUN,
            keys::URING_SINGLE_ISSUER,
            "the kernel accepts IORING_SETUP_DEFER_TASKRUN only together with IORING_SETUP_SINGLE_ISSUER; set \
             io_uring.single_issuer = true or io_uring.defer_taskrun = false"
                .to_owned(),
        ));
    }
    for (flag, on) in [(keys::URING_DEFER_TASKRUN, uring.defer_taskrun), (keys::URING_COOP_TASKRUN, uring.coop_taskrun)]
    {
        if uring.sqpoll && on {
            return Err(conflict(
                cfg,
                keys::URING_SQPOLL,
                flag,
                format!(
                    "the kernel refuses IORING_SETUP_SQPOLL together with the task-run flags (the SQ thread \
                     runs task work itself); set {flag} = false to use SQPOLL"
                ),
            ));
        }
    }
    if uring.sqpoll_core.is_some() && !uring.sqpoll {
        return Err(conflict(
            cfg,
            keys::URING_SQPOLL_CORE,
            keys::URING_SQPOLL,
            "io_uring.sqpoll_core pins the kernel's SQ polling thread, which exists only with io_uring.sqpoll = \
             true; set it or remove io_uring.sqpoll_core"
                .to_owned(),
        ));
    }
    if uring.batch > uring.entries {
        return Err(conflict(
            cfg,
            keys::URING_BATCH,
            keys::URING_ENTRIES,
            format!(
                "a submission cannot hold more entries than the ring has; io_uring.batch must be at most \
                 io_uring.entries = {}",
                uring.entries
            ),
        ));
    }
    let cluster = &cfg.cluster;
    if cluster.heartbeat_ticks >= cluster.election_ticks {
        return Err(conflict(
            cfg,
            keys::CLUSTER_HEARTBEAT_TICKS,
            keys::CLUSTER_ELECTION_TICKS,
            format!(
                "a leader must be heard from before followers stand for election: cluster.heartbeat_ticks must be \
                 below cluster.election_ticks = {}",
                cluster.election_ticks
            ),
        ));
    }
    let longest_election = cluster.tick.saturating_mul(cluster.election_ticks.saturating_mul(2) as u32);
    if cluster.node_timeout <= longest_election {
        return Err(conflict(
            cfg,
            keys::CLUSTER_NODE_TIMEOUT_MS,
            keys::CLUSTER_ELECTION_TICKS,
            format!(
                "a node is taken for down only after an election could have replaced its leader: \
                 cluster.node_timeout_ms must exceed twice cluster.election_ticks x cluster.tick_ms = {} ms",
                longest_election.as_millis()
            ),
        ));
    }
    if cluster.group_intake_bytes < cluster.max_message_bytes {
        return Err(conflict(
            cfg,
            keys::CLUSTER_GROUP_INTAKE_BYTES,
            keys::CLUSTER_MAX_MESSAGE_BYTES,
            format!(
                "a gateway must hold a batch in flight and the next one gathering (each up to half a raft \
                 message): cluster.group_intake_bytes must be at least cluster.max_message_bytes = {}",
                cluster.max_message_bytes
            ),
        ));
    }
    if cluster.enabled && cfg.net.listen.is_none() {
        return Err(conflict(
            cfg,
            keys::CLUSTER_ENABLED,
            keys::NET_LISTEN,
            "a cluster node is reached at its engine's address and numbered by it: set net.listen".to_owned(),
        ));
    }
    if !cluster.groups.is_empty() && !cluster.enabled {
        return Err(conflict(
            cfg,
            keys::CLUSTER_GROUPS,
            keys::CLUSTER_ENABLED,
            "a group crosses hosts through the cluster's log: set cluster.enabled = true, or empty cluster.groups"
                .to_owned(),
        ));
    }
    Ok(())
}

/// A conflict between two keys, with their current values and origins.
fn conflict(cfg: &EngineConfig, key: &'static str, other_key: &'static str, reason: String) -> ConfigError {
    let value_of = |path: &str| keys::find(path).map_or_else(String::new, |(_, spec)| (spec.get)(cfg).to_toml());
    let origin_of = |path: &str| cfg.origin(path).cloned().unwrap_or(super::Origin::Default);
    Conflict {
        key,
        value: value_of(key),
        origin: origin_of(key),
        other_key,
        other_value: value_of(other_key),
        other_origin: origin_of(other_key),
        reason,
    }
    .into()
}
