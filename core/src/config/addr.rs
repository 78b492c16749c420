//! Network addresses as the configuration holds them: `host:port` and
//! `name@host:port`, checked for form only.
//!
//! This module never resolves a name (no DNS at configuration time: a host
//! that is down or not yet in DNS must not make a config invalid) and never
//! opens a socket. The engine resolves when it listens or connects.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::control::{validate_name, NameError};

/// Longest DNS name (RFC 1035, without the trailing dot).
const MAX_HOST_LEN: usize = 253;
/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// A host (IP literal or DNS name) and a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    host: String,
    port: u16,
}

/// Why a `host:port` or `name@host:port` string was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddrError {
    /// No `:port` after the host.
    MissingPort,
    /// The port is not a number in 0..=65535.
    BadPort(String),
    /// Port 0, where a peer's real port is needed.
    PortZero,
    /// The host is neither an IP address nor a DNS name.
    BadHost(String),
    /// The name before `@` is not a valid flow name.
    BadName(NameError),
    /// The name before `@` contains a comma or white space, which the
    /// comma-separated environment form could not carry.
    NameNotListable(String),
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrError::MissingPort => f.write_str("no `:port`"),
            AddrError::BadPort(port) => write!(f, "port {port:?} is not a number in 0..=65535"),
            AddrError::PortZero => f.write_str("port 0 cannot be connected to"),
            AddrError::BadHost(host) => write!(f, "host {host:?} is neither an IP address nor a DNS name"),
            AddrError::BadName(err) => write!(f, "bad peer name: {err}"),
            AddrError::NameNotListable(name) => {
                write!(f, "peer name {name:?} contains a comma or white space")
            }
        }
    }
}

impl std::error::Error for AddrError {}

impl HostPort {
    /// Parses `host:port`: an IPv4 or bracketed IPv6 socket address
    /// (`[::1]:7000`), or a DNS name and a port. Port 0 is accepted (a
    /// listener then gets a port from the kernel).
    pub fn parse(text: &str) -> Result<HostPort, AddrError> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(HostPort { host: addr.ip().to_string(), port: addr.port() });
        }
        let (host, port) = text.rsplit_once(':').ok_or(AddrError::MissingPort)?;
        // `[v6]:port` that SocketAddr refused, or a bare `a:b:c`: either way not a host.
        if host.contains(':') || host.starts_with('[') {
            return Err(AddrError::BadHost(host.to_owned()));
        }
        let port = port.parse::<u16>().map_err(|_| AddrError::BadPort(port.to_owned()))?;
        if !is_dns_name(host) {
            return Err(AddrError::BadHost(host.to_owned()));
        }
        Ok(HostPort { host: host.to_owned(), port })
    }

    /// The host: an IP address in canonical form, or a DNS name as written.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket address when the host is an IP literal; `None` for a DNS
    /// name, which the engine resolves when it uses it.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        self.host.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, self.port))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = AddrError;

    fn from_str(text: &str) -> Result<HostPort, AddrError> {
        HostPort::parse(text)
    }
}

/// A remote engine listed in `net.peers`: its address, and optionally the
/// name it is known by (`name@host:port`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    name: Option<String>,
    addr: HostPort,
}

impl Peer {
    /// Parses `host:port` or `name@host:port`. The port must not be 0; the
    /// name must be a valid flow name without commas or white space.
    pub fn parse(text: &str) -> Result<Peer, AddrError> {
        let (name, addr) = match text.split_once('@') {
            Some((name, addr)) => {
                validate_name(name).map_err(AddrError::BadName)?;
                if name.contains(|c: char| c == ',' || c.is_whitespace()) {
                    return Err(AddrError::NameNotListable(name.to_owned()));
                }
                (Some(name.to_owned()), addr)
            }
            None => (None, text),
        };
        let addr = HostPort::parse(addr)?;
        if addr.port == 0 {
            return Err(AddrError::PortZero);
        }
        Ok(Peer { name, addr })
    }

    /// The name before `@`, if one was given.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The remote engine's listen address.
    pub fn addr(&self) -> &HostPort {
        &self.addr
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name}@{}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

impl FromStr for Peer {
    type Err = AddrError;

    fn from_str(text: &str) -> Result<Peer, AddrError> {
        Peer::parse(text)
    }
}

/// A DNS host name: dot-separated labels of letters, digits and inner
/// hyphens, and a last label that is not all digits (so `999.1.1.1`, which
/// is no IP address, is not taken for a name either).
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return false;
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    host.split('.').all(label_ok)
        && !host.rsplit('.').next().is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ip_literals_and_dns_names() {
        for (text, host, port) in [
            ("127.0.0.1:7000", "127.0.0.1", 7000),
            ("[::1]:80", "::1", 80),
            ("0.0.0.0:0", "0.0.0.0", 0),
            ("engine-1.example.com:65535", "engine-1.example.com", 65535),
            ("localhost:1", "localhost", 1),
        ] {
            let addr = HostPort::parse(text).unwrap();
            assert_eq!((addr.host(), addr.port()), (host, port), "{text}");
            assert_eq!(HostPort::parse(&addr.to_string()).unwrap(), addr, "display round-trips");
        }
        assert!(HostPort::parse("[::1]:80").unwrap().socket_addr().is_some());
        assert!(HostPort::parse("localhost:80").unwrap().socket_addr().is_none());
    }

    #[test]
    fn refuses_malformed_addresses() {
        for text in ["", "localhost", ":80", "host:", "host:65536", "host:-1", "::1:80", "[::1", "a b:1", "-a:1"] {
            assert!(HostPort::parse(text).is_err(), "{text:?}");
        }
        assert!(matches!(HostPort::parse("999.1.1.1:80"), Err(AddrError::BadHost(_))));
        assert!(matches!(HostPort::parse(&format!("{}:1", "a".repeat(64))), Err(AddrError::BadHost(_))));
    }

    #[test]
    fn peers_take_an_optional_name_and_a_real_port() {
        let peer = Peer::parse("orders@10.0.0.2:7000").unwrap();
        assert_eq!((peer.name(), peer.addr().to_string().as_str()), (Some("orders"), "10.0.0.2:7000"));
        assert_eq!(Peer::parse(&peer.to_string()).unwrap(), peer);
        assert_eq!(Peer::parse("host:1").unwrap().name(), None);
        assert_eq!(Peer::parse("host:0"), Err(AddrError::PortZero));
        assert!(matches!(Peer::parse("@host:1"), Err(AddrError::BadName(_))));
        assert!(matches!(Peer::parse("a,b@host:1"), Err(AddrError::NameNotListable(_))));
    }
}
