//! A TCP proxy that can cut the link it carries and restore it: a test
//! points an engine at the proxy instead of its peer, then cuts (every
//! connection through it is shut down and new ones are refused: accepted
//! and closed at once) and restores (new connections are forwarded again).
//!
//! Its threads block in `accept`, `read` and `write` (never spin); dropping
//! the proxy cuts everything, stops its threads and joins the acceptor.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// A proxy from a loopback port of its own to `target`.
pub struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    cut: AtomicBool,
    stop: AtomicBool,
    /// Both ends of every connection forwarded, to shut down on a cut.
    open: Mutex<Vec<TcpStream>>,
    /// Connections refused while cut.
    refused: AtomicU64,
}

impl Shared {
    fn cut_all(&self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Proxy {
    /// A proxy on a free loopback port, forwarding to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || accept_loop(listener, target, &shared))
        };
        Proxy { addr, target, shared, acceptor: Some(acceptor) }
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Cuts the link: every connection is shut down, new ones are closed
    /// as soon as they are accepted.
    pub fn cut(&self) {
        // SYNC: SeqCst; pairs with the acceptor's load: a connection
        // accepted after this store is refused, one before is in `open`
        // (registered under the lock `cut_all` takes next).
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.cut_all();
    }

    /// Restores the link: new connections are forwarded again.
    pub fn restore(&self) {
        // SYNC: SeqCst; pairs with the acceptor's load.
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    /// Whether the link is cut.
    pub fn is_cut(&self) -> bool {
        // SYNC: SeqCst; a plain flag, see `cut`.
        self.shared.cut.load(Ordering::SeqCst)
    }

    /// Connections refused while cut, so far.
    pub fn refused(&self) -> u64 {
        // SYNC: Relaxed; a counter read alone.
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SYNC: SeqCst; pairs with the acceptor's load after its accept.
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
        // Wakes the acceptor out of `accept`.
        let _ = TcpStream::connect(self.addr);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
    for incoming in listener.incoming() {
        // SYNC: SeqCst; pairs with the stores in `Drop` and `cut`.
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = incoming else { continue };
        // SYNC: SeqCst; pairs with the store in `cut`/`restore`.
        if shared.cut.load(Ordering::SeqCst) {
            // SYNC: Relaxed; a counter.
            shared.refused.fetch_add(1, Ordering::Relaxed);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect(target) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let clones = (client.try_clone(), server.try_clone(), client.try_clone(), server.try_clone());
        let (Ok(c1), Ok(s1), Ok(c2), Ok(s2)) = clones else { continue };
        {
            let mut open = shared.open.lock().unwrap_or_else(PoisonError::into_inner);
            // SYNC: SeqCst; a cut between the check above and here must
            // not leave this connection open: checked again under the lock.
            if shared.cut.load(Ordering::SeqCst) {
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                continue;
            }
            open.push(client);
            open.push(server);
        }
        // Detached: each ends when either side closes or a cut shuts them.
        std::thread::spawn(move || pump(c1, s1));
        std::thread::spawn(move || pump(s2, c2));
    }
}

/// Copies `from` to `to` until either ends; then shuts both.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = std::thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                let Ok(mut s) = stream else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        (addr, handle)
    }

    fn round_trip(addr: SocketAddr) -> std::io::Result<[u8; 4]> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        s.write_all(b"ping")?;
        let mut back = [0u8; 4];
        s.read_exact(&mut back)?;
        Ok(back)
    }

    #[test]
    fn forwards_cuts_and_restores() {
        let (target, server) = echo_server();
        let proxy = Proxy::start(target);
        assert_eq!(proxy.target(), target);
        let mut open = TcpStream::connect(proxy.addr()).expect("connect");
        open.write_all(b"ab").expect("write");
        let mut two = [0u8; 2];
        open.read_exact(&mut two).expect("echo");
        assert_eq!(&two, b"ab");
        proxy.cut();
        assert!(proxy.is_cut());
        // The open connection ends; a new one is closed at once.
        open.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
        assert!(matches!(open.read(&mut two), Ok(0) | Err(_)));
        assert!(round_trip(proxy.addr()).is_err());
        assert!(proxy.refused() >= 1);
        proxy.restore();
        assert_eq!(&round_trip(proxy.addr()).expect("forwarded again"), b"ping");
        drop(proxy);
        server.join().expect("the echo server ends after two connections");
    }
}
