//! The engines' pre-shared key on disk (`net.key_file`), as Corosync keeps
//! its authkey: a file of 32 to 4096 bytes, all of which are the key,
//! that only its owner may read or write. A key file that group or others
//! can reach is refused: a key that many can read invites nobody in
//! particular. Also the nonces of the hello, from the kernel's random
//! source. Nothing here ever prints a key's bytes.

use std::fmt;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use crate::wire::auth::{Nonce, MAX_KEY_LEN, MIN_KEY_LEN, NONCE_LEN};
use crate::wire::AuthKey;

/// Why the key file was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyFileError {
    /// It could not be opened or read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// It is not a regular file.
    NotAFile {
        /// The file.
        path: PathBuf,
    },
    /// Group or others have permissions on it.
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It holds too few or too many bytes.
    Length {
        /// The file.
        path: PathBuf,
        /// Bytes it holds (at most one more than the longest key, as read).
        len: usize,
    },
}

impl KeyFileError {
    /// A copy for reports that keep the original (io errors keep kind and text).
    pub(crate) fn duplicate(&self) -> KeyFileError {
        match self {
            KeyFileError::Io { path, source } => {
                KeyFileError::Io { path: path.clone(), source: std::io::Error::new(source.kind(), source.to_string()) }
            }
            KeyFileError::NotAFile { path } => KeyFileError::NotAFile { path: path.clone() },
            KeyFileError::Permissions { path, mode } => KeyFileError::Permissions { path: path.clone(), mode: *mode },
            KeyFileError::Length { path, len } => KeyFileError::Length { path: path.clone(), len: *len },
        }
    }
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFileError::Io { path, source } => write!(f, "key file {} (net.key_file): {source}", path.display()),
            KeyFileError::NotAFile { path } => {
                write!(f, "key file {} (net.key_file) is not a regular file", path.display())
            }
            KeyFileError::Permissions { path, mode } => write!(
                f,
                "key file {} (net.key_file) has mode {:04o}: group and others must have no access \
                 (chmod 600 {})",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
            KeyFileError::Length { path, len } => write!(
                f,
                "key file {} (net.key_file) holds {len} bytes; a key has {MIN_KEY_LEN} to {MAX_KEY_LEN} \
                 (make one with `head -c 64 /dev/urandom > FILE && chmod 600 FILE`)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for KeyFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeyFileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads the key at `path`, refusing a file that group or others may
/// access, one that is not a regular file, and one of a bad length. The
/// mode is read from the opened file, so it is the mode of what is read.
pub fn load_key_file(path: &Path) -> Result<AuthKey, KeyFileError> {
    let io = |source| KeyFileError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile { path: path.to_path_buf() });
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions { path: path.to_path_buf(), mode });
    }
    let mut bytes = Vec::with_capacity(MAX_KEY_LEN + 1);
    file.take(MAX_KEY_LEN as u64 + 1).read_to_end(&mut bytes).map_err(io)?;
    let key = AuthKey::from_bytes(&bytes).map_err(|e| KeyFileError::Length { path: path.to_path_buf(), len: e.len });
    bytes.iter_mut().for_each(|b| *b = 0);
    key
}

/// A fresh nonce from the kernel's random source (`getrandom`).
pub fn random_nonce() -> std::io::Result<Nonce> {
    let mut nonce = [0u8; NONCE_LEN];
    let mut filled = 0;
    while filled < NONCE_LEN {
        let rest = &mut nonce[filled..];
        // SAFETY: the pointer and length describe `rest`, a live, writable
        // part of `nonce`; getrandom writes at most that many bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_key_file_of_a_good_length_loads() {
        let dir = ringflow_testkit::temp_dir("authkey");
        let path = write(dir.path(), "key", &[7; 64], 0o600);
        let key = load_key_file(&path).unwrap();
        assert_eq!(format!("{key:?}"), "AuthKey(64 bytes)");
        // Read-only for the owner is fine too.
        assert!(load_key_file(&write(dir.path(), "ro", &[7; 32], 0o400)).is_ok());
    }

    #[test]
    fn a_key_file_others_can_reach_is_refused_with_the_fix() {
        let dir = ringflow_testkit::temp_dir("authkey");
        for mode in [0o640, 0o604, 0o660, 0o644, 0o666, 0o610] {
            let path = write(dir.path(), "key", &[7; 64], mode);
            match load_key_file(&path) {
                Err(e @ KeyFileError::Permissions { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains(&format!("{mode:04o}")) && text.contains("chmod 600"), "{text}");
                }
                other => panic!("mode {mode:o}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_key_file_of_a_bad_length_or_kind_is_refused() {
        let dir = ringflow_testkit::temp_dir("authkey");
        let short = write(dir.path(), "short", &[7; 31], 0o600);
        assert!(matches!(load_key_file(&short), Err(KeyFileError::Length { len: 31, .. })));
        let empty = write(dir.path(), "empty", b"", 0o600);
        assert!(matches!(load_key_file(&empty), Err(KeyFileError::Length { len: 0, .. })));
        let long = write(dir.path(), "long", &[7; MAX_KEY_LEN + 100], 0o600);
        assert!(matches!(load_key_file(&long), Err(KeyFileError::Length { len, .. }) if len == MAX_KEY_LEN + 1));
        let missing = dir.path().join("missing");
        assert!(matches!(load_key_file(&missing), Err(KeyFileError::Io { .. })));
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(load_key_file(&sub), Err(KeyFileError::NotAFile { .. })));
    }

    #[test]
    fn nonces_differ() {
        let (a, b) = (random_nonce().unwrap(), random_nonce().unwrap());
        assert_ne!(a, b);
    }
}
