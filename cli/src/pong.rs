//! `ringflow pong NAME`: binds NAME and echoes every message of every flow
//! allocated to it (one thread per flow), saying on stdout when a flow
//! arrives and when it leaves, with its peer's pid (for a flow from
//! another host, the pid of the engine that carries it) and how many
//! messages it echoed. `--remote` takes flows from other hosts too (through this
//! host's engine); `--once` exits after the first flow leaves. Ctrl-C
//! stops it.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use ringflow::{AcceptError, Flow, Listener, ListenerOptions, RecvError};

/// What `ringflow pong` was asked.
pub(crate) struct PongArgs {
    pub(crate) name: String,
    pub(crate) remote: bool,
    pub(crate) once: bool,
    pub(crate) runtime_dir: Option<PathBuf>,
}

/// How often the waits look at Ctrl-C.
const LOOK: Duration = Duration::from_millis(200);

/// Echoes `flow` until its peer leaves (or Ctrl-C); the messages echoed,
/// or why it stopped.
fn echo(mut flow: Flow) -> Result<u64, String> {
    let mut buf = vec![0u8; flow.qos().max_msg];
    let mut n = 0u64;
    loop {
        match flow.recv_into_timeout(&mut buf, LOOK) {
            Ok(len) => {
                flow.send(&buf[..len]).map_err(|e| format!("echo {n}: {e}"))?;
                n += 1;
            }
            Err(RecvError::Closed) => return Ok(n),
            Err(RecvError::TimedOut) if !crate::stopped() => {}
            Err(RecvError::TimedOut) => return Ok(n),
            Err(e) => return Err(format!("after {n} messages: {e}")),
        }
    }
}

pub(crate) fn pong(args: PongArgs) -> ExitCode {
    let fail = |e: &dyn std::fmt::Display| {
        let _ = writeln!(io::stderr(), "ringflow pong: {e}");
        ExitCode::FAILURE
    };
    let mut opts = ListenerOptions::new().remote(args.remote);
    if let Some(dir) = &args.runtime_dir {
        opts = opts.runtime_dir(dir);
    }
    let mut listener = match Listener::bind_with(&args.name, opts) {
        Ok(l) => l,
        Err(e) => return fail(&format_args!("cannot bind {:?}: {e}", args.name)),
    };
    crate::install_stop_handlers();
    let say = |line: std::fmt::Arguments<'_>| {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let (left_tx, left_rx) = mpsc::channel::<()>();
    say(format_args!("PONG listening on {:?} (Ctrl-C stops)", args.name));
    let mut served = 0u64;
    while !crate::stopped() {
        if args.once && left_rx.try_recv().is_ok() {
            break;
        }
        let flow = match listener.accept_timeout(LOOK) {
            Ok(f) => f,
            Err(AcceptError::TimedOut | AcceptError::WouldBlock) => continue,
            Err(e) => return fail(&format_args!("accept on {:?}: {e}", args.name)),
        };
        served += 1;
        let id = served;
        let peer = flow.peer_pid().map_or_else(|| "another host".to_owned(), |pid| format!("pid {pid}"));
        say(format_args!("flow {id} from {peer} arrived ({} B messages at most)", flow.qos().max_msg));
        let left = left_tx.clone();
        let spawned = std::thread::Builder::new().name(format!("pong-{id}")).spawn(move || {
            match echo(flow) {
                Ok(n) => say(format_args!("flow {id} from {peer} left after {n} messages")),
                Err(e) => say(format_args!("flow {id} from {peer} ended: {e}")),
            }
            let _ = left.send(());
        });
        if let Err(e) = spawned {
            return fail(&format_args!("no thread for flow {id}: {e}"));
        }
    }
    ExitCode::SUCCESS
}
