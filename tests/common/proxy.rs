//! A TCP proxy for tests that break links on purpose: it forwards each
//! accepted connection to a target with two blocking threads, and on
//! command cuts every open connection mid-stream (without draining what it
//! holds) or refuses new ones for a while. It is a test tool: it never
//! inspects, reorders or delays the bytes it forwards, and it never spins
//! (every thread blocks in accept, read or write).
//!
//! Its own tests live in `tests/remote_faults.rs` (tests here would run in
//! every test binary that includes `common`).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long the proxy waits to reach its target for a new connection.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes one forwarding thread moves per read.
const CHUNK: usize = 64 << 10;
/// A failed accept (out of descriptors, say) is retried after this pause
/// rather than at once.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// A TCP proxy from [`addr`](Proxy::addr) to a target; see the module header.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    target: SocketAddr,
    state: Mutex<State>,
}

/// Everything the threads share, behind one lock (nothing here is hot).
#[derive(Default)]
struct State {
    stopping: bool,
    paused: bool,
    /// Connections accepted and forwarded.
    connections: usize,
    /// Connections accepted and closed at once (paused, or the target
    /// could not be reached).
    refused: usize,
    cuts: usize,
    /// Flip one bit in the next chunk forwarded upstream (client to target).
    flip_upstream: bool,
    /// Read what comes upstream and drop it (frames lost in a link that is
    /// about to be cut).
    swallow_upstream: bool,
    /// Bits flipped so far.
    flipped: usize,
    next_id: u64,
    open: Vec<Link>,
    pumps: Vec<JoinHandle<()>>,
}

/// One forwarded connection: the accepted stream and the one dialled.
struct Link {
    id: u64,
    client: TcpStream,
    server: TcpStream,
    /// Forwarding threads still running; the link leaves `open` at zero.
    pumps_left: usize,
}

impl Link {
    fn shut(&self) {
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Proxy {
    /// Listens on 127.0.0.1 (a port of the kernel's choice) and forwards
    /// every connection to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("proxy: local address");
        let shared = Arc::new(Shared { target, state: Mutex::new(State::default()) });
        let for_acceptor = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(listener, for_acceptor))
            .expect("proxy: spawn the accept thread");
        Proxy { addr, shared, acceptor: Some(acceptor) }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts down (both directions, both sockets) every connection open now,
    /// mid-stream: bytes the proxy has read but not yet written are lost,
    /// bytes still in its sockets are never read. New connections are still
    /// accepted (unless [paused](Self::pause)). Returns how many were cut.
    pub fn cut(&self) -> usize {
        let mut st = self.shared.state();
        st.cuts += 1;
        let links = std::mem::take(&mut st.open);
        for link in &links {
            link.shut();
        }
        links.len()
    }

    /// How many times [`cut`](Self::cut) was called.
    pub fn cuts(&self) -> usize {
        self.shared.state().cuts
    }

    /// Connections accepted and forwarded so far (refused ones not counted).
    pub fn connections(&self) -> usize {
        self.shared.state().connections
    }

    /// Connections accepted and closed at once, so far.
    pub fn refused(&self) -> usize {
        self.shared.state().refused
    }

    /// Connections being forwarded now.
    pub fn open(&self) -> usize {
        self.shared.state().open.len()
    }

    /// While paused, a new connection is accepted and closed at once (the
    /// link is down); connections already open are left alone.
    pub fn pause(&self, paused: bool) {
        self.shared.state().paused = paused;
    }

    /// Flips one bit in the next chunk forwarded from client to target: the
    /// bit error a checksum must catch.
    pub fn flip_next_upstream(&self) {
        self.shared.state().flip_upstream = true;
    }

    /// While on, what the client sends is read and dropped (as frames are
    /// lost in a link that breaks before they arrive); the target's side
    /// still flows. A [`cut`](Self::cut) then makes the loss final.
    pub fn swallow_upstream(&self, on: bool) {
        self.shared.state().swallow_upstream = on;
    }

    /// Bits flipped so far.
    pub fn flipped(&self) -> usize {
        self.shared.state().flipped
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.state().stopping = true;
        // Unblock the accept thread: it sees `stopping` on its next accept.
        // If even that connect fails, the thread is left blocked (detached)
        // rather than hanging the test in join.
        if TcpStream::connect_timeout(&self.addr, DIAL_TIMEOUT).is_ok() {
            if let Some(acceptor) = self.acceptor.take() {
                let _ = acceptor.join();
            }
        }
        let (links, pumps) = {
            let mut st = self.shared.state();
            (std::mem::take(&mut st.open), std::mem::take(&mut st.pumps))
        };
        for link in &links {
            link.shut();
        }
        drop(links);
        for pump in pumps {
            let _ = pump.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        let (paused, cuts_before) = {
            let st = shared.state();
            if st.stopping {
                return;
            }
            (st.paused, st.cuts)
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                thread::sleep(ACCEPT_RETRY);
                continue;
            }
        };
        if paused {
            shared.state().refused += 1;
            drop(client);
            continue;
        }
        let server = match TcpStream::connect_timeout(&shared.target, DIAL_TIMEOUT) {
            Ok(server) => server,
            Err(_) => {
                shared.state().refused += 1;
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(client_reader), Ok(server_reader)) = (client.try_clone(), server.try_clone()) else {
            shared.state().refused += 1;
            continue;
        };
        let (Ok(client_writer), Ok(server_writer)) = (client.try_clone(), server.try_clone()) else {
            shared.state().refused += 1;
            continue;
        };
        let mut st = shared.state();
        let link = Link { id: st.next_id, client, server, pumps_left: 2 };
        st.next_id += 1;
        // A cut (or the end) that came while we dialled applies to this
        // connection too: it was open then.
        if st.stopping || st.cuts != cuts_before {
            link.shut();
            continue;
        }
        st.connections += 1;
        let id = link.id;
        st.open.push(link);
        for (name, from, to) in
            [("proxy-up", client_reader, server_writer), ("proxy-down", server_reader, client_writer)]
        {
            let for_pump = Arc::clone(&shared);
            let upstream = name == "proxy-up";
            match thread::Builder::new().name(name.into()).spawn(move || pump(&for_pump, id, from, to, upstream)) {
                Ok(handle) => st.pumps.push(handle),
                Err(_) => {
                    // Without both threads the link is useless: cut it.
                    if let Some(pos) = st.open.iter().position(|l| l.id == id) {
                        st.open.swap_remove(pos).shut();
                    }
                }
            }
        }
    }
}

/// Forwards `from` to `to` until `from` ends (passed on as a half-close) or
/// either side fails (the whole link is then shut).
fn pump(shared: &Shared, id: u64, mut from: TcpStream, mut to: TcpStream, upstream: bool) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                break;
            }
            Ok(n) => {
                if upstream {
                    let mut st = shared.state();
                    if st.swallow_upstream {
                        continue;
                    }
                    if st.flip_upstream && n > 0 {
                        // Mid-chunk: most likely inside a message's payload.
                        buf[n / 2] ^= 0x10;
                        st.flip_upstream = false;
                        st.flipped += 1;
                    }
                }
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
                break;
            }
        }
    }
    let mut st = shared.state();
    if let Some(pos) = st.open.iter().position(|l| l.id == id) {
        st.open[pos].pumps_left -= 1;
        if st.open[pos].pumps_left == 0 {
            st.open.swap_remove(pos);
        }
    }
}
