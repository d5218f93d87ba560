//! Reading and writing a guest's linear memory from the host, bounds-checked.

use std::fmt;
use std::ops::Range;

use super::{ExternKind, Instance, SandboxError};

impl Instance {
    /// Copies `len` bytes at `offset` out of the guest's exported `memory`.
    pub fn read_memory(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, SandboxError> {
        let memory = self.memory()?;
        let data = memory.data(&self.store);
        let range = memory_range(offset, len, data.len())?;
        Ok(data[range].to_vec())
    }

    /// Copies `bytes` into the guest's exported `memory` at `offset`.
    pub fn write_memory(&mut self, offset: u64, bytes: &[u8]) -> Result<(), SandboxError> {
        let memory = self.memory()?;
        let data = memory.data_mut(&mut self.store);
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let range = memory_range(offset, len, data.len())?;
        data[range].copy_from_slice(bytes);
        Ok(())
    }

    fn memory(&mut self) -> Result<wasmtime::Memory, SandboxError> {
        self.instance
            .get_memory(&mut self.store, "memory")
            .ok_or_else(|| SandboxError::NoSuchExport {
                name: "memory".to_string(),
                available: self.export_names(ExternKind::Memory),
            })
    }
}

/// `offset..offset + len` if it lies within a memory of `size` bytes: the one bounds check
/// for every guest buffer the host touches (memory access from a client, and the guest
/// ABI's buffers).
pub fn memory_range(offset: u64, len: u64, size: usize) -> Result<Range<usize>, OutOfBounds> {
    let out_of_bounds = OutOfBounds { offset, len, size };
    let start = usize::try_from(offset).map_err(|_| out_of_bounds)?;
    let len = usize::try_from(len).map_err(|_| out_of_bounds)?;
    let end = start.checked_add(len).ok_or(out_of_bounds)?;
    if end > size {
        return Err(out_of_bounds);
    }
    Ok(start..end)
}

/// A range that does not lie within a guest's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Where the range starts.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// The memory's size in bytes.
    pub size: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memory range {}..{} is outside the guest's {}-byte memory",
            self.offset,
            self.offset.saturating_add(self.len),
            self.size
        )
    }
}

impl std::error::Error for OutOfBounds {}

impl From<OutOfBounds> for SandboxError {
    fn from(e: OutOfBounds) -> Self {
        SandboxError::BadArgument(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_ranges_are_bounds_checked() {
        assert_eq!(memory_range(0, 4, 4).unwrap(), 0..4);
        assert_eq!(memory_range(4, 0, 4).unwrap(), 4..4);
        assert!(memory_range(1, 4, 4).is_err());
        assert!(memory_range(u64::MAX, 2, 4).is_err());
        let err = memory_range(10, 2, 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "memory range 10..12 is outside the guest's 4-byte memory"
        );
    }
}
