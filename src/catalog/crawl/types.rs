//! Column types inferred from text values, and how they merge across files.

/// Inferred type names, as the API shows them. `null` only exists during inference
/// (a column whose sampled values were all empty) and ends up as `string`.
pub const NULL: &str = "null";

/// The type of one text value (CSV cell, Hive partition value).
pub fn infer_text(v: &str) -> &'static str {
    let t = v.trim();
    if t.is_empty() {
        return NULL;
    }
    if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
        return "boolean";
    }
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return if t.parse::<i64>().is_ok() {
            "integer"
        } else {
            "float"
        };
    }
    if t.bytes().any(|b| b.is_ascii_digit())
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        && t.parse::<f64>().is_ok_and(f64::is_finite)
    {
        return "float";
    }
    if is_date(t) {
        return "date";
    }
    if let (Some(day), Some(sep), Some(rest)) = (t.get(..10), t.as_bytes().get(10), t.get(11..))
        && is_date(day)
        && matches!(sep, b'T' | b' ')
        && is_time(rest)
    {
        return "timestamp";
    }
    "string"
}

/// The type of a string inside JSON (dates and timestamps are recognized).
pub fn infer_json_string(s: &str) -> &'static str {
    match infer_text(s) {
        d @ ("date" | "timestamp") => d,
        _ => "string",
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (1..=12).contains(&s[5..7].parse::<u8>().unwrap_or(0))
        && (1..=31).contains(&s[8..10].parse::<u8>().unwrap_or(0))
}

fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8
        && b[2] == b':'
        && b[5] == b':'
        && b[..8]
            .iter()
            .enumerate()
            .all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit())
}

/// The narrowest type that holds values of both types.
pub fn merge(a: &str, b: &str) -> String {
    match (a, b) {
        _ if a == b => a.to_string(),
        (NULL, x) | (x, NULL) => x.to_string(),
        ("integer", "float") | ("float", "integer") => "float".into(),
        ("date", "timestamp") | ("timestamp", "date") => "timestamp".into(),
        _ => "string".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_types() {
        assert_eq!(infer_text("42"), "integer");
        assert_eq!(infer_text("-3.5"), "float");
        assert_eq!(infer_text("1e3"), "float");
        assert_eq!(infer_text("TRUE"), "boolean");
        assert_eq!(infer_text("2024-05-01"), "date");
        assert_eq!(infer_text("2024-05-01T10:00:00Z"), "timestamp");
        assert_eq!(infer_text("2024-13-01"), "string");
        assert_eq!(infer_text("abc"), "string");
        assert_eq!(infer_text(""), NULL);
        assert_eq!(infer_text("99999999999999999999"), "float");
        assert_eq!(merge("integer", "float"), "float");
        assert_eq!(merge(NULL, "date"), "date");
        assert_eq!(merge("boolean", "integer"), "string");
    }
}
