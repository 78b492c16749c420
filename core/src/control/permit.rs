//! Who may use a listener's flow, decided from the peer's kernel-recorded
//! credentials. The default is the listener's own effective uid only. It
//! must never let a peer in implicitly: not root (uid 0 gets in only if the
//! listener runs as root or allows uid 0), not a group the permit does not
//! name.

use super::conn::{ControlConn, PeerCred};
use std::fmt;
use std::io;

/// The uids and gids allowed to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permit {
    uids: Vec<u32>,
    gids: Vec<u32>,
}

/// A peer the permit does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denied {
    /// The peer's process id.
    pub pid: u32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective (primary) group id.
    pub gid: u32,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer pid {} (uid {}, gid {}) is not permitted", self.pid, self.uid, self.gid)
    }
}

impl std::error::Error for Denied {}

/// Why checking a connected peer failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckPeerError {
    /// The peer is not allowed.
    Denied(Denied),
    /// Its credentials could not be read.
    Credentials {
        /// Why `SO_PEERCRED` or `SO_PEERGROUPS` failed.
        source: io::Error,
    },
}

impl fmt::Display for CheckPeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckPeerError::Denied(d) => d.fmt(f),
            CheckPeerError::Credentials { source } => write!(f, "reading peer credentials: {source}"),
        }
    }
}

impl std::error::Error for CheckPeerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckPeerError::Denied(d) => Some(d),
            CheckPeerError::Credentials { source } => Some(source),
        }
    }
}

impl Default for Permit {
    fn default() -> Self {
        Permit::same_user()
    }
}

impl Permit {
    /// Only peers whose effective uid is ours.
    pub fn same_user() -> Self {
        // SAFETY: geteuid takes no arguments, cannot fail and touches no memory.
        let euid = unsafe { libc::geteuid() };
        Permit { uids: vec![euid], gids: Vec::new() }
    }

    /// Nobody, until `allow_uid` / `allow_gid` add someone.
    pub fn nobody() -> Self {
        Permit { uids: Vec::new(), gids: Vec::new() }
    }

    /// Also allows peers running as `uid`.
    pub fn allow_uid(mut self, uid: u32) -> Self {
        if !self.uids.contains(&uid) {
            self.uids.push(uid);
        }
        self
    }

    /// Also allows peers whose primary or supplementary group is `gid`.
    pub fn allow_gid(mut self, gid: u32) -> Self {
        if !self.gids.contains(&gid) {
            self.gids.push(gid);
        }
        self
    }

    /// Checks a peer by uid and primary gid only (see `check_peer` for
    /// supplementary groups).
    pub fn check(&self, cred: &PeerCred) -> Result<(), Denied> {
        self.check_with_groups(cred, &[])
    }

    /// Checks a peer by uid, primary gid and the supplementary `groups`.
    pub fn check_with_groups(&self, cred: &PeerCred, groups: &[u32]) -> Result<(), Denied> {
        let allowed = self.uids.contains(&cred.uid)
            || self.gids.contains(&cred.gid)
            || groups.iter().any(|g| self.gids.contains(g));
        if allowed {
            Ok(())
        } else {
            Err(Denied { pid: cred.pid, uid: cred.uid, gid: cred.gid })
        }
    }

    /// Checks the peer of `conn`, asking the kernel for its supplementary
    /// groups when a gid is allowed and its uid and primary gid are not
    /// enough (a kernel without SO_PEERGROUPS leaves the primary gid only).
    /// Returns the peer's credentials when allowed.
    pub fn check_peer(&self, conn: &ControlConn) -> Result<PeerCred, CheckPeerError> {
        let cred = conn.peer_cred().map_err(|source| CheckPeerError::Credentials { source })?;
        let denied = match self.check(&cred) {
            Ok(()) => return Ok(cred),
            Err(denied) => denied,
        };
        if self.gids.is_empty() {
            return Err(CheckPeerError::Denied(denied));
        }
        match conn.peer_groups().map_err(|source| CheckPeerError::Credentials { source })? {
            Some(groups) => self.check_with_groups(&cred, &groups).map(|()| cred).map_err(CheckPeerError::Denied),
            None => Err(CheckPeerError::Denied(denied)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn euid() -> u32 {
        // SAFETY: geteuid takes no arguments, cannot fail and touches no memory.
        unsafe { libc::geteuid() }
    }

    fn cred(uid: u32, gid: u32) -> PeerCred {
        PeerCred { pid: 4242, uid, gid }
    }

    #[test]
    fn same_user_allows_only_our_uid() {
        let me = euid();
        let other = me.wrapping_add(1);
        let permit = Permit::same_user();
        assert_eq!(permit.check(&cred(me, 12345)), Ok(()));
        assert_eq!(permit.check(&cred(other, 12345)), Err(Denied { pid: 4242, uid: other, gid: 12345 }));
        assert_eq!(Permit::default(), permit);
    }

    #[test]
    fn root_is_not_implicitly_allowed() {
        let permit = Permit::nobody().allow_uid(1000);
        assert!(permit.check(&cred(0, 0)).is_err());
        assert_eq!(permit.clone().allow_uid(0).check(&cred(0, 0)), Ok(()));
        // A root listener's same-user permit is what lets root in.
        assert_eq!(Permit::same_user().check(&cred(0, 0)).is_ok(), euid() == 0);
    }

    #[test]
    fn allowed_uid_and_gid_get_in() {
        let permit = Permit::nobody().allow_uid(2001).allow_gid(3001);
        assert_eq!(permit.check(&cred(2001, 9)), Ok(()));
        assert_eq!(permit.check(&cred(2002, 3001)), Ok(()));
        assert!(permit.check(&cred(2002, 3002)).is_err());
        assert_eq!(permit.check_with_groups(&cred(2002, 3002), &[7, 3001]), Ok(()));
        assert!(permit.check_with_groups(&cred(2002, 3002), &[7, 8]).is_err());
        // Supplementary groups only count for allowed gids, never for uids.
        assert!(Permit::nobody().allow_uid(7).check_with_groups(&cred(2002, 3002), &[7]).is_err());
    }

    #[test]
    fn checks_a_real_peer() {
        let (a, _b) = ControlConn::pair().unwrap();
        let cred = Permit::same_user().check_peer(&a).unwrap();
        assert_eq!((cred.pid, cred.uid), (std::process::id(), euid()));
        let groups = a.peer_groups().unwrap();
        // SAFETY: getegid takes no arguments, cannot fail and touches no memory.
        let egid = unsafe { libc::getegid() };
        let by_gid = Permit::nobody().allow_gid(egid).check_peer(&a);
        assert!(by_gid.is_ok(), "{by_gid:?} (groups {groups:?})");
        match Permit::nobody().allow_uid(euid().wrapping_add(1)).check_peer(&a) {
            Err(CheckPeerError::Denied(d)) => assert_eq!(d.uid, euid()),
            other => panic!("expected Denied, got {other:?}"),
        }
    }
}
