//! Byte-range arithmetic for answering Range requests from cached bytes.

use std::ops;

use s3s::dto::Range;

/// A range that cannot be served from an object of the given size (HTTP 416).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("range not satisfiable for an object of {size} bytes")]
pub struct Unsatisfiable {
    /// Size of the object the range was applied to.
    pub size: u64,
}

/// Resolves `range` against an object of `size` bytes into a half-open byte span.
///
/// # Errors
/// [`Unsatisfiable`] when the range starts at or past the end, or asks for an empty suffix.
pub fn resolve(range: &Range, size: u64) -> Result<ops::Range<u64>, Unsatisfiable> {
    let err = Unsatisfiable { size };
    match *range {
        Range::Int { first, last } => {
            if first >= size {
                return Err(err);
            }
            let end = last.map_or(size, |l| l.saturating_add(1).min(size));
            Ok(first..end)
        }
        Range::Suffix { length } => {
            if length == 0 || size == 0 {
                return Err(err);
            }
            Ok(size.saturating_sub(length)..size)
        }
    }
}

/// The `Content-Range` value for a served span: `bytes first-last/size`.
#[must_use]
pub fn content_range(span: &ops::Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{}", span.start, span.end.saturating_sub(1), size)
}

/// The span and size of an origin's `Content-Range` value `bytes first-last/size` (`None`
/// for anything else, `bytes */size` included).
#[must_use]
pub fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.strip_prefix("bytes ")?;
    let (span, size) = rest.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, size.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse_or_are_refused() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(
            parse_content_range(&content_range(&(1_048_576..2_097_152), 5_000_000)),
            Some((1_048_576, 2_097_151, 5_000_000))
        );
        for bad in [
            "",
            "bytes */100",
            "bytes 0-9",
            "items 0-9/100",
            "bytes a-9/100",
            "bytes 0-9/-1",
            "bytes 0-9/1 ",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }

    fn int(first: u64, last: Option<u64>) -> Range {
        Range::Int { first, last }
    }

    #[test]
    fn closed_ranges() {
        assert_eq!(resolve(&int(0, Some(0)), 10), Ok(0..1));
        assert_eq!(resolve(&int(2, Some(5)), 10), Ok(2..6));
        // A last byte past the end is clamped.
        assert_eq!(resolve(&int(5, Some(100)), 10), Ok(5..10));
    }

    #[test]
    fn open_and_suffix_ranges() {
        assert_eq!(resolve(&int(7, None), 10), Ok(7..10));
        assert_eq!(resolve(&Range::Suffix { length: 3 }, 10), Ok(7..10));
        assert_eq!(resolve(&Range::Suffix { length: 30 }, 10), Ok(0..10));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(resolve(&int(10, None), 10), Err(Unsatisfiable { size: 10 }));
        assert_eq!(resolve(&int(0, Some(1)), 0), Err(Unsatisfiable { size: 0 }));
        assert!(resolve(&Range::Suffix { length: 0 }, 10).is_err());
        assert!(resolve(&Range::Suffix { length: 5 }, 0).is_err());
    }

    #[test]
    fn content_range_header() {
        assert_eq!(content_range(&(2..6), 10), "bytes 2-5/10");
        assert_eq!(content_range(&(0..1), 1), "bytes 0-0/1");
    }
}
