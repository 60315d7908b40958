//! Each instance's memory cap, as a store limiter that remembers when it said no: a call
//! that failed after that is counted as out of memory, whatever the guest made of it (a
//! trap here, or an allocator's abort in the guest).

use wasmtime::ResourceLimiter;

pub struct MemoryCap {
    limit: usize,
    /// The size a refused growth asked for, since the cap was last [`MemoryCap::reset`].
    refused: Option<usize>,
    /// The instance's linear memories, all of them, in octets: each is created through
    /// the limiter (from 0) and only grows. A growth allowed here that wasmtime then
    /// fails is counted too; the call traps and its instance is dropped.
    size: usize,
}

impl MemoryCap {
    pub fn new(limit: usize) -> MemoryCap {
        MemoryCap {
            limit,
            refused: None,
            size: 0,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The linear memory the instance has, in octets.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The size a growth asked for when the cap refused it, if it did.
    pub fn refused(&self) -> Option<usize> {
        self.refused
    }

    /// Forgets a refusal: before each call.
    pub fn reset(&mut self) {
        self.refused = None;
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = Some(desired);
            // Failing the growth (not answering `false`) ends the call at once, instead of
            // leaving the guest to find out, perhaps much later, in an allocator.
            return Err(wasmtime::Error::msg(format!(
                "memory cap of {} MiB reached (asked for {} MiB)",
                self.limit >> 20,
                desired.div_ceil(1 << 20)
            )));
        }
        let allowed = maximum.is_none_or(|max| desired <= max);
        if allowed {
            self.size += desired.saturating_sub(current);
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    /// A growth that wasmtime could not make (the memory could not be reserved or moved)
    /// traps, as one past the cap does: left to the guest, it would surface later as an
    /// allocator's abort. (One past the memory's own declared maximum is answered
    /// `false` above: the guest gets -1, as the spec says.)
    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_memory_its_growths_were_allowed() {
        let mut cap = MemoryCap::new(64 << 20);
        assert!(cap.memory_growing(0, 2 << 20, None).unwrap());
        assert!(cap.memory_growing(0, 1 << 20, None).unwrap()); // a second memory
        assert!(cap.memory_growing(2 << 20, 5 << 20, None).unwrap());
        assert_eq!(cap.size(), 6 << 20);
        // Refused, by the memory's own maximum or by the cap: not counted.
        assert!(!cap.memory_growing(1 << 20, 3 << 20, Some(2 << 20)).unwrap());
        assert!(cap.memory_growing(5 << 20, 65 << 20, None).is_err());
        assert_eq!(cap.size(), 6 << 20);
    }

    #[test]
    fn remembers_a_refusal_until_reset() {
        let mut cap = MemoryCap::new(64 << 20);
        assert!(cap.memory_growing(0, 1 << 20, None).unwrap());
        assert_eq!(cap.refused(), None);
        let error = cap.memory_growing(1 << 20, 65 << 20, None).unwrap_err();
        assert_eq!(error.to_string(), "memory cap of 64 MiB reached (asked for 65 MiB)");
        assert_eq!(cap.refused(), Some(65 << 20));
        cap.reset();
        assert_eq!(cap.refused(), None);
        // A memory's own declared maximum still holds under the cap.
        assert!(!cap.memory_growing(0, 2 << 20, Some(1 << 20)).unwrap());
    }
}
