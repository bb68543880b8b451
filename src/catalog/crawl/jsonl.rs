//! JSON lines schema inference: the union of the keys of the sampled objects.

use super::{Column, types};

const SAMPLE_ROWS: usize = 1000;

fn type_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => types::NULL,
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        serde_json::Value::Number(_) => "float",
        serde_json::Value::String(s) => types::infer_json_string(s),
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "struct",
    }
}

/// Infers columns from the first bytes of a JSON lines file.
pub fn infer(sample: &[u8], truncated: bool) -> Result<Vec<Column>, String> {
    let text = String::from_utf8_lossy(sample);
    let mut lines: Vec<&str> = text.lines().collect();
    if truncated && !text.ends_with('\n') {
        lines.pop();
    }
    let mut columns: Vec<Column> = Vec::new();
    let mut rows = 0usize;
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if rows >= SAMPLE_ROWS {
            break;
        }
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {} is not JSON: {e}", n + 1))?;
        let serde_json::Value::Object(obj) = v else {
            return Err(format!("line {} is not a JSON object", n + 1));
        };
        for c in &mut columns {
            if !obj.contains_key(&c.name) {
                c.nullable = true;
            }
        }
        for (k, v) in &obj {
            let t = type_of(v);
            match columns.iter_mut().find(|c| &c.name == k) {
                Some(c) => {
                    c.data_type = types::merge(&c.data_type, t);
                    c.nullable |= t == types::NULL;
                }
                None => columns.push(Column {
                    name: k.clone(),
                    data_type: t.to_string(),
                    nullable: rows > 0 || t == types::NULL,
                }),
            }
        }
        rows += 1;
    }
    if rows == 0 {
        return Err("the JSON lines file is empty".into());
    }
    for c in &mut columns {
        if c.data_type == types::NULL {
            c.data_type = "string".into();
        }
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_of_keys() {
        let s = b"{\"a\":1,\"b\":\"x\"}\n{\"a\":2.5,\"c\":\"2024-01-01\"}\n{\"a\":3,\"b\":nu";
        let cols = infer(s, true).unwrap();
        let got: Vec<(&str, &str, bool)> = cols
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str(), c.nullable))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", "float", false),
                ("b", "string", true),
                ("c", "date", true)
            ]
        );
        assert!(infer(b"[1]\n", false).is_err());
    }
}
