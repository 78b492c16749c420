//! The per-user runtime directory holding each bound name's socket and lock
//! file. It must never be a directory another user could have pre-created,
//! replaced or can write into: anyone who can write there can squat names or
//! impersonate listeners. So it is created 0700 and, when it already exists,
//! refused unless it is a real directory (not a symlink) owned by our
//! effective uid with no group or other permission bits.

use super::name::{validate_name, NameError};
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Environment variable naming the runtime directory explicitly.
pub const RUNTIME_DIR_ENV: &str = "RINGFLOW_RUNTIME_DIR";
const SOCKET_SUFFIX: &str = ".sock";
const LOCK_SUFFIX: &str = ".lock";

/// A checked runtime directory (see the module header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeDir {
    path: PathBuf,
    /// Opened with [`RuntimeDir::shared`]: other users may reach its names.
    shared: bool,
}

/// Why a runtime directory was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum DirError {
    /// The path exists but is not a directory; a symlink counts, since it is
    /// not followed.
    NotADirectory {
        /// The path refused.
        path: PathBuf,
    },
    /// The directory belongs to another user.
    WrongOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
        /// This process's effective uid.
        expected: u32,
    },
    /// The directory grants group or other users some access (a shared
    /// one: lets someone other than its owner write).
    TooPermissive {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A system call on the directory failed.
    Io {
        /// The system call that failed.
        op: &'static str,
        /// The path it was called on.
        path: PathBuf,
        /// Its error.
        source: io::Error,
    },
}

impl fmt::Display for DirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DirError::NotADirectory { path } => {
                write!(f, "runtime directory {}: exists but is not a directory (symlinks are refused)", path.display())
            }
            DirError::WrongOwner { path, owner, expected } => {
                write!(f, "runtime directory {}: owned by uid {owner}, expected uid {expected}", path.display())
            }
            DirError::TooPermissive { path, mode } => {
                write!(f, "runtime directory {}: mode {mode:04o} lets other users in (expected 0700; a shared one: no group or other write)", path.display())
            }
            DirError::Io { op, path, source } => write!(f, "runtime directory {}: {op}: {source}", path.display()),
        }
    }
}

impl std::error::Error for DirError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DirError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why listing the bound names failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ListError {
    /// Reading the directory failed.
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// Why reading it failed.
        source: io::Error,
    },
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListError::ReadDir { path, source } => write!(f, "listing {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for ListError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ListError::ReadDir { source, .. } => Some(source),
        }
    }
}

impl RuntimeDir {
    /// The user's runtime directory: `$RINGFLOW_RUNTIME_DIR` if set, else
    /// `$XDG_RUNTIME_DIR/ringflow` if that variable names an existing
    /// directory, else `ringflow-<euid>` in the temporary directory
    /// (`$TMPDIR`, else `/tmp`). Created if missing.
    pub fn resolve() -> Result<Self, DirError> {
        let explicit = std::env::var_os(RUNTIME_DIR_ENV);
        let xdg = std::env::var_os("XDG_RUNTIME_DIR");
        Self::at(default_path(explicit, xdg, &std::env::temp_dir(), effective_uid()))
    }

    /// The runtime directory at `path` (made absolute against the current
    /// directory), created 0700 if missing. The parent must exist.
    pub fn at(path: impl Into<PathBuf>) -> Result<Self, DirError> {
        let path = path.into();
        let path = std::path::absolute(&path).map_err(|source| DirError::Io { op: "absolute", path, source })?;
        match fs::symlink_metadata(&path) {
            Ok(meta) => check(&path, &meta)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => create(&path)?,
            Err(source) => return Err(DirError::Io { op: "lstat", path, source }),
        }
        Ok(RuntimeDir { path, shared: false })
    }

    /// A runtime directory shared between users: an existing directory
    /// (not a symlink) that nobody but its owner can write (no group or
    /// other write bit), owned by this process's effective uid (a listener
    /// binding names there) or by another user (whose names this process
    /// means to reach: choosing the directory is trusting its owner). It is
    /// never created here: its owner makes it with the group and mode that
    /// say who may reach its names, say `install -d -m 0750 -g clients DIR`.
    /// Sockets bound in it are made mode 0666, so the directory's
    /// permissions decide who reaches a name and each listener's
    /// [`Permit`](super::Permit) who is admitted.
    pub fn shared(path: impl Into<PathBuf>) -> Result<Self, DirError> {
        let path = path.into();
        let path = std::path::absolute(&path).map_err(|source| DirError::Io { op: "absolute", path, source })?;
        let meta =
            fs::symlink_metadata(&path).map_err(|source| DirError::Io { op: "lstat", path: path.clone(), source })?;
        if !meta.file_type().is_dir() {
            return Err(DirError::NotADirectory { path });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(DirError::TooPermissive { path, mode: meta.mode() & 0o7777 });
        }
        Ok(RuntimeDir { path, shared: true })
    }

    /// Whether other users may reach this directory's names (it was opened
    /// with [`RuntimeDir::shared`]).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the socket of flow `name` lives.
    pub fn socket_path(&self, name: &str) -> Result<PathBuf, NameError> {
        validate_name(name)?;
        Ok(self.path.join(format!("{name}{SOCKET_SUFFIX}")))
    }

    /// Where the lock file of flow `name` lives (held by its listener).
    pub fn lock_path(&self, name: &str) -> Result<PathBuf, NameError> {
        validate_name(name)?;
        Ok(self.path.join(format!("{name}{LOCK_SUFFIX}")))
    }

    /// The names that currently have a socket file, sorted. A crashed
    /// listener's socket stays listed until the name is bound again;
    /// connecting to it reports `NotFound`.
    pub fn list_names(&self) -> Result<Vec<String>, ListError> {
        let read_error = |source| ListError::ReadDir { path: self.path.clone(), source };
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.path).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|s| s.strip_suffix(SOCKET_SUFFIX)) else {
                continue;
            };
            // A file that vanished since readdir is simply no longer bound.
            let is_socket = entry.file_type().is_ok_and(|t| t.is_socket());
            if is_socket && validate_name(name).is_ok() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }
}

/// The effective uid of this process.
fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Chooses the directory from the environment (pure, so tests need not set
/// process-wide variables).
fn default_path(explicit: Option<OsString>, xdg: Option<OsString>, tmp: &Path, euid: u32) -> PathBuf {
    if let Some(path) = explicit.filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    if let Some(xdg) = xdg.map(PathBuf::from).filter(|p| p.is_absolute() && p.is_dir()) {
        return xdg.join("ringflow");
    }
    tmp.join(format!("ringflow-{euid}"))
}

fn create(path: &Path) -> Result<(), DirError> {
    match DirBuilder::new().mode(0o700).create(path) {
        // The umask may have removed owner bits (it cannot add any): restore
        // them so we can use the directory.
        Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(|source| DirError::Io {
            op: "chmod",
            path: path.to_owned(),
            source,
        })?,
        // Created concurrently, by us or by someone else: checked below.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(source) => return Err(DirError::Io { op: "mkdir", path: path.to_owned(), source }),
    }
    let meta =
        fs::symlink_metadata(path).map_err(|source| DirError::Io { op: "lstat", path: path.to_owned(), source })?;
    check(path, &meta)
}

fn check(path: &Path, meta: &fs::Metadata) -> Result<(), DirError> {
    if !meta.file_type().is_dir() {
        return Err(DirError::NotADirectory { path: path.to_owned() });
    }
    let expected = effective_uid();
    if meta.uid() != expected {
        return Err(DirError::WrongOwner { path: path.to_owned(), owner: meta.uid(), expected });
    }
    if meta.mode() & 0o077 != 0 {
        return Err(DirError::TooPermissive { path: path.to_owned(), mode: meta.mode() & 0o7777 });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::tests::TestDir;

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn creates_missing_directory_0700() {
        let tmp = TestDir::new();
        let rt = RuntimeDir::at(tmp.path().join("rt")).unwrap();
        assert!(rt.path().is_dir());
        assert_eq!(mode_of(rt.path()), 0o700);
        // Opening it again accepts what we created.
        assert_eq!(RuntimeDir::at(rt.path()).unwrap(), rt);
    }

    #[test]
    fn refuses_group_or_other_access() {
        let tmp = TestDir::new();
        let dir = tmp.path().join("open");
        DirBuilder::new().mode(0o755).create(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        match RuntimeDir::at(&dir) {
            Err(DirError::TooPermissive { mode, .. }) => assert_eq!(mode, 0o755),
            other => panic!("expected TooPermissive, got {other:?}"),
        }
    }

    #[test]
    fn refuses_a_file_and_a_symlink() {
        let tmp = TestDir::new();
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(RuntimeDir::at(&file), Err(DirError::NotADirectory { .. })));
        let target = tmp.path().join("target");
        DirBuilder::new().mode(0o700).create(&target).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(RuntimeDir::at(&link), Err(DirError::NotADirectory { .. })));
    }

    #[test]
    fn refuses_another_users_directory() {
        if effective_uid() != 0 {
            eprintln!("skipped: only root can give a directory to another user");
            return;
        }
        let tmp = TestDir::new();
        let dir = tmp.path().join("theirs");
        DirBuilder::new().mode(0o700).create(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        match RuntimeDir::at(&dir) {
            Err(DirError::WrongOwner { owner, expected, .. }) => assert_eq!((owner, expected), (65534, 0)),
            other => panic!("expected WrongOwner, got {other:?}"),
        }
    }

    #[test]
    fn a_shared_directory_lets_nobody_but_its_owner_write() {
        let tmp = TestDir::new();
        let dir = tmp.path().join("shared");
        DirBuilder::new().mode(0o700).create(&dir).unwrap();
        for mode in [0o750, 0o711, 0o755, 0o2750] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            let rt = RuntimeDir::shared(&dir).unwrap();
            assert!(rt.is_shared() && rt.path() == dir, "mode {mode:o}");
        }
        for mode in [0o770, 0o757, 0o1777] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            match RuntimeDir::shared(&dir) {
                Err(DirError::TooPermissive { mode: m, .. }) => assert_eq!(m, mode),
                other => panic!("mode {mode:o}: expected TooPermissive, got {other:?}"),
            }
        }
        // Not a symlink, and never created.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(matches!(RuntimeDir::shared(&link), Err(DirError::NotADirectory { .. })));
        let missing = RuntimeDir::shared(tmp.path().join("missing")).unwrap_err();
        assert!(matches!(missing, DirError::Io { op: "lstat", .. }), "{missing:?}");
        assert!(!tmp.path().join("missing").exists());
        // A private directory is not a shared one.
        assert!(!RuntimeDir::at(tmp.path().join("private")).unwrap().is_shared());
    }

    #[test]
    fn a_shared_directory_may_be_another_users() {
        if effective_uid() != 0 {
            eprintln!("skipped: only root can give a directory to another user");
            return;
        }
        let tmp = TestDir::new();
        let dir = tmp.path().join("theirs");
        DirBuilder::new().mode(0o755).create(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        assert!(RuntimeDir::shared(&dir).unwrap().is_shared());
    }

    #[test]
    fn missing_parent_is_an_io_error() {
        let tmp = TestDir::new();
        let err = RuntimeDir::at(tmp.path().join("no/such")).unwrap_err();
        assert!(matches!(err, DirError::Io { op: "mkdir", .. }), "{err:?}");
    }

    #[test]
    fn chooses_directory_from_environment() {
        let tmp = TestDir::new();
        let xdg = Some(tmp.path().as_os_str().to_owned());
        let explicit = Some(OsString::from("/somewhere/else"));
        let t = Path::new("/var/tmp");
        assert_eq!(default_path(explicit, xdg.clone(), t, 7), PathBuf::from("/somewhere/else"));
        assert_eq!(default_path(Some(OsString::new()), xdg.clone(), t, 7), tmp.path().join("ringflow"));
        assert_eq!(default_path(None, xdg, t, 7), tmp.path().join("ringflow"));
        let missing = Some(tmp.path().join("missing").into_os_string());
        assert_eq!(default_path(None, missing, t, 7), PathBuf::from("/var/tmp/ringflow-7"));
        assert_eq!(default_path(None, Some(OsString::from("relative")), t, 7), PathBuf::from("/var/tmp/ringflow-7"));
        assert_eq!(default_path(None, None, Path::new("/tmp"), 1000), PathBuf::from("/tmp/ringflow-1000"));
    }

    #[test]
    fn valid_name_maps_to_paths_in_the_directory() {
        let tmp = TestDir::new();
        let rt = RuntimeDir::at(tmp.path()).unwrap();
        assert_eq!(rt.socket_path("orders").unwrap(), tmp.path().join("orders.sock"));
        assert_eq!(rt.lock_path("orders").unwrap(), tmp.path().join("orders.lock"));
        assert_eq!(rt.socket_path("a/b"), Err(NameError::PathSeparator));
        assert_eq!(rt.lock_path(".."), Err(NameError::Reserved));
    }

    #[test]
    fn lists_only_socket_files() {
        let tmp = TestDir::new();
        let rt = RuntimeDir::at(tmp.path()).unwrap();
        assert_eq!(rt.list_names().unwrap(), Vec::<String>::new());
        let _b = std::os::unix::net::UnixListener::bind(tmp.path().join("beta.sock")).unwrap();
        let _a = std::os::unix::net::UnixListener::bind(tmp.path().join("alpha.sock")).unwrap();
        fs::write(tmp.path().join("plain.sock"), b"not a socket").unwrap();
        fs::write(tmp.path().join("alpha.lock"), b"").unwrap();
        assert_eq!(rt.list_names().unwrap(), ["alpha", "beta"]);
    }
}
