//! One entry of `cluster.groups`: a group that crosses hosts, and the
//! guarantee every engine of the cluster gives it.
//!
//! An entry is `"name"` or `"name:guarantee"` (`unordered`, `fifo`,
//! `agreed`, `safe`, any case), one string in every form: an item of the
//! TOML array, of the comma-separated `RINGFLOW_CLUSTER_GROUPS`, of
//! [`EngineConfigBuilder::cluster_groups`](super::EngineConfigBuilder::cluster_groups).
//! A table per group would need a syntax of its own in the variable;
//! a suffix reads the same everywhere. So a crossing group's name cannot
//! hold `:` (one host's groups still can: only `cluster.groups` splits).
//! This module never panics on any entry.

use std::fmt;

use crate::group::Guarantee;

/// A group of `cluster.groups`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CrossingGroup {
    /// The group's name (as `Group::join` takes it).
    pub name: String,
    /// The guarantee this host's engine gives the group: it creates a
    /// group nobody keeps with it, and refuses to start if the group's
    /// members made it with another. `None`: the group's, as the engine
    /// finds it (a group it creates is AGREED).
    pub guarantee: Option<Guarantee>,
}

impl CrossingGroup {
    /// A group whose guarantee the engine takes as it finds it.
    pub fn new(name: impl Into<String>) -> CrossingGroup {
        CrossingGroup { name: name.into(), guarantee: None }
    }

    /// A group with this guarantee on every host.
    pub fn with_guarantee(name: impl Into<String>, guarantee: Guarantee) -> CrossingGroup {
        CrossingGroup { name: name.into(), guarantee: Some(guarantee) }
    }

    /// Reads an entry; the error says what is wrong with it (the name
    /// itself is checked by `validate`, as a join checks it).
    pub(crate) fn parse(entry: &str) -> Result<CrossingGroup, String> {
        let Some((name, word)) = entry.split_once(SEPARATOR) else {
            return Ok(CrossingGroup::new(entry));
        };
        if word.contains(SEPARATOR) {
            return Err(format!(
                "{entry:?}: a crossing group's name cannot hold '{SEPARATOR}' (what follows the first one is the \
                 group's guarantee)"
            ));
        }
        match Guarantee::from_name(word) {
            Some(g) => Ok(CrossingGroup::with_guarantee(name, g)),
            None => Err(format!(
                "{entry:?}: {word:?} is no guarantee; after '{SEPARATOR}' comes one of {}",
                WORDS.join(", ")
            )),
        }
    }
}

/// Between a group's name and its guarantee.
const SEPARATOR: char = ':';
/// The guarantee words, as messages list them.
const WORDS: [&str; 4] = ["unordered", "fifo", "agreed", "safe"];

/// The entry as the configuration holds it: `name`, or `name:safe`
/// (the guarantee's word in lower case); [`CrossingGroup::parse`] reads
/// it back.
impl fmt::Display for CrossingGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.guarantee {
            Some(g) => write!(f, "{}{SEPARATOR}{}", self.name, g.name()),
            None => f.write_str(&self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_as_written() {
        let cases = [
            ("xg", CrossingGroup::new("xg"), "xg"),
            ("xg:safe", CrossingGroup::with_guarantee("xg", Guarantee::Safe), "xg:safe"),
            ("xg:SAFE", CrossingGroup::with_guarantee("xg", Guarantee::Safe), "xg:safe"),
            ("a b:Fifo", CrossingGroup::with_guarantee("a b", Guarantee::Fifo), "a b:fifo"),
            ("x.y:unordered", CrossingGroup::with_guarantee("x.y", Guarantee::Unordered), "x.y:unordered"),
            ("g:agreed", CrossingGroup::with_guarantee("g", Guarantee::Agreed), "g:agreed"),
        ];
        for (entry, group, shown) in cases {
            assert_eq!(CrossingGroup::parse(entry).as_ref(), Ok(&group), "{entry}");
            assert_eq!(group.to_string(), shown);
            assert_eq!(CrossingGroup::parse(shown), Ok(group));
        }
    }

    #[test]
    fn a_bad_guarantee_is_named() {
        for (entry, says) in [
            ("xg:sure", "\"sure\" is no guarantee"),
            ("xg:", "\"\" is no guarantee"),
            ("xg: safe", "\" safe\" is no guarantee"),
            ("a:b:safe", "cannot hold ':'"),
        ] {
            let e = CrossingGroup::parse(entry).expect_err(entry);
            assert!(e.contains(says) && e.contains(&format!("{entry:?}")), "{entry}: {e}");
        }
    }
}
