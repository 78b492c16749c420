//! A filesystem path as a Unix-domain socket address. It must never let a
//! path be silently cut short: the kernel would bind or connect to a
//! different, truncated name.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Longest socket path in bytes: `sun_path` is 108 bytes and ends with NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// The socket path of a name does not fit `sun_path`: the runtime directory
/// is too long for this name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTooLong {
    /// The socket path that does not fit.
    pub path: PathBuf,
    /// Its length in bytes.
    pub len: usize,
    /// The most a Unix socket address (`sun_path`) holds.
    pub max: usize,
}

impl fmt::Display for PathTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "socket path {} is {} bytes long, the limit is {} (use a shorter runtime directory or name)",
            self.path.display(),
            self.len,
            self.max
        )
    }
}

impl std::error::Error for PathTooLong {}

/// A `sockaddr_un` holding a path, with its length.
pub(super) struct UnixAddr {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

impl UnixAddr {
    pub(super) fn new(path: &Path) -> Result<Self, PathTooLong> {
        let bytes = path.as_os_str().as_bytes();
        // Paths built from a RuntimeDir and a validated name hold no NUL
        // (both come from OS strings or checked names).
        debug_assert!(!bytes.contains(&0), "socket path with NUL: {path:?}");
        if bytes.len() > MAX_SOCKET_PATH {
            return Err(PathTooLong { path: path.to_owned(), len: bytes.len(), max: MAX_SOCKET_PATH });
        }
        // SAFETY: sockaddr_un is plain integers and a byte array, for which
        // all-zero is a valid value (and leaves sun_path NUL-terminated).
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = src as libc::c_char;
        }
        let len = std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
        Ok(UnixAddr { addr, len: len as libc::socklen_t })
    }

    pub(super) fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.addr as *const libc::sockaddr_un).cast()
    }

    pub(super) fn len(&self) -> libc::socklen_t {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sun_path_size_is_pinned() {
        // SAFETY: all-zero is a valid sockaddr_un (see UnixAddr::new).
        let addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        assert_eq!(addr.sun_path.len(), MAX_SOCKET_PATH + 1);
    }

    #[test]
    fn longest_path_fits_and_one_more_is_refused() {
        let fits = PathBuf::from(format!("/{}", "p".repeat(MAX_SOCKET_PATH - 1)));
        let addr = UnixAddr::new(&fits).unwrap();
        assert_eq!(addr.len() as usize, std::mem::offset_of!(libc::sockaddr_un, sun_path) + MAX_SOCKET_PATH + 1);
        let long = PathBuf::from(format!("/{}", "p".repeat(MAX_SOCKET_PATH)));
        let err = UnixAddr::new(&long).err().unwrap();
        assert_eq!((err.len, err.max), (MAX_SOCKET_PATH + 1, MAX_SOCKET_PATH));
    }
}
