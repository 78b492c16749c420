//! The commands the cluster's log carries, and their encoding: a small
//! versioned binary form written by ringflow (no serde), one log entry
//! holding a batch of commands (AGREED messages travel batched).
//!
//! Decoding treats every byte as hostile (an entry arrives from another
//! engine through Raft): every length is checked against what is left
//! before anything is allocated, and a bad entry is a typed error, never a
//! panic.
//!
//! ```text
//! entry:   version u8 (=1) | count u32 | command * count
//! command: tag u8 | fields
//!   1 Join     group str | host u64 | member u64
//!   2 Leave    group str | host u64 | member u64
//!   3 NodeDown host u64
//!   4 Message  group str | sender u64 | seq u64 | bytes (u32 len + bytes)
//! str:     len u16 | UTF-8 bytes (at most MAX_GROUP_NAME)
//! ```

use std::fmt;

/// The encoding's version; an entry of another version is refused.
pub const ENTRY_VERSION: u8 = 1;
/// Longest group name a command may carry, in bytes.
pub const MAX_GROUP_NAME: usize = 255;

/// One change the log orders; applied by every node in log order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// `member` of host `host` (a cluster node id) joined `group`.
    Join {
        /// The group's name, as named locally.
        group: String,
        /// The cluster node (engine) the member lives on.
        host: u64,
        /// The member's id on its host.
        member: u64,
    },
    /// `member` of host `host` left `group`.
    Leave {
        /// The group's name.
        group: String,
        /// The cluster node the member lived on.
        host: u64,
        /// The member's id on its host.
        member: u64,
    },
    /// Node `host` is down: every member it had leaves every group.
    NodeDown {
        /// The cluster node taken for dead.
        host: u64,
    },
    /// An AGREED message of `group`: delivered everywhere in log order,
    /// once per `(group, sender, seq)` (a re-proposal after a leader change
    /// is dropped by its sequence number).
    Message {
        /// The group it is sent to.
        group: String,
        /// Who sent it (a member id unique across the cluster).
        sender: u64,
        /// The sender's sequence number, increasing from 1.
        seq: u64,
        /// The message.
        bytes: Vec<u8>,
    },
}

const TAG_JOIN: u8 = 1;
const TAG_LEAVE: u8 = 2;
const TAG_NODE_DOWN: u8 = 3;
const TAG_MESSAGE: u8 = 4;

/// Why an entry could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// The entry is empty (Raft's own empty entries are not commands).
    Empty,
    /// A version this node does not know.
    UnknownVersion(u8),
    /// A command tag this node does not know.
    UnknownTag(u8),
    /// The entry ends inside a field.
    Truncated,
    /// Bytes follow the last command.
    TrailingBytes(usize),
    /// A group name longer than [`MAX_GROUP_NAME`] or not UTF-8.
    BadGroupName,
    /// More commands announced than the bytes could hold.
    BadCount(u32),
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::Empty => write!(f, "empty cluster entry"),
            EntryError::UnknownVersion(v) => write!(f, "cluster entry of unknown version {v}"),
            EntryError::UnknownTag(t) => write!(f, "cluster command of unknown tag {t}"),
            EntryError::Truncated => write!(f, "cluster entry cut short"),
            EntryError::TrailingBytes(n) => write!(f, "{n} bytes after the last cluster command"),
            EntryError::BadGroupName => write!(f, "group name too long or not UTF-8"),
            EntryError::BadCount(n) => write!(f, "cluster entry announces {n} commands it cannot hold"),
        }
    }
}

impl std::error::Error for EntryError {}

/// Why commands could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A group name longer than [`MAX_GROUP_NAME`].
    GroupNameTooLong(usize),
    /// A message longer than a u32 can say.
    MessageTooLarge(usize),
    /// More commands than a u32 can count.
    TooManyCommands(usize),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::GroupNameTooLong(n) => write!(f, "group name of {n} bytes (at most {MAX_GROUP_NAME})"),
            EncodeError::MessageTooLarge(n) => write!(f, "message of {n} bytes is too large for an entry"),
            EncodeError::TooManyCommands(n) => write!(f, "{n} commands in one entry"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Encodes a batch of commands as one entry's data.
pub fn encode(commands: &[Command]) -> Result<Vec<u8>, EncodeError> {
    let count = u32::try_from(commands.len()).map_err(|_| EncodeError::TooManyCommands(commands.len()))?;
    let mut out = Vec::with_capacity(5 + commands.iter().map(encoded_len).sum::<usize>());
    out.push(ENTRY_VERSION);
    out.extend_from_slice(&count.to_le_bytes());
    for command in commands {
        encode_command(command, &mut out)?;
    }
    Ok(out)
}

fn encoded_len(command: &Command) -> usize {
    match command {
        Command::Join { group, .. } | Command::Leave { group, .. } => 1 + 2 + group.len() + 16,
        Command::NodeDown { .. } => 1 + 8,
        Command::Message { group, bytes, .. } => 1 + 2 + group.len() + 16 + 4 + bytes.len(),
    }
}

fn encode_command(command: &Command, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match command {
        Command::Join { group, host, member } | Command::Leave { group, host, member } => {
            out.push(if matches!(command, Command::Join { .. }) { TAG_JOIN } else { TAG_LEAVE });
            put_str(group, out)?;
            out.extend_from_slice(&host.to_le_bytes());
            out.extend_from_slice(&member.to_le_bytes());
        }
        Command::NodeDown { host } => {
            out.push(TAG_NODE_DOWN);
            out.extend_from_slice(&host.to_le_bytes());
        }
        Command::Message { group, sender, seq, bytes } => {
            out.push(TAG_MESSAGE);
            put_str(group, out)?;
            out.extend_from_slice(&sender.to_le_bytes());
            out.extend_from_slice(&seq.to_le_bytes());
            let len = u32::try_from(bytes.len()).map_err(|_| EncodeError::MessageTooLarge(bytes.len()))?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(bytes);
        }
    }
    Ok(())
}

pub(super) fn put_str(s: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if s.len() > MAX_GROUP_NAME {
        return Err(EncodeError::GroupNameTooLong(s.len()));
    }
    // Bounded by MAX_GROUP_NAME above.
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Decodes one entry's data into its commands.
pub fn decode(data: &[u8]) -> Result<Vec<Command>, EntryError> {
    let mut r = Checked(data);
    let version = r.u8().map_err(|_| EntryError::Empty)?;
    if version != ENTRY_VERSION {
        return Err(EntryError::UnknownVersion(version));
    }
    let count = r.u32()?;
    // The smallest command (NodeDown) takes 9 bytes: a count the rest
    // cannot hold is refused before anything is allocated for it.
    if count as usize > r.0.len() / 9 {
        return Err(EntryError::BadCount(count));
    }
    let mut commands = Vec::with_capacity(count as usize);
    for _ in 0..count {
        commands.push(decode_command(&mut r)?);
    }
    if !r.0.is_empty() {
        return Err(EntryError::TrailingBytes(r.0.len()));
    }
    Ok(commands)
}

fn decode_command(r: &mut Checked<'_>) -> Result<Command, EntryError> {
    Ok(match r.u8()? {
        tag @ (TAG_JOIN | TAG_LEAVE) => {
            let group = r.str()?;
            let (host, member) = (r.u64()?, r.u64()?);
            if tag == TAG_JOIN {
                Command::Join { group, host, member }
            } else {
                Command::Leave { group, host, member }
            }
        }
        TAG_NODE_DOWN => Command::NodeDown { host: r.u64()? },
        TAG_MESSAGE => {
            let group = r.str()?;
            let (sender, seq) = (r.u64()?, r.u64()?);
            let len = r.u32()? as usize;
            let bytes = r.take(len)?.to_vec();
            Command::Message { group, sender, seq, bytes }
        }
        other => return Err(EntryError::UnknownTag(other)),
    })
}

/// Reads fields off the front of a slice, failing on a short read.
pub(super) struct Checked<'a>(pub(super) &'a [u8]);

impl<'a> Checked<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], EntryError> {
        if self.0.len() < n {
            return Err(EntryError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EntryError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(EntryError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    pub(super) fn u8(&mut self) -> Result<u8, EntryError> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, EntryError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(super) fn u32(&mut self) -> Result<u32, EntryError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64, EntryError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(super) fn str(&mut self) -> Result<String, EntryError> {
        let len = self.u16()? as usize;
        if len > MAX_GROUP_NAME {
            return Err(EntryError::BadGroupName);
        }
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| EntryError::BadGroupName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Command> {
        vec![
            Command::Join { group: "orders".into(), host: 2, member: 7 },
            Command::Message { group: "orders".into(), sender: 7, seq: 1, bytes: b"hello".to_vec() },
            Command::Leave { group: "orders".into(), host: 2, member: 7 },
            Command::NodeDown { host: 3 },
        ]
    }

    #[test]
    fn a_batch_round_trips() {
        let bytes = encode(&sample()).expect("encodes");
        assert_eq!(bytes[0], ENTRY_VERSION);
        assert_eq!(decode(&bytes), Ok(sample()));
        assert_eq!(decode(&encode(&[]).expect("encodes")), Ok(vec![]));
    }

    #[test]
    fn hostile_entries_are_typed_errors() {
        let good = encode(&sample()).expect("encodes");
        assert_eq!(decode(&[]), Err(EntryError::Empty));
        assert_eq!(decode(&[9, 0, 0, 0, 0]), Err(EntryError::UnknownVersion(9)));
        // Every cut of a good entry is refused, never a panic.
        for cut in 1..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(EntryError::TrailingBytes(1)));
        // A count no bytes back: refused before allocating for it.
        assert_eq!(decode(&[1, 0xff, 0xff, 0xff, 0xff]), Err(EntryError::BadCount(u32::MAX)));
        let mut tag = encode(&[Command::NodeDown { host: 1 }]).expect("encodes");
        tag[5] = 99;
        assert_eq!(decode(&tag), Err(EntryError::UnknownTag(99)));
        // A group name that is not UTF-8.
        let mut name = encode(&[Command::Join { group: "ab".into(), host: 1, member: 1 }]).expect("encodes");
        name[8] = 0xff;
        assert_eq!(decode(&name), Err(EntryError::BadGroupName));
        // A message length past the end.
        let mut long =
            encode(&[Command::Message { group: "g".into(), sender: 1, seq: 1, bytes: vec![1] }]).expect("encodes");
        let at = long.len() - 5;
        long[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&long), Err(EntryError::Truncated));
    }

    #[test]
    fn encoding_refuses_what_it_cannot_say() {
        let long = "g".repeat(MAX_GROUP_NAME + 1);
        assert_eq!(
            encode(&[Command::Join { group: long, host: 1, member: 1 }]),
            Err(EncodeError::GroupNameTooLong(MAX_GROUP_NAME + 1))
        );
    }

    proptest! {
        /// Whatever bytes arrive, decoding returns (no panic), and what it
        /// accepts re-encodes to the same bytes.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(commands) = decode(&bytes) {
                prop_assert_eq!(encode(&commands).expect("re-encodes"), bytes);
            }
        }
    }
}
