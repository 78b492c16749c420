//! TOML → [`EngineConfig`](super::EngineConfig): parse the document, then
//! walk its tables against the key table so that each unknown key and bad
//! value is reported with its line, the value as written and what is allowed.
//!
//! Why the `toml` crate rather than a hand parser: TOML's grammar is larger
//! than it looks (dotted keys, inline and array tables, four string forms
//! with escapes, integer radixes and underscores, duplicate-key and
//! table-redefinition rules), and the crate implements all of it, is
//! maintained with the TOML spec, and gives every key and value a byte span
//! — which is what turns "bad value" into "line 12, column 11". It is used
//! without serde: its spanned document tree (`DeTable`) is walked here, as
//! serde's `deny_unknown_fields` could name the key but neither where it
//! stands nor which keys would have been accepted. Its recursion limit keeps
//! hostile nesting from exhausting the stack.
//!
//! This module never panics on any input: spans are sliced with `get`.

use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::builder::EngineConfigBuilder;
use super::error::{line_column, ConfigError, Origin, UnknownKey, WrongType};
use super::keys::{self, Raw};

/// Parses `input` (read from `path`, if any) into `builder`. Keys are
/// checked one by one here; their combination when the builder is built.
pub(crate) fn parse_into(
    builder: &mut EngineConfigBuilder,
    input: &str,
    path: Option<&Path>,
) -> Result<(), ConfigError> {
    let document = DeTable::parse(input).map_err(|err| {
        let (line, column) = line_column(input, err.span().map_or(0, |span| span.start));
        ConfigError::Syntax {
            path: path.map(Path::to_path_buf),
            line,
            column,
            message: err.message().trim_end().to_owned(),
        }
    })?;
    Walker { input, path, builder }.table(document.get_ref(), "")
}

/// One document's walk: its text for spans, its path for messages.
struct Walker<'a, 'b> {
    input: &'a str,
    path: Option<&'a Path>,
    builder: &'b mut EngineConfigBuilder,
}

impl<'a> Walker<'a, '_> {
    /// Applies every entry of the table at `prefix` ("" for the document).
    fn table(&mut self, table: &DeTable<'_>, prefix: &str) -> Result<(), ConfigError> {
        // Source order, so the first bad line in the file is the one reported.
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        for (key, value) in entries {
            let name: &str = key.get_ref();
            let path = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
            let origin = self.origin(key.span().start);
            if let Some((index, spec)) = keys::find(&path) {
                let raw = to_raw(value.get_ref());
                let given = self.text(value);
                self.builder.apply(index, spec, &raw, given, origin)?;
            } else if keys::is_table(&path) {
                match value.get_ref() {
                    DeValue::Table(inner) => self.table(inner, &path)?,
                    other => {
                        return Err(WrongType {
                            key: path.clone(),
                            expected: "a table",
                            found: format!("{} {}", to_raw(other).type_name(), self.text(value)),
                            allowed: format!("a table of {}", keys::children(&path).join(", ")),
                            origin,
                        }
                        .into())
                    }
                }
            } else {
                return Err(UnknownKey { key: path, origin, allowed: keys::children(prefix) }.into());
            }
        }
        Ok(())
    }

    fn origin(&self, offset: usize) -> Origin {
        let (line, column) = line_column(self.input, offset);
        Origin::Toml { path: self.path.map(Path::to_path_buf), line, column }
    }

    /// The value as written in the document.
    fn text(&self, value: &Spanned<DeValue<'_>>) -> &'a str {
        self.input.get(value.span()).unwrap_or("<value>")
    }
}

/// A TOML value as a raw value; the types no key takes become `Other`.
fn to_raw(value: &DeValue<'_>) -> Raw {
    match value {
        DeValue::Boolean(b) => Raw::Bool(*b),
        // Beyond i128 is beyond every key's range: saturate, and the range
        // check refuses it with the text as written.
        DeValue::Integer(n) => {
            Raw::Int(i128::from_str_radix(n.as_str(), n.radix()).unwrap_or(if n.as_str().starts_with('-') {
                i128::MIN
            } else {
                i128::MAX
            }))
        }
        DeValue::String(s) => Raw::Str(s.to_string()),
        DeValue::Array(items) => Raw::List(items.iter().map(|item| to_raw(item.get_ref())).collect()),
        DeValue::Float(_) => Raw::Other("float"),
        DeValue::Datetime(_) => Raw::Other("datetime"),
        DeValue::Table(_) => Raw::Other("table"),
    }
}
