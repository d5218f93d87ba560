//! The `wordcount` guest's types, mirrored: the same serde shape, defined independently of
//! the guest, so a round trip through it checks the encoding rather than one definition
//! against itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// A struct with a field of every kind of value.
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

/// A small struct, nested.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

/// An enum with every kind of variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    Empty,
    Circle(f64),
    Segment(Point, Point),
    Rect { width: u32, height: u32 },
}
