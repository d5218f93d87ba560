//! Word counting, plus the exports the tests use to check typed round trips, errors and
//! panics through the rich ABI.

use std::collections::BTreeMap;

use rwc_guest::{Value, export};
use serde_bytes::ByteBuf;

/// Counts the words of `text` (split on whitespace, lower-cased, trimmed of punctuation).
#[export]
fn word_count(text: String) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for word in text.split_whitespace() {
        let word = word
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if !word.is_empty() {
            *counts.entry(word).or_insert(0) += 1;
        }
    }
    counts
}

/// Returns its argument unchanged.
#[export]
fn echo(v: Value) -> Value {
    v
}

mod record;

pub use record::{Point, Record, Shape};

/// Returns the record unchanged: it went through the value encoding twice.
#[export]
fn roundtrip(record: Record) -> Record {
    record
}

/// Returns the shape unchanged.
#[export]
fn roundtrip_shape(shape: Shape) -> Shape {
    shape
}

/// Returns the bytes reversed (so a test can tell the guest really read them).
#[export]
fn reverse_bytes(bytes: ByteBuf) -> ByteBuf {
    let mut v = bytes.into_vec();
    v.reverse();
    ByteBuf::from(v)
}

/// Area of a shape (reads an enum argument).
#[export]
fn area(shape: Shape) -> f64 {
    match shape {
        Shape::Empty | Shape::Segment(..) => 0.0,
        Shape::Circle(r) => std::f64::consts::PI * r * r,
        Shape::Rect { width, height } => f64::from(width) * f64::from(height),
    }
}

/// Fails with `msg` (a `failed` error for the caller).
#[export]
fn fail(msg: String) -> Result<(), String> {
    Err(msg)
}

/// Prints `text` to stdout and stderr (which the node streams to the caller) and, when the
/// instance was handed the `log` capability, logs it too. Returns the text's length.
#[export]
fn shout(text: String) -> Result<u64, rwc_guest::Error> {
    println!("stdout: {text}");
    eprintln!("stderr: {text}");
    if let Ok(log) = rwc_guest::capability("log") {
        log.call::<()>("info", (format!("logged: {text}"),))?;
    }
    Ok(u64::try_from(text.len()).unwrap_or(u64::MAX))
}

/// Panics with `msg` (a `trapped` error carrying the message for the caller).
#[export]
fn panic_now(msg: String) {
    panic!("{msg}");
}
