//! Lossy flows over UDP. Each engine has one UDP socket, on its listen
//! address when it has one (so a remote engine finds it at the address it
//! dials), else on an ephemeral port. Its datagrams are received through
//! the engine's io_uring like the streams.
//!
//! A link uses UDP only once it has *received* a datagram from the peer, so
//! a path that carries TCP but not UDP (a proxy, a firewall) keeps its
//! lossy flows on TCP. To get there, every link sends a hello datagram with
//! each keepalive: the dialling side to the address it dialled, the
//! accepting side to the port the dialler's datagrams name, at the IP of
//! its TCP connection.
//!
//! A datagram is a header and whole `Data` frames of lossy flows, as many
//! as fit in [`MAX_PACKED`] bytes (one larger frame travels alone, up to the
//! receive buffer size; a larger one goes over TCP). What is lost is never
//! resent: the receiver's sequencer counts the gap, and the application
//! sees it in `FlowStats::lost`.
//!
//! ```text
//! magic "RFU1" | engine_id u64 | flags u8 (1: the sender dialled the link) | 0u8 | sender's UDP port u16
//! ```

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use super::*;

const MAGIC: [u8; 4] = *b"RFU1";
const HEADER_LEN: usize = 16;
const FLAG_DIALLER: u8 = 1;
/// Datagrams packing several frames stay below a common path MTU.
const MAX_PACKED: usize = 1472;

/// The engine's UDP socket.
pub(super) struct Udp {
    /// For sending (nonblocking); a clone receives through the io_uring.
    sock: UdpSocket,
    /// Its receiving side in the TCP driver.
    pub(super) conn: ConnId,
    port: u16,
    /// The largest datagram the receive buffers take.
    max_datagram: usize,
    counters: Arc<Shared>,
    /// Some link's datagram holds frames not sent yet (`flush_udp` has
    /// something to do; a duty cycle without lossy traffic skips it).
    queued: bool,
}

/// Why the UDP socket could not be set up (lossy flows then ride TCP).
#[derive(Debug)]
enum UdpStartError {
    /// A socket call failed.
    Socket(#[allow(dead_code)] std::io::Error),
    /// The network driver refused the socket.
    Adopt(#[allow(dead_code)] crate::uring::TcpError),
}

/// A link's UDP state.
#[derive(Default)]
pub(super) struct LinkUdp {
    /// Where the peer's datagrams go, once known.
    pub(super) peer: Option<SocketAddr>,
    /// A datagram came from the peer: UDP works on this path.
    pub(super) proven: bool,
    /// The datagram being packed.
    out: Vec<u8>,
}

impl Bridge {
    /// Binds the UDP socket (after the TCP listener, on its address).
    pub(super) fn start_udp(&mut self, bound: Option<SocketAddr>) {
        let Some(tcp) = self.tcp.as_mut() else { return };
        let at = bound.unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
        let started = UdpSocket::bind(at).map_err(UdpStartError::Socket).and_then(|sock| {
            sock.set_nonblocking(true).map_err(UdpStartError::Socket)?;
            let port = sock.local_addr().map_err(UdpStartError::Socket)?.port();
            let recv = sock.try_clone().map_err(UdpStartError::Socket)?;
            let conn = tcp.adopt_datagram(recv).map_err(UdpStartError::Adopt)?;
            let counters = Arc::clone(&self.shared);
            Ok(Udp { sock, conn, port, max_datagram: self.cfg.buffer_size, counters, queued: false })
        });
        // Without UDP, lossy flows ride TCP: worse under loss, never wrong.
        self.udp = started.ok();
    }

    /// Handles one datagram (copied out of its receive buffer).
    pub(super) fn on_datagram(&mut self, datagram: &[u8]) {
        let Some((engine, dialler, port)) = parse_header(datagram) else { return };
        if datagram.len() > HEADER_LEN {
            self.shared.count(|c| &c.datagrams_received);
        }
        // The sender dialled the link: it is one we accepted, and back.
        let link = self
            .links
            .iter()
            .find(|(_, l)| l.peer_engine == Some(engine) && l.addr.is_none() == dialler)
            .map(|(&id, _)| id);
        let Some(link) = link else { return };
        let tcp_peer = self.links.get(&link).and_then(|l| l.conn).and_then(|c| self.tcp.as_ref()?.peer_addr(c));
        let mut answer = false;
        if let Some(l) = self.links.get_mut(&link) {
            answer = !l.udp.proven && dialler;
            l.udp.proven = true;
            if dialler {
                if let Some(ip) = tcp_peer.map(|a| a.ip()) {
                    l.udp.peer = Some(SocketAddr::new(ip, port));
                }
            }
        }
        if answer {
            // The dialler learns the path works from our hello.
            self.udp_hellos();
        }
        let decoder = self.decoder;
        let mut rest = &datagram[HEADER_LEN..];
        while let Ok(Some((frame, n))) = decoder.decode(rest) {
            let crc = rest[5] & wire::FLAG_CRC32C != 0;
            rest = &rest[n..];
            // Only lossy data rides UDP; anything else is ignored, and a
            // frame that fails its flow's checks ends the datagram (what it
            // held is counted lost by the sequencer).
            if let Frame::Data { flow_id, .. } = frame {
                if self.flows.get(&(link, flow_id)).is_some_and(|b| !b.reliable) && !self.on_data(link, &frame, crc) {
                    break;
                }
            }
        }
    }

    /// Sends every link's hello datagram (with the keepalives).
    pub(super) fn udp_hellos(&mut self) {
        let Some(udp) = self.udp.as_mut() else { return };
        let mut ready = std::mem::take(&mut self.scratch.links);
        let up = self.links.iter().filter(|(_, l)| l.conn.is_some_and(|c| self.conns.get(&c).is_some_and(|c| c.ready)));
        ready.extend(up.map(|(&id, _)| id));
        for id in ready.drain(..) {
            let Some(l) = self.links.get_mut(&id) else { continue };
            let to = if l.addr.is_some() { l.addr } else { l.udp.peer };
            if let Some(to) = to {
                let hello = header(self.hello.engine_id, l.addr.is_some(), udp.port);
                let _ = udp.sock.send_to(&hello, to);
            }
        }
        self.scratch.links = ready;
    }

    /// Flushes every link's packed datagram.
    pub(super) fn flush_udp(&mut self) {
        let Some(udp) = self.udp.as_mut().filter(|u| u.queued) else { return };
        udp.queued = false;
        for l in self.links.values_mut() {
            send_packed(udp, l);
        }
    }
}

/// Packs a lossy `Data` frame into `link`'s datagram if UDP works on it and
/// the frame fits a datagram; false: send it over TCP instead.
pub(super) fn queue_datagram(
    udp: Option<&mut Udp>,
    engine_id: u64,
    link: &mut Link,
    frame: &Frame<'_>,
    checksum: Checksum,
) -> bool {
    let Some(udp) = udp else { return false };
    if !link.udp.proven || link.udp.peer.is_none() && link.addr.is_none() {
        return false;
    }
    let Ok(len) = wire::encoded_len(frame, checksum) else { return false };
    if HEADER_LEN + len > udp.max_datagram {
        return false;
    }
    if !link.udp.out.is_empty() && link.udp.out.len() + len > MAX_PACKED {
        send_packed(udp, link);
    }
    if link.udp.out.is_empty() {
        push_header(&mut link.udp.out, engine_id, link.addr.is_some(), udp.port);
    }
    udp.queued = true;
    wire::encode(frame, checksum, &mut link.udp.out).is_ok()
}

/// Sends the datagram packed for `link`, if any (a full socket buffer
/// drops it: it is lossy data).
fn send_packed(udp: &mut Udp, link: &mut Link) {
    if link.udp.out.len() <= HEADER_LEN {
        return;
    }
    let to = if link.addr.is_some() { link.addr } else { link.udp.peer };
    match to.map(|to| udp.sock.send_to(&link.udp.out, to)) {
        Some(Ok(_)) => udp.counters.count(|c| &c.datagrams_sent),
        _ => udp.counters.count(|c| &c.datagrams_dropped),
    }
    link.udp.out.clear();
}

fn push_header(out: &mut Vec<u8>, engine_id: u64, dialler: bool, port: u16) {
    out.extend_from_slice(&header(engine_id, dialler, port));
}

/// A datagram header (a hello datagram is one alone).
fn header(engine_id: u64, dialler: bool, port: u16) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[..4].copy_from_slice(&MAGIC);
    h[4..12].copy_from_slice(&engine_id.to_le_bytes());
    h[12] = if dialler { FLAG_DIALLER } else { 0 };
    h[14..16].copy_from_slice(&port.to_le_bytes());
    h
}

/// (sender's engine id, whether it dialled the link, its UDP port); `None`
/// for anything that is not a well-formed header.
fn parse_header(d: &[u8]) -> Option<(u64, bool, u16)> {
    if d.len() < HEADER_LEN || d[..4] != MAGIC || d[13] != 0 || d[12] & !FLAG_DIALLER != 0 {
        return None;
    }
    let engine = u64::from_le_bytes(d[4..12].try_into().ok()?);
    let port = u16::from_le_bytes(d[14..16].try_into().ok()?);
    Some((engine, d[12] & FLAG_DIALLER != 0, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_garbage_is_refused() {
        let mut out = Vec::new();
        push_header(&mut out, 0xDEAD_BEEF_0123, true, 7000);
        assert_eq!(parse_header(&out), Some((0xDEAD_BEEF_0123, true, 7000)));
        assert_eq!(parse_header(&out[..HEADER_LEN - 1]), None);
        let mut bad = out.clone();
        bad[0] = b'X';
        assert_eq!(parse_header(&bad), None);
        let mut bad = out.clone();
        bad[12] = 0x80;
        assert_eq!(parse_header(&bad), None);
        let mut bad = out;
        bad[13] = 1;
        assert_eq!(parse_header(&bad), None);
    }
}
