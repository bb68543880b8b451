//! Allocation-free helpers for the per-request hot path.

/// Calls `f` with `parts` joined by `sep`, built on the stack when it fits in 512 bytes
/// (it nearly always does: lookup keys of the object and signing-key caches).
pub fn joined<R>(parts: &[&str], sep: char, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = [0u8; 512];
    let mut sep_buf = [0u8; 4];
    let sep: &str = sep.encode_utf8(&mut sep_buf);
    let mut len = 0;
    for (i, part) in parts.iter().enumerate() {
        for piece in [if i == 0 { "" } else { sep }, part] {
            let Some(dst) = buf.get_mut(len..len + piece.len()) else {
                return f(&parts.join(sep));
            };
            dst.copy_from_slice(piece.as_bytes());
            len += piece.len();
        }
    }
    // Whole UTF-8 pieces were copied, so the check cannot fail.
    match std::str::from_utf8(buf.get(..len).unwrap_or_default()) {
        Ok(s) => f(s),
        Err(_) => f(&parts.join(sep)),
    }
}

#[cfg(test)]
mod tests {
    use super::joined;

    #[test]
    fn joins_on_the_stack_and_beyond() {
        assert_eq!(joined(&["a", "b", "c"], '\n', str::to_owned), "a\nb\nc");
        assert_eq!(joined(&["only"], '/', str::to_owned), "only");
        assert_eq!(joined(&[], '/', str::to_owned), "");
        let long = "x".repeat(600);
        assert_eq!(
            joined(&["b", &long], '/', str::to_owned),
            format!("b/{long}")
        );
        assert_eq!(joined(&["é", "ü"], '·', str::to_owned), "é·ü");
    }
}
