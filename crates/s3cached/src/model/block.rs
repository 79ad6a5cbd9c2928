//! Fixed-size aligned blocks of an object: their keys and the arithmetic of which blocks a byte
//! span covers. Large objects and ranged reads are cached as blocks (the read path over them is
//! [`crate::engine::blocks`]); a block is stored under a key that names the object's version by
//! its ETag (or version id), so an overwrite makes every old block unreachable and two
//! versions can never mix in one answer.

use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::model::key::CacheKey;

/// One block of one version of an object.
///
/// ```
/// use s3cached::model::block::BlockKey;
/// use s3cached::model::key::CacheKey;
/// let object = CacheKey::new("media", "movie.mp4").unwrap();
/// let a = BlockKey::new(&object, "\"etag-1\"", 1 << 20, 3);
/// let b = BlockKey::new(&object, "\"etag-2\"", 1 << 20, 3);
/// assert_ne!(a.storage_key(), b.storage_key());
/// assert!(a.storage_key().starts_with("s3cached:blk:"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockKey {
    storage: String,
}

impl BlockKey {
    /// Block `index` of size `block_size` of `object` in the version `tag` names (its ETag,
    /// with its version id when it has one).
    #[must_use]
    pub fn new(object: &CacheKey, tag: &str, block_size: u64, index: u64) -> Self {
        // Names are length-prefixed before hashing, so no two tuples hash the same input. The
        // digest holds no `{`, so in Redis cluster mode the blocks of one object spread over
        // every slot instead of piling onto the object's.
        let mut h = Sha256::new();
        for part in [object.bucket(), object.key(), object.version().unwrap_or(""), tag] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(block_size.to_le_bytes());
        h.update(index.to_le_bytes());
        let digest = h.finalize();
        let mut storage = String::with_capacity(13 + 64);
        storage.push_str("s3cached:blk:");
        for b in digest {
            storage.push(char::from(HEX[usize::from(b >> 4)]));
            storage.push(char::from(HEX[usize::from(b & 15)]));
        }
        Self { storage }
    }

    /// The key the block is stored under (in memory and in Redis).
    #[must_use]
    pub fn storage_key(&self) -> &str {
        &self.storage
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// How an object of `size` bytes is cut into blocks of `block_size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Size of the object.
    pub size: u64,
    /// Size of every block but the last.
    pub block_size: u64,
}

impl Layout {
    /// The layout of an object of `size` bytes in blocks of `block_size` (at least 1) bytes.
    #[must_use]
    pub fn new(size: u64, block_size: u64) -> Self {
        Self {
            size,
            block_size: block_size.max(1),
        }
    }

    /// Number of blocks.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.size.div_ceil(self.block_size)
    }

    /// The bytes block `index` holds (the last one may be short).
    #[must_use]
    pub fn bytes_of(&self, index: u64) -> Range<u64> {
        let start = index.saturating_mul(self.block_size).min(self.size);
        start..start.saturating_add(self.block_size).min(self.size)
    }

    /// The length of block `index`, in bytes.
    #[must_use]
    pub fn len_of(&self, index: u64) -> usize {
        let bytes = self.bytes_of(index);
        usize::try_from(bytes.end - bytes.start).unwrap_or(usize::MAX)
    }

    /// The blocks a non-empty `span` of the object touches.
    #[must_use]
    pub fn blocks_of(&self, span: &Range<u64>) -> Range<u64> {
        if span.start >= span.end {
            return 0..0;
        }
        span.start / self.block_size..(span.end - 1) / self.block_size + 1
    }

    /// The part of block `index` that lies in `span`, as offsets within the block.
    #[must_use]
    pub fn part_in(&self, index: u64, span: &Range<u64>) -> Range<usize> {
        let block = self.bytes_of(index);
        let start = span.start.max(block.start).min(block.end) - block.start;
        let end = span.end.min(block.end).max(block.start) - block.start;
        usize::try_from(start).unwrap_or(0)..usize::try_from(end.max(start)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_cut_objects_at_block_edges() {
        let l = Layout::new(10, 4);
        assert_eq!(l.count(), 3);
        assert_eq!(l.bytes_of(2), 8..10);
        assert_eq!((l.len_of(0), l.len_of(2)), (4, 2));
        assert_eq!(l.blocks_of(&(0..10)), 0..3);
        assert_eq!(l.blocks_of(&(3..5)), 0..2);
        assert_eq!(l.blocks_of(&(4..8)), 1..2);
        assert_eq!(l.blocks_of(&(9..10)), 2..3);
        assert_eq!(l.part_in(0, &(3..5)), 3..4);
        assert_eq!(l.part_in(1, &(3..5)), 0..1);
        assert_eq!(l.part_in(2, &(0..10)), 0..2);
        assert_eq!(Layout::new(0, 4).count(), 0);
        assert_eq!(Layout::new(8, 4).count(), 2);
    }

    #[test]
    fn block_keys_differ_by_every_part() {
        let a = CacheKey::new("bkt", "a:b").unwrap();
        let b = CacheKey::new("bkt:a", "b").unwrap_or_else(|_| CacheKey::new("bkta", ":b").unwrap());
        let base = BlockKey::new(&a, "t", 4, 0);
        assert_ne!(base, BlockKey::new(&b, "t", 4, 0));
        assert_ne!(base, BlockKey::new(&a, "u", 4, 0));
        assert_ne!(base, BlockKey::new(&a, "t", 8, 0));
        assert_ne!(base, BlockKey::new(&a, "t", 4, 1));
        assert_eq!(base, BlockKey::new(&a, "t", 4, 0));
        assert!(!base.storage_key().contains('{'));
    }
}
