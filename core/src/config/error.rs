//! Why a configuration was refused, and where the offending value came from.
//!
//! One variant per cause. Every message names the key, the value as it was
//! given and what is allowed, so a user can fix the file or variable without
//! reading code. Nothing here ever holds a half-built configuration.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Nobody set it: the built-in default.
    Default,
    /// Set in code through [`EngineConfigBuilder`](super::EngineConfigBuilder).
    Builder,
    /// A TOML document, at a 1-based line and column (the column counts bytes).
    Toml {
        /// The file it was read from; `None` for [`EngineConfig::from_toml_str`](super::EngineConfig::from_toml_str).
        path: Option<PathBuf>,
        /// 1-based line.
        line: usize,
        /// 1-based column, in bytes.
        column: usize,
    },
    /// An environment variable.
    Env {
        /// The variable's name, e.g. `RINGFLOW_ENGINE_THREADS`.
        var: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("(the default)"),
            Origin::Builder => f.write_str("(set in code)"),
            Origin::Toml { path: Some(path), line, column } => {
                write!(f, "(at {}:{line}:{column})", path.display())
            }
            Origin::Toml { path: None, line, column } => write!(f, "(at TOML line {line}, column {column})"),
            Origin::Env { var } => write!(f, "(from environment variable {var})"),
        }
    }
}

/// A configuration was refused: by the builder, the TOML parser or an
/// environment override. The variants about one key carry a boxed payload,
/// which keeps the error small for the `Result`s it travels in.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key (or `RINGFLOW_*` variable) that is not part of the configuration.
    UnknownKey(Box<UnknownKey>),
    /// The value has the right type but is out of range or malformed.
    BadValue(Box<BadValue>),
    /// The value has the wrong type (a string where an integer belongs, a
    /// table where a list belongs, text that is not a number in a variable).
    WrongType(Box<WrongType>),
    /// Two keys whose values are each allowed but not together.
    Conflict(Box<Conflict>),
    /// The configuration file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The document is not valid TOML.
    Syntax {
        /// The file; `None` when parsing a string.
        path: Option<PathBuf>,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (bytes) of the error.
        column: usize,
        /// The parser's description.
        message: String,
    },
}

/// See [`ConfigError::UnknownKey`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownKey {
    /// The key as written: a dotted path such as `engine.thread`, or the
    /// variable's name.
    pub key: String,
    /// Where it was written.
    pub origin: Origin,
    /// The keys (or variables) allowed at that level.
    pub allowed: Vec<String>,
}

/// See [`ConfigError::BadValue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadValue {
    /// Dotted key, e.g. `io_uring.entries` (a variable's name for a value
    /// that is not UTF-8).
    pub key: String,
    /// The value as given: TOML source text, or the variable's value quoted.
    pub value: String,
    /// What the key accepts.
    pub allowed: String,
    /// What exactly is wrong, when more can be said than `allowed`.
    pub reason: Option<String>,
    /// Where it was set.
    pub origin: Origin,
}

/// See [`ConfigError::WrongType`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrongType {
    /// Dotted key.
    pub key: String,
    /// The type the key takes, e.g. "an integer".
    pub expected: &'static str,
    /// What was found: its type (in TOML) and the value as given.
    pub found: String,
    /// What the key accepts.
    pub allowed: String,
    /// Where it was set.
    pub origin: Origin,
}

/// See [`ConfigError::Conflict`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The first key.
    pub key: &'static str,
    /// Its value, as TOML.
    pub value: String,
    /// Where it was set.
    pub origin: Origin,
    /// The key it conflicts with.
    pub other_key: &'static str,
    /// That key's value, as TOML.
    pub other_value: String,
    /// Where that one was set.
    pub other_origin: Origin,
    /// Why they cannot go together, and what would be accepted.
    pub reason: String,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let UnknownKey { key, origin, allowed } = self;
        match origin {
            Origin::Env { .. } => write!(f, "unknown environment variable `{key}`; allowed: {}", allowed.join(", ")),
            _ => write!(f, "unknown key `{key}` {origin}; allowed here: {}", allowed.join(", ")),
        }
    }
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BadValue { key, value, allowed, reason, origin } = self;
        write!(f, "bad value for `{key}` {origin}: {value}")?;
        if let Some(reason) = reason {
            write!(f, " ({reason})")?;
        }
        write!(f, "; allowed: {allowed}")
    }
}

impl fmt::Display for WrongType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let WrongType { key, expected, found, allowed, origin } = self;
        write!(f, "wrong type for `{key}` {origin}: expected {expected}, found {found}; allowed: {allowed}")
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Conflict { key, value, origin, other_key, other_value, other_origin, reason } = self;
        write!(f, "`{key}` = {value} {origin} conflicts with `{other_key}` = {other_value} {other_origin}: {reason}")
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownKey(e) => e.fmt(f),
            ConfigError::BadValue(e) => e.fmt(f),
            ConfigError::WrongType(e) => e.fmt(f),
            ConfigError::Conflict(e) => e.fmt(f),
            ConfigError::Io { path, source } => {
                write!(f, "cannot read configuration file {}: {source}", path.display())
            }
            ConfigError::Syntax { path, line, column, message } => {
                let name = path.as_ref().map_or_else(|| "TOML".to_owned(), |p| p.display().to_string());
                write!(f, "syntax error in {name} at line {line}, column {column}: {message}")
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<UnknownKey> for ConfigError {
    fn from(e: UnknownKey) -> Self {
        ConfigError::UnknownKey(Box::new(e))
    }
}

impl From<BadValue> for ConfigError {
    fn from(e: BadValue) -> Self {
        ConfigError::BadValue(Box::new(e))
    }
}

impl From<WrongType> for ConfigError {
    fn from(e: WrongType) -> Self {
        ConfigError::WrongType(Box::new(e))
    }
}

impl From<Conflict> for ConfigError {
    fn from(e: Conflict) -> Self {
        ConfigError::Conflict(Box::new(e))
    }
}

/// 1-based line and byte column of `offset` in `input`; an offset past the
/// end points just after the last byte. Never panics.
pub(crate) fn line_column(input: &str, offset: usize) -> (usize, usize) {
    let bytes = input.as_bytes();
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    (line, before.len() - line_start + 1)
}
