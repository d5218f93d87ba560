//! Mandelbrot tiles: compute to split across nodes.

mod tile;

use rwc_guest::export;
use serde_bytes::ByteBuf;

pub use tile::Tile;
use tile::{coordinate, escape_time};

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
    Ok(ByteBuf::from(tile::pixels(&req)))
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
