//! The `Range` header, as S3 understands it: one `bytes=` range.

/// A parsed byte range request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `bytes=a-b` (inclusive).
    FromTo(u64, u64),
    /// `bytes=a-`.
    From(u64),
    /// `bytes=-n`: the last n bytes.
    Suffix(u64),
}

/// Parses a Range header. `None` means the header is to be ignored (S3 serves the
/// whole object for syntactically invalid or multi-range values).
pub fn parse(value: &str) -> Option<RangeSpec> {
    let spec = value.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        (true, false) => Some(RangeSpec::Suffix(num(b)?)),
        (false, true) => Some(RangeSpec::From(num(a)?)),
        (false, false) => {
            let (x, y) = (num(a)?, num(b)?);
            (x <= y).then_some(RangeSpec::FromTo(x, y))
        }
        (true, true) => None,
    }
}

/// Resolves a range against an object size: `Some((start, len))`, or `None` when the
/// range is not satisfiable (416 InvalidRange).
pub fn resolve(spec: RangeSpec, size: u64) -> Option<(u64, u64)> {
    match spec {
        RangeSpec::FromTo(a, b) if a < size => Some((a, b.min(size - 1) - a + 1)),
        RangeSpec::From(a) if a < size => Some((a, size - a)),
        RangeSpec::Suffix(n) if n > 0 && size > 0 => {
            let n = n.min(size);
            Some((size - n, n))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_resolves() {
        assert_eq!(parse("bytes=0-9"), Some(RangeSpec::FromTo(0, 9)));
        assert_eq!(parse("bytes=5-"), Some(RangeSpec::From(5)));
        assert_eq!(parse("bytes=-3"), Some(RangeSpec::Suffix(3)));
        assert_eq!(parse("bytes=9-0"), None);
        assert_eq!(parse("bytes=0-1,4-5"), None);
        assert_eq!(parse("items=0-1"), None);
        assert_eq!(parse("bytes=-"), None);
        assert_eq!(parse("bytes=+1-2"), None);
        assert_eq!(resolve(RangeSpec::FromTo(0, 99), 10), Some((0, 10)));
        assert_eq!(resolve(RangeSpec::FromTo(10, 20), 10), None);
        assert_eq!(resolve(RangeSpec::From(9), 10), Some((9, 1)));
        assert_eq!(resolve(RangeSpec::Suffix(30), 10), Some((0, 10)));
        assert_eq!(resolve(RangeSpec::Suffix(0), 10), None);
        assert_eq!(resolve(RangeSpec::From(0), 0), None);
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_in_bounds(s in ".{0,40}", size in 0u64..1_000_000) {
            if let Some((start, len)) = parse(&s).and_then(|spec| resolve(spec, size)) {
                prop_assert!(len > 0 && start + len <= size);
            }
        }
    }
}
