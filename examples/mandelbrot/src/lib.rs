//! Mandelbrot tiles: compute to split across nodes.

use rwc_guest::export;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// A band of rows `row_start..row_end` of a `width` x `height` image of the region
/// `[x_min, x_max] x [y_min, y_max]` of the complex plane.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tile {
    pub width: u32,
    pub height: u32,
    pub row_start: u32,
    pub row_end: u32,
    pub x_min: f64,
    pub x_max: f64,
    pub y_min: f64,
    pub y_max: f64,
    pub max_iter: u32,
}

/// Most pixels one tile may have (64 Mi).
const MAX_PIXELS: u64 = 64 * 1024 * 1024;

/// Iteration counts of the tile's pixels, one byte each (`min(iterations, 255)`), row by
/// row.
#[export]
fn render(req: Tile) -> Result<ByteBuf, String> {
    if req.row_start > req.row_end || req.row_end > req.height {
        return Err(format!(
            "rows {}..{} are not within the image's {} rows",
            req.row_start, req.row_end, req.height
        ));
    }
    let pixels = u64::from(req.width) * u64::from(req.row_end - req.row_start);
    if pixels > MAX_PIXELS {
        return Err(format!(
            "{pixels} pixels is more than a tile may have ({MAX_PIXELS})"
        ));
    }
    let mut out = Vec::with_capacity(usize::try_from(pixels).map_err(|e| e.to_string())?);
    for row in req.row_start..req.row_end {
        let y = coordinate(row, req.height, req.y_min, req.y_max);
        for col in 0..req.width {
            let x = coordinate(col, req.width, req.x_min, req.x_max);
            let n = escape_time(x, y, req.max_iter);
            out.push(u8::try_from(n).unwrap_or(u8::MAX));
        }
    }
    Ok(ByteBuf::from(out))
}

/// Sum of the iteration counts of row `row` of a `width` x `height` image of
/// `[-2, 1] x [-1.5, 1.5]`: a plain numeric export, for benchmarks without the SDK's
/// encoding. Returns -1 for arguments out of range.
#[unsafe(no_mangle)]
pub extern "C" fn mandel_row_sum(row: i32, width: i32, height: i32, max_iter: i32) -> i64 {
    let (Ok(row), Ok(width), Ok(height), Ok(max_iter)) = (
        u32::try_from(row),
        u32::try_from(width),
        u32::try_from(height),
        u32::try_from(max_iter),
    ) else {
        return -1;
    };
    if row >= height {
        return -1;
    }
    let y = coordinate(row, height, -1.5, 1.5);
    (0..width)
        .map(|col| i64::from(escape_time(coordinate(col, width, -2.0, 1.0), y, max_iter)))
        .sum()
}

/// The coordinate of pixel `i` of `n` between `min` and `max` (pixel centres).
fn coordinate(i: u32, n: u32, min: f64, max: f64) -> f64 {
    min + (max - min) * (f64::from(i) + 0.5) / f64::from(n.max(1))
}

/// Iterations before `z = z² + c` leaves the radius-2 disc, at most `max_iter`.
fn escape_time(cx: f64, cy: f64, max_iter: u32) -> u32 {
    let (mut x, mut y) = (0.0f64, 0.0f64);
    let mut i = 0;
    // One iteration, unless z has left the disc or the iterations are spent.
    let mut step = || {
        let go_on = i < max_iter && x * x + y * y <= 4.0;
        if go_on {
            let xt = x * x - y * y + cx;
            y = 2.0 * x * y + cy;
            x = xt;
            i += 1;
        }
        go_on
    };
    // Eight iterations per trip round the loop; `&&` stops at the first that does not
    // happen, so the result is exactly that of one iteration per trip. The node's sandbox
    // checks the epoch (which enforces call deadlines) on every trip, and that check
    // costs the compiled loop more than its load and branch: it makes Cranelift keep z
    // in memory across trips rather than in registers. Once per eight iterations, that
    // costs about 15% where once per iteration halved the speed.
    while step() && step() && step() && step() && step() && step() && step() && step() {}
    i
}
