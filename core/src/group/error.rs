//! One error enum per group operation: join, multicast, receive, leave.
//! Distinct causes get distinct variants; `io::Error` only where a system
//! call failed, with the call named.

use std::fmt;
use std::io;

use ringflow_ring::Corrupt;

use crate::control::{BindError, ConnectError, NameError};
use crate::flow::FlowSetupError;

/// Why a join failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum JoinError {
    /// The name cannot name a group.
    Name(NameError),
    /// The options are unusable (`what` says which).
    BadOptions {
        /// Which option, and why.
        what: &'static str,
    },
    /// The group exists with another guarantee or slow-member policy, or
    /// carries smaller messages than asked for (`what` says which).
    OptionsDiffer {
        /// Which option differs.
        what: &'static str,
    },
    /// The group has as many members as it can hold.
    Full {
        /// The group's member limit.
        max: usize,
    },
    /// The group's keeper does not let this process in (its `Permit`).
    PermissionDenied,
    /// Nothing could be decided before the deadline.
    TimedOut,
    /// `try_join`: the keeper did not answer at once.
    WouldBlock,
    /// The keeper went away during the join and no other took over in time.
    KeeperGone,
    /// The group's memory or the keeper's answers are invalid.
    Corrupt {
        /// What was found wrong.
        what: &'static str,
    },
    /// The group's memory could not be made or mapped.
    Setup(FlowSetupError),
    /// The runtime directory or a system call failed.
    Io {
        /// The system call that failed.
        op: &'static str,
        /// Its error.
        source: io::Error,
    },
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Name(e) => write!(f, "cannot join: {e}"),
            JoinError::BadOptions { what } => write!(f, "cannot join: bad options: {what}"),
            JoinError::OptionsDiffer { what } => write!(f, "cannot join: the group has another {what}"),
            JoinError::Full { max } => write!(f, "cannot join: the group has its maximum of {max} members"),
            JoinError::PermissionDenied => f.write_str("cannot join: the group's keeper refused our credentials"),
            JoinError::TimedOut => f.write_str("cannot join: timed out"),
            JoinError::WouldBlock => f.write_str("cannot join without waiting"),
            JoinError::KeeperGone => f.write_str("cannot join: the group's keeper went away"),
            JoinError::Corrupt { what } => write!(f, "cannot join: corrupt group: {what}"),
            JoinError::Setup(e) => write!(f, "cannot join: {e}"),
            JoinError::Io { op, source } => write!(f, "cannot join: {op}: {source}"),
        }
    }
}

impl std::error::Error for JoinError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JoinError::Name(e) => Some(e),
            JoinError::Setup(e) => Some(e),
            JoinError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<FlowSetupError> for JoinError {
    fn from(e: FlowSetupError) -> Self {
        JoinError::Setup(e)
    }
}

impl From<BindError> for JoinError {
    fn from(e: BindError) -> Self {
        match e {
            BindError::Name(n) => JoinError::Name(n),
            BindError::Io { op, source } => JoinError::Io { op, source },
            other => JoinError::Io { op: "bind", source: io::Error::other(other.to_string()) },
        }
    }
}

impl From<ConnectError> for JoinError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Name(n) => JoinError::Name(n),
            ConnectError::PermissionDenied { .. } => JoinError::PermissionDenied,
            ConnectError::TimedOut => JoinError::TimedOut,
            ConnectError::Io { op, source } => JoinError::Io { op, source },
            other => JoinError::Io { op: "connect", source: io::Error::other(other.to_string()) },
        }
    }
}

/// Why a multicast failed. Nothing was sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum McastError {
    /// `try_*`: no room now (a Block or Evict group waits for its slowest member).
    WouldBlock,
    /// No room before the deadline.
    TimedOut,
    /// Larger than the group's largest message.
    TooLarge {
        /// The message's length in bytes.
        len: usize,
        /// The group's largest message.
        max: usize,
    },
    /// This member was evicted; it is no longer in the group.
    Evicted,
    /// This member has left the group.
    Left,
    /// A group that crosses hosts: this host's engine has lost the
    /// cluster's quorum (the minority side of a partition; the member got
    /// a view with changes of kind `QuorumLost`). Nothing it sends now
    /// could be ordered with the other hosts: try again after the
    /// `QuorumRegained` view.
    NoQuorum,
    /// The log is corrupt (a member scribbled over it).
    Corrupt(Corrupt),
    /// Waiting failed (a futex call).
    Io(io::Error),
}

impl fmt::Display for McastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            McastError::WouldBlock => f.write_str("the group's log is full"),
            McastError::TimedOut => f.write_str("timed out waiting for room in the group's log"),
            McastError::TooLarge { len, max } => write!(f, "a {len}-byte message exceeds the group's maximum of {max}"),
            McastError::Evicted => f.write_str("this member was evicted from the group"),
            McastError::Left => f.write_str("this member has left the group"),
            McastError::NoQuorum => {
                f.write_str("this host's engine has lost the cluster's quorum (a partition): nothing can be sent")
            }
            McastError::Corrupt(c) => write!(f, "corrupt group log: {c}"),
            McastError::Io(e) => write!(f, "waiting for room: {e}"),
        }
    }
}

impl std::error::Error for McastError {}

/// Why a receive failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecvError {
    /// `try_recv`: nothing to deliver now.
    WouldBlock,
    /// Nothing arrived before the deadline.
    TimedOut,
    /// This member was evicted (after its own eviction view, if it could
    /// still read it); it is no longer in the group.
    Evicted,
    /// This member has left the group.
    Left,
    /// Lap groups: the message was overwritten while it was copied (this
    /// member was overtaken); the next receive reports the loss.
    Overwritten,
    /// A frame or a view in the log is corrupt (a member scribbled).
    Corrupt(Corrupt),
    /// Waiting failed (a futex call).
    Io(io::Error),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::WouldBlock => f.write_str("nothing to receive"),
            RecvError::TimedOut => f.write_str("timed out waiting for an event"),
            RecvError::Evicted => f.write_str("this member was evicted from the group"),
            RecvError::Left => f.write_str("this member has left the group"),
            RecvError::Overwritten => f.write_str("the message was overwritten while it was read"),
            RecvError::Corrupt(c) => write!(f, "corrupt group log: {c}"),
            RecvError::Io(e) => write!(f, "waiting for an event: {e}"),
        }
    }
}

impl std::error::Error for RecvError {}

/// Why a leave did not complete cleanly. The member is out of the group
/// either way: its slots are given up and the keeper writes a view.
#[derive(Debug)]
#[non_exhaustive]
pub enum LeaveError {
    /// The keeper did not confirm before the deadline (the leave goes on:
    /// the keeper sees the member's socket close).
    TimedOut,
    /// `try_leave`-style deadline `Now`: the keeper did not confirm at once.
    WouldBlock,
    /// The keeper went away before confirming.
    KeeperGone,
    /// This member had been evicted already.
    Evicted,
}

impl fmt::Display for LeaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaveError::TimedOut => f.write_str("the keeper did not confirm the leave in time"),
            LeaveError::WouldBlock => f.write_str("the keeper did not confirm the leave at once"),
            LeaveError::KeeperGone => f.write_str("the keeper went away before confirming the leave"),
            LeaveError::Evicted => f.write_str("this member had been evicted"),
        }
    }
}

impl std::error::Error for LeaveError {}
