//! The control plane of named flows: a listener binds a name to a
//! SOCK_SEQPACKET Unix socket in the user's private runtime directory, a
//! client connects by name, and the connection stays open as the flow's
//! control channel. It carries the flow's memfd and later descriptors
//! (SCM_RIGHTS), and its hang-up tells either side that the other died.
//!
//! This layer never interprets message contents (the flow layer does) and
//! never lets one user reach another's names: the directory is 0700, the
//! sockets 0600, and a [`Permit`] checks peer credentials on top.

mod addr;
pub(crate) mod claim;
mod cmsg;
mod conn;
mod dir;
mod listener;
mod message;
mod name;
mod permit;
mod ready;

#[cfg(test)]
mod tests;

pub use addr::{PathTooLong, MAX_SOCKET_PATH};
pub use cmsg::SCM_MAX_FD;
pub use conn::{ConnectError, ControlConn, PeerCred};
pub use dir::{DirError, ListError, RuntimeDir, RUNTIME_DIR_ENV};
pub use listener::{AcceptError, BindError, ControlListener};
pub use message::{Received, RecvError, SendError};
pub use name::{validate_name, NameError, MAX_NAME_LEN};
pub use permit::{CheckPeerError, Denied, Permit};
