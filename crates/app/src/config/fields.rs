//! The error collector behind the configuration reader.
//!
//! Serde stops at the first problem, which makes an operator fix a file one error per restart. Reading the
//! parsed [`Table`] by hand lets every key be checked on its own and every problem be reported in one go.

use std::fmt::Write as _;

use toml::{Table, Value};

use super::ConfigError;

/// Proof that a value could not be read and that the reason is already among the collected errors.
///
/// Only [`Errors::push`] makes one, so a reader cannot fail without telling the operator why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reported(());

/// The outcome of reading one value.
pub(super) type Read<T> = Result<T, Reported>;

/// Every problem found so far, in the order found.
#[derive(Debug, Default)]
pub(super) struct Errors(pub(super) Vec<ConfigError>);

impl Errors {
    /// Records a problem with the value at `key`.
    pub(super) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) -> Reported {
        self.0.push(ConfigError {
            key: key.into(),
            message: message.into(),
        });
        Reported(())
    }

    fn wrong_type(&mut self, key: &str, expected: &str, found: &Value) -> Reported {
        self.push(
            key,
            format!("expected {expected}, found {}", found.type_str()),
        )
    }
}

/// The path of `key` inside the table at `path`, quoted the way TOML would need it.
pub(super) fn child(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let mut out = String::from(path);
    if !out.is_empty() {
        out.push('.');
    }
    if bare {
        out.push_str(key);
    } else {
        // Debug escaping of a Rust string is also a valid TOML basic string for everything printable.
        let _ = write!(out, "{key:?}");
    }
    out
}

/// The path of element `i` of the array at `path`.
pub(super) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// One table of the file, known by its path.
pub(super) struct Fields<'a> {
    table: &'a Table,
    path: String,
}

impl<'a> Fields<'a> {
    /// Starts reading `table`, reporting each of its keys that is not in `known`.
    pub(super) fn new(
        table: &'a Table,
        path: impl Into<String>,
        known: &[&str],
        errors: &mut Errors,
    ) -> Self {
        let path = path.into();
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                errors.push(
                    child(&path, key),
                    format!("unknown key (expected one of: {})", known.join(", ")),
                );
            }
        }
        Self { table, path }
    }

    /// The path of `key` in this table.
    pub(super) fn key(&self, key: &str) -> String {
        child(&self.path, key)
    }

    /// The path of this table.
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// Whether the file sets `key` in this table.
    pub(super) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Reads `key` with `convert`; `Ok(None)` when the file does not set it.
    pub(super) fn optional<T>(
        &self,
        key: &str,
        errors: &mut Errors,
        convert: impl FnOnce(&'a Value, &str, &mut Errors) -> Read<T>,
    ) -> Read<Option<T>> {
        match self.table.get(key) {
            Some(value) => convert(value, &self.key(key), errors).map(Some),
            None => Ok(None),
        }
    }

    /// Reads `key` with `convert`, or gives `default` when the file does not set it.
    pub(super) fn or<T>(
        &self,
        key: &str,
        default: T,
        errors: &mut Errors,
        convert: impl FnOnce(&'a Value, &str, &mut Errors) -> Read<T>,
    ) -> Read<T> {
        Ok(self.optional(key, errors, convert)?.unwrap_or(default))
    }

    /// Reads `key` with `convert`, reporting it as missing when the file does not set it.
    pub(super) fn required<T>(
        &self,
        key: &str,
        errors: &mut Errors,
        convert: impl FnOnce(&'a Value, &str, &mut Errors) -> Read<T>,
    ) -> Read<T> {
        match self.optional(key, errors, convert)? {
            Some(value) => Ok(value),
            None => Err(errors.push(self.key(key), "missing required key")),
        }
    }
}

/// A string value.
pub(super) fn string<'v>(value: &'v Value, path: &str, errors: &mut Errors) -> Read<&'v str> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(errors.wrong_type(path, "a string", other)),
    }
}

/// A boolean value.
pub(super) fn boolean(value: &Value, path: &str, errors: &mut Errors) -> Read<bool> {
    match value {
        Value::Boolean(flag) => Ok(*flag),
        other => Err(errors.wrong_type(path, "true or false", other)),
    }
}

/// An integer value.
pub(super) fn integer(value: &Value, path: &str, errors: &mut Errors) -> Read<i64> {
    match value {
        Value::Integer(number) => Ok(*number),
        other => Err(errors.wrong_type(path, "an integer", other)),
    }
}

/// A table value.
pub(super) fn table<'v>(value: &'v Value, path: &str, errors: &mut Errors) -> Read<&'v Table> {
    match value {
        Value::Table(table) => Ok(table),
        other => Err(errors.wrong_type(path, "a table", other)),
    }
}

/// An array value.
pub(super) fn array<'v>(value: &'v Value, path: &str, errors: &mut Errors) -> Read<&'v [Value]> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(errors.wrong_type(path, "an array", other)),
    }
}

/// An array whose elements are each read with `each`; every bad element is reported, not just the first.
pub(super) fn list<'v, T>(
    value: &'v Value,
    path: &str,
    errors: &mut Errors,
    mut each: impl FnMut(&'v Value, &str, &mut Errors) -> Read<T>,
) -> Read<Vec<T>> {
    let items = array(value, path, errors)?;
    let mut out = Vec::with_capacity(items.len());
    let mut failed = None;
    for (i, item) in items.iter().enumerate() {
        match each(item, &index(path, i), errors) {
            Ok(converted) => out.push(converted),
            Err(reported) => failed = Some(reported),
        }
    }
    match failed {
        Some(reported) => Err(reported),
        None => Ok(out),
    }
}

/// An array of tables (`[[name]]`), each with its path.
///
/// Elements that are not tables are reported and left out, so the others are still checked.
pub(super) fn tables<'v>(
    value: &'v Value,
    path: &str,
    errors: &mut Errors,
) -> Read<Vec<(String, &'v Table)>> {
    let items = match value {
        Value::Array(items) => items,
        other => return Err(errors.wrong_type(path, "an array of tables", other)),
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_path = index(path, i);
        if let Ok(table) = table(item, &item_path, errors) {
            out.push((item_path, table));
        }
    }
    Ok(out)
}
