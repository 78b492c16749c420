//! `RINGFLOW_*` environment overrides: one variable per key, named from its
//! path (`io_uring.sqpoll` → `RINGFLOW_IO_URING_SQPOLL`), lists
//! comma-separated, `none` (or empty) for an optional key left unset.
//!
//! A `RINGFLOW_*` variable that names no key is an error, so a typo cannot
//! silently leave a default in place; `RINGFLOW_CONFIG`, `RINGFLOW_LOG`,
//! `RINGFLOW_RUNTIME_DIR` and `RINGFLOW_TEST_*` belong to other parts and
//! are skipped. This module reads the process environment only in
//! [`process_vars`], and never writes it.

use super::builder::EngineConfigBuilder;
use super::error::{BadValue, ConfigError, Origin, UnknownKey};
use super::keys::{self, Kind, Raw, KEYS};
use super::{CONFIG_ENV, ENV_PREFIX, LOG_ENV};
use crate::control::RUNTIME_DIR_ENV;

/// Prefix of variables that tests of other parts use.
const TEST_PREFIX: &str = "RINGFLOW_TEST_";

/// Applies every configuration variable in `vars`; others are ignored.
pub(crate) fn apply(
    builder: &mut EngineConfigBuilder,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, value) in vars {
        if !is_config_var(&name) {
            continue;
        }
        let Some((index, spec)) = keys::find_env(&name) else {
            return Err(UnknownKey {
                allowed: allowed_near(&name),
                key: name.clone(),
                origin: Origin::Env { var: name },
            }
            .into());
        };
        let raw = to_raw(spec.kind, &value);
        builder.apply(index, spec, &raw, &format!("{value:?}"), Origin::Env { var: name })?;
    }
    Ok(())
}

/// Whether `name` is one this module must understand.
fn is_config_var(name: &str) -> bool {
    name.starts_with(ENV_PREFIX)
        && name != CONFIG_ENV
        && name != LOG_ENV
        && name != RUNTIME_DIR_ENV
        && !name.starts_with(TEST_PREFIX)
}

/// The `RINGFLOW_*` variables of the process. A value that is not UTF-8
/// is refused (`std::env::vars` would panic on it).
pub fn process_vars() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)).map(str::to_owned) else {
            continue;
        };
        match value.into_string() {
            Ok(value) => vars.push((name, value)),
            Err(value) => {
                return Err(BadValue {
                    key: name.clone(),
                    value: format!("{:?}", value.to_string_lossy()),
                    allowed: "UTF-8 text".to_owned(),
                    reason: Some("the value is not valid UTF-8".to_owned()),
                    origin: Origin::Env { var: name },
                }
                .into())
            }
        }
    }
    Ok(vars)
}

/// A boolean variable's value: `true` / `on` / `1` or `false` / `off` /
/// `0` (spaces around ignored); `None` for anything else. The one reading
/// of a `RINGFLOW_*` boolean, for the configuration and for the library's
/// own variables (`RINGFLOW_FLOW_LATENCY`) alike.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "true" | "on" | "1" => Some(true),
        "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A variable's text as the raw value its key's kind reads.
fn to_raw(kind: Kind, value: &str) -> Raw {
    match kind {
        Kind::Bool => parse_bool(value).map_or_else(|| Raw::Str(value.to_owned()), Raw::Bool),
        Kind::Int { .. } | Kind::OptCore => number(value),
        Kind::Choice(_) | Kind::OptAddr | Kind::OptPath => Raw::Str(value.to_owned()),
        Kind::Cores => Raw::List(items(value).map(number).collect()),
        Kind::Peers | Kind::Groups => Raw::List(items(value).map(|item| Raw::Str(item.to_owned())).collect()),
    }
}

/// A decimal integer, or the text as a string (which the key then refuses
/// as the wrong type, or accepts as "none").
fn number(text: &str) -> Raw {
    text.parse::<i128>().map_or_else(|_| Raw::Str(text.to_owned()), Raw::Int)
}

/// The items of a comma-separated list; empty text is the empty list.
fn items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(move |_| !value.trim().is_empty())
}

/// The variables a misspelt `name` probably meant: those of the table its
/// name starts with, or all of them.
fn allowed_near(name: &str) -> Vec<String> {
    let all: Vec<String> = KEYS.iter().map(|spec| spec.env_name()).collect();
    let table_prefix = |spec: &keys::KeySpec| {
        let (table, _) = keys::split_path(spec.path);
        format!("{}_", keys::env_name(table))
    };
    let longest = KEYS.iter().map(table_prefix).filter(|prefix| name.starts_with(prefix)).max_by_key(String::len);
    match longest {
        Some(prefix) => all.into_iter().filter(|var| var.starts_with(&prefix)).collect(),
        None => all,
    }
}
