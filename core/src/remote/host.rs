//! One engine for every process of the host (`ringflow engine`): the engine
//! binds the name [`ENGINE_NAME`] in the runtime directory, and a process
//! that allocates a remote flow while that name is bound attaches to it
//! instead of starting an engine of its own.
//!
//! Attaching is an ordinary local flow to [`ENGINE_NAME`] (shared memory,
//! the same control socket as any flow): its first message, from the
//! application, names the target; its first message back, written by the
//! engine before any data, is the outcome of the remote open (the granted
//! QoS, or the error). From then on it is the application's flow, and the
//! engine bridges it like one of its own.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::flow::handshake::Refusal;
use crate::flow::Qos;
use crate::Deadline;

use crate::flow::end::{FlowEnd, FlowOptions};
use crate::flow::error::{AcceptError, AllocError, BindError, Corruption, RecvError, SendError};
use crate::flow::listener::{FlowListener, ListenerOptions};

/// The name a host engine binds in the runtime directory.
pub const ENGINE_NAME: &str = "ringflow-engine";

/// Version byte leading the application's request.
const REQUEST_VERSION: u8 = 1;
/// How long the engine waits for an attached application's request.
const REQUEST_WAIT: Duration = Duration::from_secs(5);
/// How long an accept may take once a connection is there (its setup).
const ACCEPT_SETUP: Duration = Duration::from_secs(1);
/// Bytes before the free-text part of an outcome: code u8, qos.
const OUTCOME_FIXED: usize = 1 + crate::wire::QOS_LEN;
/// Longest free text in an outcome.
const MAX_TEXT: usize = 1024;

/// Outcome codes of the engine's answer.
mod code {
    pub const OK: u8 = 0;
    pub const NOT_FOUND: u8 = 1;
    pub const PERMISSION_DENIED: u8 = 2;
    pub const QOS_REFUSED: u8 = 3;
    pub const UNREACHABLE: u8 = 4;
    pub const PEER_GONE: u8 = 5;
    pub const INVALID_TARGET: u8 = 6;
    pub const OTHER: u8 = 7;
    pub const REMOTE_BUSY: u8 = 8;
    pub const REMOTE_SHUTTING_DOWN: u8 = 9;
    pub const SHUTTING_DOWN: u8 = 10;
    pub const REMOTE_RESOURCE_LIMIT: u8 = 11;
    /// Not an error: the target is this host engine's own address, and the
    /// name is to be allocated here, as a local flow (the text is the name).
    pub const LOCAL: u8 = 12;
    /// The host of `name@host:port` does not resolve; text "host\nreason".
    pub const UNRESOLVED_HOST: u8 = 13;
}

/// The host engine's answer to an attach whose target is its own address:
/// allocate `name` locally (see [`code::LOCAL`]).
pub(super) fn encode_local(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(OUTCOME_FIXED + name.len());
    out.push(code::LOCAL);
    out.extend_from_slice(&[0; crate::wire::QOS_LEN]);
    out.extend_from_slice(name.as_bytes());
    out
}

/// What the host engine answered an attach: the flow is bridged (with the
/// granted QoS), or the name is to be allocated here.
enum Outcome {
    Bridged(Qos),
    Local(String),
}

/// The engine's answer to an attached open, as the first message.
pub(super) fn encode_outcome(result: &Result<Qos, AllocError>) -> Vec<u8> {
    let (c, qos, text) = match result {
        Ok(q) => (code::OK, q.encode(), String::new()),
        Err(e) => {
            let c = match e {
                AllocError::NotFound { .. } => code::NOT_FOUND,
                AllocError::PermissionDenied => code::PERMISSION_DENIED,
                AllocError::Refused(_) | AllocError::InvalidQos(_) => code::QOS_REFUSED,
                AllocError::EngineUnreachable { .. } | AllocError::RemoteUnreachable { .. } => code::UNREACHABLE,
                AllocError::PeerGone => code::PEER_GONE,
                AllocError::InvalidTarget { .. } => code::INVALID_TARGET,
                AllocError::UnresolvedHost { .. } => code::UNRESOLVED_HOST,
                AllocError::RemoteBusy => code::REMOTE_BUSY,
                AllocError::RemoteShuttingDown => code::REMOTE_SHUTTING_DOWN,
                AllocError::EngineShuttingDown => code::SHUTTING_DOWN,
                AllocError::RemoteResourceLimit { .. } => code::REMOTE_RESOURCE_LIMIT,
                _ => code::OTHER,
            };
            let text = match e {
                AllocError::NotFound { name, dir: None } => name.clone(),
                AllocError::NotFound { name, dir: Some(dir) } => format!("{name}\n{}", dir.display()),
                AllocError::UnresolvedHost { host, reason } => format!("{host}\n{reason}"),
                AllocError::EngineUnreachable { addr, source } => format!("{addr}\n{source}"),
                AllocError::RemoteUnreachable { addr, reported } => format!("{addr}\n{reported}"),
                AllocError::InvalidTarget { target } => target.clone(),
                AllocError::RemoteResourceLimit { errno } => errno.to_string(),
                other => other.to_string(),
            };
            (c, [0; crate::wire::QOS_LEN], text)
        }
    };
    let mut out = Vec::with_capacity(OUTCOME_FIXED + text.len());
    out.push(c);
    out.extend_from_slice(&qos);
    let mut cut = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    out.extend_from_slice(&text.as_bytes()[..cut]);
    out
}

/// Reads the engine's answer, a local flow included.
fn decode_answer(msg: &[u8]) -> Result<Outcome, AllocError> {
    if msg.first() == Some(&code::LOCAL) && msg.len() > OUTCOME_FIXED && msg.len() <= OUTCOME_FIXED + MAX_TEXT {
        let name = String::from_utf8_lossy(&msg[OUTCOME_FIXED..]).into_owned();
        crate::control::validate_name(&name).map_err(AllocError::InvalidName)?;
        return Ok(Outcome::Local(name));
    }
    decode_bridged(msg).map(Outcome::Bridged)
}

/// Reads an answer that is not `LOCAL` (untrusted: a malformed one is
/// `CorruptPeer`).
fn decode_bridged(msg: &[u8]) -> Result<Qos, AllocError> {
    let corrupt =
        |why: &str| AllocError::CorruptPeer(Corruption::Protocol(format!("host engine answered badly: {why}")));
    if msg.len() < OUTCOME_FIXED || msg.len() > OUTCOME_FIXED + MAX_TEXT {
        return Err(corrupt("wrong length"));
    }
    let text = String::from_utf8_lossy(&msg[OUTCOME_FIXED..]).into_owned();
    match msg[0] {
        code::OK => Qos::decode(&msg[1..OUTCOME_FIXED]).map_err(|_| corrupt("bad QoS")),
        code::NOT_FOUND => Err(match text.split_once('\n') {
            Some((name, dir)) => AllocError::NotFound { name: name.to_owned(), dir: Some(PathBuf::from(dir)) },
            None => AllocError::NotFound { name: text, dir: None },
        }),
        code::UNRESOLVED_HOST => {
            let (host, reason) = text.split_once('\n').unwrap_or((&text, ""));
            Err(AllocError::UnresolvedHost { host: host.to_owned(), reason: reason.to_owned() })
        }
        code::PERMISSION_DENIED => Err(AllocError::PermissionDenied),
        code::QOS_REFUSED => Err(AllocError::Refused(Refusal::InvalidQos)),
        code::UNREACHABLE => {
            let (addr, why) = text.split_once('\n').unwrap_or((&text, ""));
            Err(AllocError::RemoteUnreachable { addr: addr.to_owned(), reported: why.to_owned() })
        }
        code::PEER_GONE => Err(AllocError::PeerGone),
        code::INVALID_TARGET => Err(AllocError::InvalidTarget { target: text }),
        code::REMOTE_BUSY => Err(AllocError::RemoteBusy),
        code::REMOTE_SHUTTING_DOWN => Err(AllocError::RemoteShuttingDown),
        code::SHUTTING_DOWN => Err(AllocError::EngineShuttingDown),
        code::REMOTE_RESOURCE_LIMIT => Err(AllocError::RemoteResourceLimit { errno: text.parse().unwrap_or(0) }),
        code::OTHER => Err(AllocError::HostEngine { message: text }),
        c => Err(corrupt(&format!("unknown code {c}"))),
    }
}

/// Allocates `target` through the host engine bound in `opts`' runtime
/// directory. `Ok(None)`: no host engine runs there.
pub(crate) fn alloc_attached(
    target: &str,
    qos: &Qos,
    deadline: Deadline,
    opts: FlowOptions,
) -> Result<Option<FlowEnd>, AllocError> {
    let mut opts = opts;
    let mut flow = match FlowEnd::alloc_local(ENGINE_NAME, qos, deadline, &mut opts) {
        Ok(flow) => flow,
        // No host engine (or no runtime directory to find one in).
        Err(AllocError::NotFound { .. } | AllocError::RuntimeDir(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut request = Vec::with_capacity(1 + target.len());
    request.push(REQUEST_VERSION);
    request.extend_from_slice(target.as_bytes());
    flow.send_deadline(&request, deadline).map_err(request_error)?;
    let granted = match flow.recv_ref_deadline(deadline) {
        Ok(answer) => decode_answer(&answer)?,
        Err(e) => return Err(answer_error(e)),
    };
    let granted = match granted {
        Outcome::Bridged(qos) => qos,
        Outcome::Local(name) => {
            // The target is the host engine itself: the listener is here,
            // reached as any local flow (shared memory, no engine between).
            drop(flow);
            return FlowEnd::alloc_local(&name, qos, deadline, &mut opts).map(Some);
        }
    };
    flow.qos.max_msg = granted.max_msg.min(flow.qos.max_msg);
    flow.qos.peer_timeout = granted.peer_timeout;
    flow.crosses_hosts = true;
    // The request and the answer are the attach's, not the flow's.
    flow.preamble = crate::flow::end::Preamble { sent: flow.sent_count(), received: flow.received_count() };
    Ok(Some(flow))
}

/// Why the request to the host engine was not sent, as the alloc's error.
fn request_error(e: SendError) -> AllocError {
    match e {
        SendError::TimedOut => AllocError::TimedOut,
        SendError::WouldBlock => AllocError::WouldBlock,
        SendError::Closed | SendError::PeerGone { .. } => AllocError::PeerGone,
        SendError::CorruptPeer(c) => AllocError::CorruptPeer(c),
        e => AllocError::HostRequest(Box::new(e)),
    }
}

/// Why the host engine's answer was not received, as the alloc's error.
fn answer_error(e: RecvError) -> AllocError {
    match e {
        RecvError::TimedOut => AllocError::TimedOut,
        RecvError::WouldBlock => AllocError::WouldBlock,
        RecvError::PeerGone { .. } | RecvError::Closed => AllocError::PeerGone,
        RecvError::CorruptPeer(c) => AllocError::CorruptPeer(c),
        RecvError::FdSlots { .. } => {
            AllocError::CorruptPeer(Corruption::Protocol("the host engine's answer carries descriptors".into()))
        }
        e => AllocError::HostAnswer(Box::new(e)),
    }
}

/// An attach the engine refused at once: the flow, to answer on, and why.
pub(super) type Refused = Box<(FlowEnd, AllocError)>;

/// A running host service: accepts attaching applications until dropped.
pub struct HostService {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HostService {
    /// Binds [`ENGINE_NAME`] in `runtime_dir` (default: the per-user one)
    /// and hands every attaching application's flow to `open`.
    pub(super) fn start(
        runtime_dir: Option<PathBuf>,
        open: impl Fn(&str, FlowEnd) -> Result<(), Refused> + Send + 'static,
    ) -> Result<HostService, BindError> {
        let mut opts = ListenerOptions::new();
        if let Some(dir) = runtime_dir {
            opts = opts.runtime_dir(dir);
        }
        let mut listener = FlowListener::bind_with(ENGINE_NAME, opts)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ringflow-host".into())
            .spawn(move || {
                // SYNC: Relaxed; a flag polled between accepts, no data rides on it.
                while !stopping.load(Ordering::Relaxed) {
                    // Waits for a connection before accepting it: a short
                    // deadline on the accept itself would also cut short
                    // the setup of a connection that arrived just before it
                    // (the application would see the engine hang up).
                    let mut pfd = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                    // SAFETY: one pollfd, a live local, for the call's length.
                    let ready = unsafe { libc::poll(&mut pfd, 1, 100) };
                    if ready <= 0 {
                        if ready < 0 {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        continue;
                    }
                    match listener.accept_timeout(ACCEPT_SETUP) {
                        Ok(flow) => serve(flow, &open),
                        Err(AcceptError::TimedOut | AcceptError::WouldBlock) => {}
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            })
            .map_err(BindError::Spawn)?;
        Ok(HostService { stop, thread: Some(thread) })
    }
}

/// Reads one application's request and passes its flow on.
fn serve(mut flow: FlowEnd, open: &impl Fn(&str, FlowEnd) -> Result<(), Refused>) {
    let request = match flow.recv_ref_timeout(REQUEST_WAIT) {
        Ok(m) => m.to_vec(),
        Err(_) => return, // gone or silent: nothing to answer
    };
    let target = match request.split_first() {
        Some((&REQUEST_VERSION, rest)) => String::from_utf8_lossy(rest).into_owned(),
        _ => {
            let e = AllocError::CorruptPeer(Corruption::Protocol("attach request of an unknown version".into()));
            let _ = flow.try_send(&encode_outcome(&Err(e)));
            return;
        }
    };
    let pid = flow.peer_pid();
    tracing::info!(to = %target, pid = ?pid, "an application opens a flow through this host's engine");
    if let Err(refused) = open(&target, flow) {
        let (mut flow, e) = *refused;
        tracing::info!(to = %target, pid = ?pid, reason = %e, "the application's flow was refused");
        let _ = flow.try_send(&encode_outcome(&Err(e)));
    }
}

impl Drop for HostService {
    fn drop(&mut self) {
        // SYNC: Relaxed; see the accept loop.
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use decode_bridged as decode_outcome;

    #[test]
    fn a_local_answer_names_the_flow_to_allocate_here() {
        assert!(matches!(decode_answer(&encode_local("hello")), Ok(Outcome::Local(n)) if n == "hello"));
        assert!(matches!(decode_answer(&encode_local("../x")), Err(AllocError::InvalidName(_))));
        // Only where the application asked for it.
        assert!(matches!(decode_outcome(&encode_local("hello")), Err(AllocError::CorruptPeer(_))));
    }
    use std::io;

    #[test]
    fn outcomes_round_trip_and_garbage_is_corrupt() {
        let ok = decode_outcome(&encode_outcome(&Ok(Qos::data()))).unwrap();
        assert_eq!(ok, Qos::data());
        let e = AllocError::NotFound { name: "svc".into(), dir: None };
        assert!(matches!(
            decode_outcome(&encode_outcome(&Err(e))),
            Err(AllocError::NotFound { name, dir: None }) if name == "svc"
        ));
        assert!(matches!(decode_outcome(&[]), Err(AllocError::CorruptPeer(Corruption::Protocol(_)))));
        assert!(matches!(decode_outcome(&[99; OUTCOME_FIXED]), Err(AllocError::CorruptPeer(Corruption::Protocol(_)))));
        assert!(matches!(
            decode_outcome(&vec![0; OUTCOME_FIXED + MAX_TEXT + 1]),
            Err(AllocError::CorruptPeer(Corruption::Protocol(_)))
        ));
    }

    /// The host engine's "could not reach" is its report, not an OS error
    /// of this process: it comes back as `RemoteUnreachable` with the
    /// address and the engine's own words, from either unreachable variant.
    #[test]
    fn unreachable_is_the_host_engines_report() {
        let e = AllocError::EngineUnreachable { addr: "10.0.0.1:7000".into(), source: io::Error::other("refused") };
        match decode_outcome(&encode_outcome(&Err(e))) {
            Err(AllocError::RemoteUnreachable { addr, reported }) => {
                assert_eq!(addr, "10.0.0.1:7000");
                assert_eq!(reported, "refused");
            }
            other => panic!("{other:?}"),
        }
        let e = AllocError::RemoteUnreachable { addr: "10.0.0.2:7000".into(), reported: "no route".into() };
        let back = decode_outcome(&encode_outcome(&Err(e))).unwrap_err();
        assert!(
            matches!(&back, AllocError::RemoteUnreachable { addr, reported } if addr == "10.0.0.2:7000" && reported == "no route")
        );
        let text = back.to_string();
        assert!(text.contains("host engine") && text.contains("10.0.0.2:7000") && text.contains("no route"), "{text}");
    }

    /// Every outcome code decodes to the variant that names its cause.
    #[test]
    fn each_code_decodes_to_its_own_variant() {
        let round = |e: AllocError| decode_outcome(&encode_outcome(&Err(e))).unwrap_err();
        assert!(matches!(round(AllocError::PermissionDenied), AllocError::PermissionDenied));
        assert!(matches!(round(AllocError::Refused(Refusal::InvalidQos)), AllocError::Refused(Refusal::InvalidQos)));
        assert!(matches!(round(AllocError::PeerGone), AllocError::PeerGone));
        assert!(matches!(
            round(AllocError::InvalidTarget { target: "x@y".into() }),
            AllocError::InvalidTarget { target } if target == "x@y"
        ));
        assert!(matches!(
            round(AllocError::NotFound { name: "svc".into(), dir: Some("/run/x/ringflow".into()) }),
            AllocError::NotFound { name, dir: Some(d) } if name == "svc" && d == std::path::Path::new("/run/x/ringflow")
        ));
        // A host that does not resolve is its own code, not a syntax error.
        let e = round(AllocError::UnresolvedHost { host: "nosuchhost".into(), reason: "no such name".into() });
        assert!(
            matches!(&e, AllocError::UnresolvedHost { host, reason } if host == "nosuchhost" && reason == "no such name"),
            "{e:?}"
        );
        assert!(e.to_string().contains("\"nosuchhost\" does not resolve: no such name"), "{e}");
        assert!(matches!(round(AllocError::RemoteBusy), AllocError::RemoteBusy));
        assert!(matches!(round(AllocError::RemoteShuttingDown), AllocError::RemoteShuttingDown));
        assert!(matches!(round(AllocError::EngineShuttingDown), AllocError::EngineShuttingDown));
        assert!(matches!(
            round(AllocError::RemoteResourceLimit { errno: libc::EMFILE }),
            AllocError::RemoteResourceLimit { errno } if errno == libc::EMFILE
        ));
        // Anything else travels as the engine's text, not as an OS error.
        match round(AllocError::EngineNetworkDown) {
            AllocError::HostEngine { message } => assert_eq!(message, AllocError::EngineNetworkDown.to_string()),
            other => panic!("{other:?}"),
        }
    }

    /// A request or answer that fails for a reason with a variant of its
    /// own keeps it; the rest keep the flow error whole, as its source.
    #[test]
    fn request_and_answer_errors_keep_their_cause() {
        use std::error::Error as _;
        assert!(matches!(request_error(SendError::TimedOut), AllocError::TimedOut));
        assert!(matches!(request_error(SendError::PeerGone { delivered: 0 }), AllocError::PeerGone));
        let e = request_error(SendError::Wait(io::Error::from_raw_os_error(libc::EINVAL)));
        assert!(matches!(&e, AllocError::HostRequest(b) if matches!(**b, SendError::Wait(_))));
        let inner = e.source().expect("the send error");
        assert!(inner.downcast_ref::<SendError>().is_some());
        assert!(matches!(answer_error(RecvError::Closed), AllocError::PeerGone));
        assert!(matches!(
            answer_error(RecvError::FdSlots { needed: 1 }),
            AllocError::CorruptPeer(Corruption::Protocol(_))
        ));
        let c = Corruption::Frame("x".into());
        assert!(matches!(answer_error(RecvError::CorruptPeer(c.clone())), AllocError::CorruptPeer(k) if k == c));
        let e = answer_error(RecvError::Io(io::Error::from_raw_os_error(libc::EBADF)));
        assert!(matches!(&e, AllocError::HostAnswer(b) if matches!(**b, RecvError::Io(_))));
        assert!(e.source().and_then(|s| s.downcast_ref::<RecvError>()).is_some());
    }
}
