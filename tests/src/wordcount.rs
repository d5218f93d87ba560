//! The `wordcount` guest's own types (its `record.rs`), compiled for the host: what the
//! typed round-trip tests send it and expect back.

#[path = "../../examples/wordcount/src/record.rs"]
mod record;

pub use record::{Point, Record, Shape};
