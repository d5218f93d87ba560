//! A log grep: the README's "Your first workload", a guest built on a third-party crate
//! (`regex`). Text comes in as a string (`@text:app.log` on the command line) or as bytes
//! (`@app.log`), and matching lines go back as a list or as bytes (`--out errors.log`).

use regex::Regex;
use regex::bytes::Regex as BytesRegex;
use rwc_guest::export;

/// Lines that match.
///
/// Each line of `text` that the regular expression `pattern` matches, with its line number
/// (from 1).
#[export]
fn grep_lines(pattern: String, text: String) -> Result<Vec<(u32, String)>, regex::Error> {
    let re = Regex::new(&pattern)?;
    Ok(text
        .lines()
        .zip(1..)
        .filter(|(line, _)| re.is_match(line))
        .map(|(line, n)| (n, line.to_owned()))
        .collect())
}

/// The lines of `data` that `pattern` matches, as bytes, each ending in a newline.
///
/// `data` need not be UTF-8: logs in any encoding (or with stray bytes) work.
#[export]
fn grep(pattern: String, data: Vec<u8>) -> Result<Vec<u8>, regex::Error> {
    let re = BytesRegex::new(&pattern)?;
    let mut out = Vec::new();
    for line in lines(&data).filter(|line| re.is_match(line)) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    Ok(out)
}

/// How many lines of `data` `pattern` matches.
#[export]
fn count(pattern: String, data: Vec<u8>) -> Result<u64, regex::Error> {
    let re = BytesRegex::new(&pattern)?;
    Ok(lines(&data).filter(|line| re.is_match(line)).count() as u64)
}

/// The lines of `data`, without their `\n` (or `\r\n`).
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split_inclusive(|b| *b == b'\n').map(|line| {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        line.strip_suffix(b"\r").unwrap_or(line)
    })
}
