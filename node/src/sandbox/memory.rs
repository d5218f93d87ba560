//! Reading and writing a guest's linear memory from the host, bounds-checked.

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

/// `offset..offset + len` if it lies within a memory of `size` bytes.
fn memory_range(offset: u64, len: u64, size: usize) -> Result<Range<usize>, SandboxError> {
    let out_of_bounds = || {
        SandboxError::BadArgument(format!(
            "memory range {offset}..{} is outside the guest's {size}-byte memory",
            offset.saturating_add(len)
        ))
    };
    let start = usize::try_from(offset).map_err(|_| out_of_bounds())?;
    let len = usize::try_from(len).map_err(|_| out_of_bounds())?;
    let end = start.checked_add(len).ok_or_else(out_of_bounds)?;
    if end > size {
        return Err(out_of_bounds());
    }
    Ok(start..end)
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
