//! The types of the typed round trips. The host side of the tests compiles this same file
//! (`rwc_tests::wordcount`), so both ends agree on the shape and the round trip checks the
//! encoding through the ABI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// A record with one of everything, for typed round trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    pub count: i64,
    pub ratio: f64,
    pub flags: Vec<bool>,
    pub tags: BTreeMap<String, u32>,
    pub shape: Shape,
    pub data: ByteBuf,
    pub maybe: Option<u32>,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

/// An enum with unit, newtype, tuple and struct variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    Empty,
    Circle(f64),
    Segment(Point, Point),
    Rect { width: u32, height: u32 },
}
