//! Flow names: the user-chosen word a listener binds and a client connects
//! to. A name becomes one path component in the runtime directory, so it must
//! never be able to step out of that directory (no separators, no "." or
//! ".."), carry bytes a terminal or a C string would misread (control
//! characters, NUL), or make the socket path overflow `sun_path`.

use std::fmt;

/// Longest name, in bytes. With the ".sock" suffix and a separator a name
/// takes at most 70 of the 107 usable bytes of `sun_path`, which leaves 37
/// for the directory: `/tmp/ringflow-4294967295` and
/// `/run/user/4294967295/ringflow` both fit. Longer directories (explicit
/// ones, or a long `$TMPDIR`) are refused when binding or connecting, with a
/// typed error.
pub const MAX_NAME_LEN: usize = 64;

/// Why a name was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The name is the empty string.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    TooLong {
        /// The name's length in bytes.
        len: usize,
        /// The longest name allowed.
        max: usize,
    },
    /// The name contains '/', which would make it a path rather than a name.
    PathSeparator,
    /// The name contains NUL or another control character.
    ControlChar,
    /// The name is "." or "..", which name directories, not flows.
    Reserved,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("flow name is empty"),
            NameError::TooLong { len, max } => write!(f, "flow name is {len} bytes long, the limit is {max}"),
            NameError::PathSeparator => f.write_str("flow name contains '/'"),
            NameError::ControlChar => f.write_str("flow name contains a control character"),
            NameError::Reserved => f.write_str("\".\" and \"..\" are not flow names"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks that `name` can name a flow. A leading '.' is allowed (such flows
/// are merely hidden from `ls`); whitespace and non-ASCII letters are too.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: name.len(), max: MAX_NAME_LEN });
    }
    if name == "." || name == ".." {
        return Err(NameError::Reserved);
    }
    if name.contains('/') {
        return Err(NameError::PathSeparator);
    }
    // `is_control` covers NUL, the rest of C0, DEL and C1.
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlChar);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["orders", "md.l2", ".hidden", "a b", "é-flow", "..x", "x..", &"n".repeat(MAX_NAME_LEN)] {
            assert_eq!(validate_name(name), Ok(()), "{name:?}");
        }
    }

    #[test]
    fn refuses_each_kind_of_bad_name() {
        assert_eq!(validate_name(""), Err(NameError::Empty));
        let long = "n".repeat(MAX_NAME_LEN + 1);
        assert_eq!(validate_name(&long), Err(NameError::TooLong { len: MAX_NAME_LEN + 1, max: MAX_NAME_LEN }));
        // Multi-byte characters count in bytes, as the path does.
        let wide = "é".repeat(MAX_NAME_LEN / 2 + 1);
        assert!(matches!(validate_name(&wide), Err(NameError::TooLong { .. })));
        assert_eq!(validate_name("a/b"), Err(NameError::PathSeparator));
        assert_eq!(validate_name("/"), Err(NameError::PathSeparator));
        assert_eq!(validate_name("a\0b"), Err(NameError::ControlChar));
        assert_eq!(validate_name("a\nb"), Err(NameError::ControlChar));
        assert_eq!(validate_name("a\u{7f}"), Err(NameError::ControlChar));
        assert_eq!(validate_name("a\u{9b}"), Err(NameError::ControlChar));
        assert_eq!(validate_name("."), Err(NameError::Reserved));
        assert_eq!(validate_name(".."), Err(NameError::Reserved));
    }

    #[test]
    fn errors_display() {
        assert_eq!(NameError::TooLong { len: 70, max: 64 }.to_string(), "flow name is 70 bytes long, the limit is 64");
    }
}
