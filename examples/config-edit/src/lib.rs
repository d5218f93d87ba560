//! Editing a configuration file safely, from a guest given one read-write directory
//! (`fs:conf`, at `/conf`): set one key of a TOML file, atomically, and see the change.
//!
//! - `show(file)` returns the file's text and its `version` (a hash of its bytes).
//! - `set(file, key, value)` sets `key` (`name` or `table.name`) to `value`, keeping
//!   every other line as it is: it writes a temporary file, syncs it to disk and renames
//!   it over the old one, so a reader sees the old file or the new one, never a mix. It
//!   returns the unified diff of the change. It refuses (`failed`, nothing written) if the
//!   file changed while the edit was being made.
//! - `set_if(file, key, value, version)` does the same only if the file is still at the
//!   `version` that `show` gave: nobody changed it since it was read.
//!
//! ```sh
//! rwc call config_edit.wasm set app.toml server.port 8080 --capability fs:conf
//! ```

use std::fs::{self, File};
use std::io::Write;

use rwc_guest::{Error, ErrorKind, Value, export};
use serde::Serialize;

/// Where the `fs:conf` grant appears in the guest.
const CONF_DIR: &str = "/conf";

/// A file as `show` returns it.
#[derive(Debug, Serialize)]
pub struct Shown {
    pub text: String,
    pub version: String,
}

/// What `set` did.
#[derive(Debug, Serialize)]
pub struct Edited {
    /// The unified diff of the change (empty if the key already had that value).
    pub diff: String,
    /// The file's version now.
    pub version: String,
}

/// The text and version of `file` (a name under `/conf`).
#[export]
fn show(file: String) -> Result<Shown, Error> {
    let path = conf_path(&file)?;
    let bytes = read(&path)?;
    Ok(Shown {
        version: version(&bytes),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Sets `key` to `value` in `file` atomically; the diff of the change.
#[export]
fn set(file: String, key: String, value: Value) -> Result<Edited, Error> {
    edit(&file, &key, &value, None)
}

/// Like `set`, only if `file` is still at `version` (from `show`).
#[export]
fn set_if(file: String, key: String, value: Value, version: String) -> Result<Edited, Error> {
    edit(&file, &key, &value, Some(&version))
}

fn edit(file: &str, key: &str, value: &Value, expected: Option<&str>) -> Result<Edited, Error> {
    let file = file.to_owned();
    let path = conf_path(&file)?;
    let before = read(&path)?;
    if let Some(expected) = expected
        && expected != version(&before)
    {
        return Err(changed(&file));
    }
    let old = String::from_utf8(before.clone())
        .map_err(|_| Error::bad_argument(format!("{file} is not UTF-8 text")))?;
    let new = set_key(&old, key, &toml_literal(value)?)?;
    let diff = unified_diff(&file, &old, &new);
    if new == old {
        return Ok(Edited {
            diff,
            version: version(&before),
        });
    }
    let tmp = format!("{CONF_DIR}/.{file}.rwc-edit");
    let written = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(new.as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error(&tmp, &e));
    }
    // Last look before the rename: someone else's edit in the meantime wins.
    if read(&path)? != before {
        let _ = fs::remove_file(&tmp);
        return Err(changed(&file));
    }
    fs::rename(&tmp, &path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error(&path, &e)
    })?;
    Ok(Edited {
        diff,
        version: version(new.as_bytes()),
    })
}

fn conf_path(file: &str) -> Result<String, Error> {
    if file.is_empty() || file.contains('/') || file.starts_with('.') {
        return Err(Error::bad_argument(format!(
            "{file:?}: name a file directly under {CONF_DIR}, such as app.toml"
        )));
    }
    Ok(format!("{CONF_DIR}/{file}"))
}

fn read(path: &str) -> Result<Vec<u8>, Error> {
    fs::read(path).map_err(|e| io_error(path, &e))
}

fn io_error(path: &str, e: &std::io::Error) -> Error {
    let hint = if e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(63)
    {
        " (is the `fs:conf` grant read-write?)"
    } else if e.raw_os_error() == Some(76) || e.kind() == std::io::ErrorKind::NotFound {
        " (instantiate with `--capability fs:conf`)"
    } else {
        ""
    };
    Error::new(ErrorKind::Failed, format!("{path}: {e}{hint}"))
}

fn changed(file: &str) -> Error {
    Error::new(
        ErrorKind::Failed,
        format!("{file} changed since it was read; nothing written: show it again and retry"),
    )
}

/// FNV-1a, 64 bits, as `v` and hex: enough to notice that a file changed.
fn version(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("v{h:016x}")
}

/// A value as TOML writes it.
fn toml_literal(v: &Value) -> Result<String, Error> {
    Ok(match v {
        Value::Bool(b) => b.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F64(f) if f.is_finite() => format!("{f:?}"),
        Value::String(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        other => {
            return Err(Error::bad_argument(format!(
                "a value is a string, a number or a boolean, not a {}",
                other.type_name()
            )));
        }
    })
}

/// `text` with `key` (`name` or `table.name`) set to `literal`: its line replaced if it
/// has one, else added at the end of its table (the table is added if missing).
fn set_key(text: &str, key: &str, literal: &str) -> Result<String, Error> {
    let (table, name) = match key.rsplit_once('.') {
        Some((t, n)) => (t, n),
        None => ("", key),
    };
    let bare = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !bare(name) || !(table.is_empty() || table.split('.').all(bare)) {
        return Err(Error::bad_argument(format!(
            "{key:?}: a key is `name` or `table.name` (letters, digits, `_`, `-`)"
        )));
    }
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Where the table's lines end (the index after its last line).
    let mut table_end = if table.is_empty() { Some(0) } else { None };
    let mut in_table = table.is_empty();
    for (i, line) in lines.iter_mut().enumerate() {
        let t = line.trim();
        if let Some(header) = t.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            in_table = header.trim() == table;
            if in_table {
                table_end = Some(i + 1);
            }
            continue;
        }
        if in_table {
            if !t.is_empty() && !t.starts_with('#') {
                table_end = Some(i + 1);
            }
            if let Some((k, _)) = t.split_once('=')
                && k.trim() == name
            {
                let indent = &line[..line.len() - line.trim_start().len()];
                *line = format!("{indent}{name} = {literal}");
                return Ok(join(&lines, text));
            }
        }
    }
    match table_end {
        Some(at) => lines.insert(at, format!("{name} = {literal}")),
        None => {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("[{table}]"));
            lines.push(format!("{name} = {literal}"));
        }
    }
    Ok(join(&lines, text))
}

/// Lines joined, ending with a newline if `original` did (or was empty).
fn join(lines: &[String], original: &str) -> String {
    let mut s = lines.join("\n");
    if original.is_empty() || original.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// The unified diff (3 lines of context) of a change that touches one run of lines, as
/// `set` makes.
fn unified_diff(file: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    if prefix == a.len() && prefix == b.len() {
        return String::new();
    }
    let start = prefix.saturating_sub(3);
    let a_end = (a.len() - suffix + 3).min(a.len());
    let b_end = (b.len() - suffix + 3).min(b.len());
    let mut out = format!("--- a/{file}\n+++ b/{file}\n");
    out.push_str(&format!(
        "@@ -{} +{} @@\n",
        range(start, a_end - start),
        range(start, b_end - start)
    ));
    for line in &a[start..prefix] {
        out.push_str(&format!(" {line}\n"));
    }
    for line in &a[prefix..a.len() - suffix] {
        out.push_str(&format!("-{line}\n"));
    }
    for line in &b[prefix..b.len() - suffix] {
        out.push_str(&format!("+{line}\n"));
    }
    for line in &a[a.len() - suffix..a_end] {
        out.push_str(&format!(" {line}\n"));
    }
    out
}

/// `start,count` as a hunk header writes it (1-based; an empty range names the line
/// before it).
fn range(start: usize, count: usize) -> String {
    match count {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        n => format!("{},{n}", start + 1),
    }
}
