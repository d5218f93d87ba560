//! The Mandelbrot arithmetic, free of the guest SDK: the guest compiles it to Wasm, and
//! the demo and the pool benchmark include this file by path, so the benchmark's native
//! baseline runs exactly the source the guest runs.

use serde::{Deserialize, Serialize};

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

/// The Mandelbrot image the benchmarks (the pool's, the NATS one) render.
#[allow(
    dead_code,
    reason = "the guest and the demo include this file without it"
)]
pub mod bench {
    /// Width and height, in pixels.
    pub const SIZE: u32 = 4096;
    /// Iterations at most per pixel.
    pub const MAX_ITER: u32 = 256;
    /// Rows per band (one input of the map).
    pub const ROWS: u32 = 16;
}

/// A `size` x `size` image of the whole set (`[-2, 1] x [-1.5, 1.5]`, `max_iter`
/// iterations) as bands of `rows` rows: what the benchmarks render.
#[allow(
    dead_code,
    reason = "the guest and the demo include this file without it"
)]
pub fn bands(size: u32, rows: u32, max_iter: u32) -> Vec<Tile> {
    (0..size)
        .step_by(rows as usize)
        .map(|row_start| Tile {
            width: size,
            height: size,
            row_start,
            row_end: (row_start + rows).min(size),
            x_min: -2.0,
            x_max: 1.0,
            y_min: -1.5,
            y_max: 1.5,
            max_iter,
        })
        .collect()
}

/// Iteration counts of the tile's pixels, one byte each (`min(iterations, 255)`), row by
/// row. The tile must be checked first: rows within the image.
#[allow(dead_code, reason = "the demo includes this file for `Tile` alone")]
pub fn pixels(t: &Tile) -> Vec<u8> {
    let rows = t.row_end.saturating_sub(t.row_start);
    let mut out =
        Vec::with_capacity(usize::try_from(u64::from(t.width) * u64::from(rows)).unwrap_or(0));
    for row in t.row_start..t.row_end {
        let y = coordinate(row, t.height, t.y_min, t.y_max);
        for col in 0..t.width {
            let x = coordinate(col, t.width, t.x_min, t.x_max);
            out.push(u8::try_from(escape_time(x, y, t.max_iter)).unwrap_or(u8::MAX));
        }
    }
    out
}

/// The coordinate of pixel `i` of `n` between `min` and `max` (pixel centres).
#[allow(dead_code, reason = "the demo includes this file for `Tile` alone")]
pub fn coordinate(i: u32, n: u32, min: f64, max: f64) -> f64 {
    min + (max - min) * (f64::from(i) + 0.5) / f64::from(n.max(1))
}

/// Iterations before `z = z² + c` leaves the radius-2 disc, at most `max_iter`.
#[allow(dead_code, reason = "the demo includes this file for `Tile` alone")]
pub fn escape_time(cx: f64, cy: f64, max_iter: u32) -> u32 {
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
