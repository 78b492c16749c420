//! The engine's error: what can go wrong starting, running and stopping it.
//! Each cause has its own variant; `io::Error` appears only where a system
//! call (thread creation) failed, the network's errors where it failed.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::net::NetError;
use crate::uring::TcpError;

/// Why the engine could not start, or what went wrong while it ran.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineError {
    /// An engine thread could not be pinned to `core` (offline, or outside
    /// the CPUs this process may use, e.g. its cgroup's cpuset).
    Pin {
        /// The CPU id from `engine.cores`.
        core: usize,
    },
    /// The operating system refused to create an engine thread.
    Spawn(io::Error),
    /// An agent panicked; it was removed and its thread carried on.
    AgentPanicked {
        /// The agent's [`Agent::name`](super::Agent::name).
        name: String,
        /// Which call panicked: `do_work` or `on_close`.
        during: &'static str,
        /// The panic message.
        message: String,
    },
    /// The configuration asks for something this engine cannot do.
    Config(String),
    /// Shutdown's deadline passed with `threads` engine threads still
    /// running (each is stuck in an agent); they were detached.
    ShutdownTimedOut {
        /// Threads left running.
        threads: usize,
    },
    /// An engine thread ended before it reported whether it started.
    ThreadLost,
    /// The engine's network (io_uring, or plain sockets) could not be set up.
    Network(NetError),
    /// The engine could not listen on `net.listen`.
    Listen {
        /// The resolved `net.listen` address.
        addr: SocketAddr,
        /// What the socket calls said.
        source: TcpError,
    },
    /// The engine did not report whether its network started (its thread
    /// stopped, or is stuck in an agent).
    NetworkNotReported,
    /// The engines' key (`net.key_file`) was refused: unreadable, open to
    /// group or others, or of a bad length.
    AuthKey(crate::remote::KeyFileError),
}

impl EngineError {
    /// A copy for reports that keep the original (io errors keep kind and text).
    pub(crate) fn duplicate(&self) -> EngineError {
        match self {
            EngineError::Pin { core } => EngineError::Pin { core: *core },
            EngineError::Spawn(e) => EngineError::Spawn(io::Error::new(e.kind(), e.to_string())),
            EngineError::AgentPanicked { name, during, message } => {
                EngineError::AgentPanicked { name: name.clone(), during, message: message.clone() }
            }
            EngineError::Config(reason) => EngineError::Config(reason.clone()),
            EngineError::ShutdownTimedOut { threads } => EngineError::ShutdownTimedOut { threads: *threads },
            EngineError::ThreadLost => EngineError::ThreadLost,
            EngineError::Network(e) => EngineError::Network(e.clone()),
            EngineError::Listen { addr, source } => EngineError::Listen { addr: *addr, source: source.clone() },
            EngineError::NetworkNotReported => EngineError::NetworkNotReported,
            EngineError::AuthKey(e) => EngineError::AuthKey(e.duplicate()),
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Pin { core } => write!(
                f,
                "cannot pin an engine thread to CPU {core}: it is offline or outside the CPUs this process may \
                 use (see `taskset -p $$` and the cgroup's cpuset); choose another id in engine.cores or leave \
                 engine.cores empty"
            ),
            EngineError::Spawn(e) => write!(f, "cannot start an engine thread: {e}"),
            EngineError::AgentPanicked { name, during, message } => {
                write!(f, "engine agent `{name}` panicked in {during}: {message}")
            }
            EngineError::Config(reason) => write!(f, "engine configuration not usable: {reason}"),
            EngineError::ShutdownTimedOut { threads } => write!(
                f,
                "{threads} engine thread(s) did not stop before the shutdown deadline (an agent is blocking); \
                 they were detached"
            ),
            EngineError::ThreadLost => f.write_str("an engine thread ended before reporting its start"),
            EngineError::Network(e) => write!(f, "the engine's network could not be set up: {e}"),
            EngineError::Listen { addr, source } => {
                let errno = match source {
                    crate::uring::TcpError::Io { errno, .. } => *errno,
                    _ => 0,
                };
                match errno {
                    libc::EADDRINUSE => write!(
                        f,
                        "the engine cannot listen on {addr}: the address is already in use (another engine, or \
                         another program, listens there: stop it, or choose another net.listen / RINGFLOW_NET_LISTEN)"
                    ),
                    libc::EADDRNOTAVAIL => write!(
                        f,
                        "the engine cannot listen on {addr}: that address is not one of this host's (check net.listen)"
                    ),
                    libc::EACCES | libc::EPERM => write!(
                        f,
                        "the engine cannot listen on {addr}: permission denied (ports below 1024 need privileges: \
                         choose another port)"
                    ),
                    _ => write!(f, "the engine cannot listen on {addr}: {source}"),
                }
            }
            EngineError::NetworkNotReported => {
                f.write_str("the engine did not report its network started (its thread stopped or is stuck)")
            }
            EngineError::AuthKey(e) => write!(f, "the engine's key was refused: {e}"),
        }
    }
}

impl std::error::Error for EngineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EngineError::Spawn(e) => Some(e),
            EngineError::Network(e) => Some(e),
            EngineError::Listen { source, .. } => Some(source),
            EngineError::AuthKey(e) => Some(e),
            _ => None,
        }
    }
}
