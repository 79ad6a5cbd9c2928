//! Human-friendly byte sizes (`64KiB`, `8MiB`, `1GB`, `4096`) for configuration, parsed by
//! the [`bytesize`] crate.

use std::fmt;
use std::str::FromStr;

/// A size in bytes, parsed from strings such as `512MiB`, `1GB`, `1.5 GiB` or `4096`.
///
/// Parsing is [`bytesize`]'s: a number (decimals allowed) with an optional unit, units in any
/// case. `K`/`KB`, `M`/`MB`, `G`/`GB`, `T`/`TB` are powers of 1000; `Ki`/`KiB`, `Mi`/`MiB`,
/// `Gi`/`GiB`, `Ti`/`TiB` powers of 1024; no unit or `B` means bytes.
///
/// ```
/// use s3cached::model::size::ByteSize;
/// assert_eq!("8MiB".parse::<ByteSize>().unwrap().bytes(), 8 * 1024 * 1024);
/// assert_eq!("1kb".parse::<ByteSize>().unwrap().bytes(), 1000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The size in bytes.
    #[must_use]
    pub fn bytes(self) -> u64 {
        self.0
    }
}

/// A size string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: {reason} (expected a number with an optional unit: B, KB, KiB, MB, MiB, GB, GiB, …)")]
pub struct ParseSizeError {
    input: String,
    reason: String,
}

impl FromStr for ByteSize {
    type Err = ParseSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| ParseSizeError {
            input: s.to_owned(),
            reason,
        };
        let t = s.trim();
        let parsed = t.parse::<bytesize::ByteSize>().map_err(err)?.as_u64();
        // The crate saturates on overflow; a plain byte count of u64::MAX is the only way to
        // mean that value.
        if parsed == u64::MAX && t.parse::<u64>().is_err() {
            return Err(err("too large".to_owned()));
        }
        Ok(ByteSize(parsed))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (mult, unit) in UNITS {
            if self.0 >= mult && self.0.is_multiple_of(mult) {
                return write!(f, "{}{unit}", self.0 / mult);
            }
        }
        write!(f, "{}B", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("4096".parse::<ByteSize>().unwrap().0, 4096);
        assert_eq!("64KiB".parse::<ByteSize>().unwrap().0, 65536);
        assert_eq!("1 GiB".parse::<ByteSize>().unwrap().0, 1 << 30);
        assert_eq!("2mb".parse::<ByteSize>().unwrap().0, 2_000_000);
        assert_eq!("1GB".parse::<ByteSize>().unwrap().0, 1_000_000_000);
        assert_eq!("256mib".parse::<ByteSize>().unwrap().0, 256 << 20);
        assert_eq!(" 8MiB ".parse::<ByteSize>().unwrap().0, 8 << 20);
        assert_eq!("1.5MiB".parse::<ByteSize>().unwrap().0, 3 << 19);
        assert_eq!("18446744073709551615".parse::<ByteSize>().unwrap().0, u64::MAX);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "MiB",
            "-1",
            "1,5MiB",
            "12 parsecs",
            "99999999999999999999",
            "8 MiB x",
        ] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad}");
        }
        assert!("20000000TiB".parse::<ByteSize>().is_err());
        assert!("99999999999999999999.5B".parse::<ByteSize>().is_err());
        let e = "lots".parse::<ByteSize>().unwrap_err().to_string();
        assert!(e.contains("\"lots\"") && e.contains("MiB"), "{e}");
    }

    #[test]
    fn displays_round_units() {
        assert_eq!(ByteSize(8 << 20).to_string(), "8MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }
}
