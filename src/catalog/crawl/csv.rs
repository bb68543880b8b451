//! CSV schema inference: delimiter sniffing, header, column types from a sample.

use super::{Column, types};

/// Rows sampled for type inference.
const SAMPLE_ROWS: usize = 1000;

/// Splits `text` into records (RFC 4180: `"` quotes, `""` escapes, newlines inside
/// quotes), at most `max` of them. A final record cut off by the sample's end is
/// dropped when `truncated`.
fn records(text: &str, delim: char, max: usize, truncated: bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let mut complete = true;
    while let Some(c) = chars.next() {
        complete = false;
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    field.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
        } else if c == '"' && field.is_empty() {
            in_quotes = true;
        } else if c == delim {
            row.push(std::mem::take(&mut field));
        } else if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            row.push(std::mem::take(&mut field));
            out.push(std::mem::take(&mut row));
            complete = true;
            if out.len() >= max {
                return out;
            }
        } else {
            field.push(c);
        }
    }
    if !complete && !truncated {
        row.push(field);
        out.push(row);
    }
    out.retain(|r| !(r.len() == 1 && r[0].is_empty()));
    out
}

/// Picks the delimiter that splits the first lines into the same, largest number
/// of fields.
pub fn sniff_delimiter(text: &str) -> char {
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).take(20).collect();
    let mut best = (',', 0usize);
    for d in [',', '\t', ';', '|'] {
        let rows = records(&lines.join("\n"), d, 20, false);
        let Some(first) = rows.first() else { continue };
        let n = first.len();
        if n > 1 && rows.iter().all(|r| r.len() == n) && n > best.1 {
            best = (d, n);
        }
    }
    best.0
}

/// Infers columns from the first bytes of a CSV file. `truncated` says the sample
/// stops before the end of the file. Returns the delimiter and the columns.
pub fn infer(sample: &[u8], truncated: bool) -> Result<(char, Vec<Column>), String> {
    let text = String::from_utf8_lossy(sample);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let delim = sniff_delimiter(text);
    let rows = records(text, delim, SAMPLE_ROWS + 1, truncated);
    let Some((header, data)) = rows.split_first() else {
        return Err("the CSV file is empty".into());
    };
    let mut columns: Vec<Column> = header
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let name = h.trim();
            Column {
                name: if name.is_empty() {
                    format!("col_{}", i + 1)
                } else {
                    name.to_string()
                },
                data_type: types::NULL.to_string(),
                nullable: false,
            }
        })
        .collect();
    for row in data {
        for (i, col) in columns.iter_mut().enumerate() {
            match row.get(i).map(String::as_str) {
                None | Some("") => col.nullable = true,
                Some(v) => {
                    let t = types::infer_text(v);
                    if t == types::NULL {
                        col.nullable = true;
                    }
                    col.data_type = types::merge(&col.data_type, t);
                }
            }
        }
    }
    for c in &mut columns {
        if c.data_type == types::NULL {
            c.data_type = "string".into();
            c.nullable = true;
        }
    }
    Ok((delim, columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_and_types() {
        let csv = "id;name;amount;day\n1;\"a;b\";2.5;2024-01-01\n2;c;;2024-01-02\n3;\"x\"\"y\";7;2024-01-03\n";
        let (d, cols) = infer(csv.as_bytes(), false).unwrap();
        assert_eq!(d, ';');
        let got: Vec<(&str, &str, bool)> = cols
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str(), c.nullable))
            .collect();
        assert_eq!(
            got,
            vec![
                ("id", "integer", false),
                ("name", "string", false),
                ("amount", "float", true),
                ("day", "date", false)
            ]
        );
        let (d, _) = infer(b"a\tb\n1\t2\n", false).unwrap();
        assert_eq!(d, '\t');
        // A record cut off by the sample is ignored.
        let (_, cols) = infer(b"a,b\n1,2\n3,xy", true).unwrap();
        assert_eq!(cols[1].data_type, "integer");
    }
}
