//! Parquet schema from the file footer, with a small Thrift compact-protocol decoder.
//!
//! # Why not the `parquet` crate
//! Only `FileMetaData.schema` (field 2) is needed. The `parquet` crate (even with
//! default features off) pulls arrow-style dependencies and adds tens of seconds of
//! build time on this 2-core machine; reading a list of `SchemaElement` structs is
//! ~200 lines. The decoder stops right after the schema, so row-group metadata
//! (the bulk of large footers) is never parsed. Hostile input can only produce an
//! error: lengths are bounds-checked and nesting depth is limited.

use super::Column;

/// `PAR1`, at both ends of a Parquet file.
pub const MAGIC: &[u8; 4] = b"PAR1";
/// Largest footer read (the schema of even very wide tables fits).
pub const MAX_FOOTER: u64 = 16 * 1024 * 1024;
const MAX_DEPTH: usize = 32;

/// Reads the footer length from the last 8 bytes of a file.
pub fn footer_len(tail: &[u8]) -> Result<u64, String> {
    if tail.len() != 8 || &tail[4..] != MAGIC {
        return Err("not a Parquet file (no PAR1 magic at the end)".into());
    }
    let len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if len > MAX_FOOTER {
        return Err(format!("Parquet footer of {len} bytes is too large"));
    }
    Ok(len)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

// Compact protocol type ids.
const T_STOP: u8 = 0;
const T_TRUE: u8 = 1;
const T_FALSE: u8 = 2;
const T_BYTE: u8 = 3;
const T_I16: u8 = 4;
const T_I32: u8 = 5;
const T_I64: u8 = 6;
const T_DOUBLE: u8 = 7;
const T_BINARY: u8 = 8;
const T_LIST: u8 = 9;
const T_SET: u8 = 10;
const T_MAP: u8 = 11;
const T_STRUCT: u8 = 12;

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.buf.get(self.pos).ok_or("truncated Parquet footer")?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("malformed varint in Parquet footer".into())
    }

    fn zigzag(&mut self) -> Result<i64, String> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
        let end = self.pos.checked_add(len).ok_or("length overflow")?;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or("truncated Parquet footer")?;
        self.pos = end;
        Ok(b)
    }

    /// Field header: `(type, id)`, or `None` at the struct's end.
    fn field(&mut self, last: &mut i16) -> Result<Option<(u8, i16)>, String> {
        let b = self.byte()?;
        let ty = b & 0x0f;
        if ty == T_STOP {
            return Ok(None);
        }
        let delta = (b >> 4) as i16;
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| "bad field id")?
        } else {
            last.checked_add(delta).ok_or("bad field id")?
        };
        *last = id;
        Ok(Some((ty, id)))
    }

    /// List header: `(element type, size)`.
    fn list(&mut self) -> Result<(u8, usize), String> {
        let b = self.byte()?;
        let mut size = (b >> 4) as u64;
        if size == 15 {
            size = self.varint()?;
        }
        // Every element takes at least one byte: a larger size is a lie.
        let size = usize::try_from(size).map_err(|_| "list too long")?;
        if size > self.buf.len() - self.pos.min(self.buf.len()) {
            return Err("list longer than the footer".into());
        }
        Ok((b & 0x0f, size))
    }

    fn skip(&mut self, ty: u8, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("Parquet footer nests too deeply".into());
        }
        match ty {
            T_TRUE | T_FALSE => Ok(()),
            T_BYTE => self.byte().map(|_| ()),
            T_I16 | T_I32 | T_I64 => self.varint().map(|_| ()),
            T_DOUBLE => {
                for _ in 0..8 {
                    self.byte()?;
                }
                Ok(())
            }
            T_BINARY => self.bytes().map(|_| ()),
            T_LIST | T_SET => {
                let (et, n) = self.list()?;
                for _ in 0..n {
                    self.skip_elem(et, depth + 1)?;
                }
                Ok(())
            }
            T_MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let kv = self.byte()?;
                for _ in 0..n {
                    self.skip_elem(kv >> 4, depth + 1)?;
                    self.skip_elem(kv & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            T_STRUCT => {
                let mut last = 0i16;
                while let Some((t, _)) = self.field(&mut last)? {
                    self.skip(t, depth + 1)?;
                }
                Ok(())
            }
            other => Err(format!("unknown Thrift type {other} in Parquet footer")),
        }
    }

    /// Skips a collection element (booleans in collections take one byte).
    fn skip_elem(&mut self, ty: u8, depth: usize) -> Result<(), String> {
        if ty == T_TRUE || ty == T_FALSE {
            return self.byte().map(|_| ());
        }
        self.skip(ty, depth)
    }

    fn i32(&mut self) -> Result<i32, String> {
        i32::try_from(self.zigzag()?).map_err(|_| "i32 out of range".to_string())
    }
}

/// The parts of `SchemaElement` that decide a column's name and type.
#[derive(Debug, Default, Clone)]
struct Element {
    physical: Option<i32>,
    repetition: Option<i32>,
    name: String,
    num_children: i32,
    converted: Option<i32>,
    /// Field id of the set member of the `LogicalType` union.
    logical: Option<i16>,
}

fn element(r: &mut Reader<'_>) -> Result<Element, String> {
    let mut e = Element::default();
    let mut last = 0i16;
    while let Some((ty, id)) = r.field(&mut last)? {
        match (id, ty) {
            (1, T_I32) => e.physical = Some(r.i32()?),
            (3, T_I32) => e.repetition = Some(r.i32()?),
            (4, T_BINARY) => e.name = String::from_utf8_lossy(r.bytes()?).into_owned(),
            (5, T_I32) => e.num_children = r.i32()?,
            (6, T_I32) => e.converted = Some(r.i32()?),
            (10, T_STRUCT) => {
                let mut l = 0i16;
                while let Some((t, member)) = r.field(&mut l)? {
                    e.logical = Some(member);
                    r.skip(t, 2)?;
                }
            }
            (_, t) => r.skip(t, 1)?,
        }
    }
    Ok(e)
}

fn leaf_type(e: &Element) -> &'static str {
    match e.logical {
        Some(1) | Some(4) | Some(12) | Some(14) => return "string",
        Some(5) => return "decimal",
        Some(6) => return "date",
        Some(7) => return "time",
        Some(8) => return "timestamp",
        Some(10) => return "integer",
        _ => {}
    }
    match e.converted {
        Some(0) | Some(4) | Some(19) => return "string",
        Some(5) => return "decimal",
        Some(6) => return "date",
        Some(7) | Some(8) => return "time",
        Some(9) | Some(10) => return "timestamp",
        Some(11..=18) => return "integer",
        _ => {}
    }
    match e.physical {
        Some(0) => "boolean",
        Some(1) | Some(2) => "integer",
        Some(3) => "timestamp",
        Some(4) | Some(5) => "float",
        _ => "binary",
    }
}

fn group_type(e: &Element) -> &'static str {
    match (e.logical, e.converted) {
        (Some(3), _) | (_, Some(3)) => "list",
        (Some(2), _) | (_, Some(1)) | (_, Some(2)) => "map",
        _ => "struct",
    }
}

/// Decodes the top-level columns from a `FileMetaData` footer.
pub fn columns(footer: &[u8]) -> Result<Vec<Column>, String> {
    let mut r = Reader {
        buf: footer,
        pos: 0,
    };
    let mut last = 0i16;
    let mut elements = Vec::new();
    while let Some((ty, id)) = r.field(&mut last)? {
        if id == 2 && ty == T_LIST {
            let (et, n) = r.list()?;
            if et != T_STRUCT {
                return Err("Parquet schema is not a list of structs".into());
            }
            for _ in 0..n {
                elements.push(element(&mut r)?);
            }
            break;
        }
        r.skip(ty, 0)?;
    }
    let Some((root, rest)) = elements.split_first() else {
        return Err("Parquet footer has no schema".into());
    };
    // Walk the flattened tree: the root's children are the columns; a group's
    // descendants follow it depth-first and are folded into it.
    let mut cols = Vec::new();
    let mut i = 0usize;
    for _ in 0..root.num_children.max(0) {
        let Some(e) = rest.get(i) else {
            return Err("Parquet schema has fewer elements than announced".into());
        };
        let data_type = if e.num_children > 0 {
            group_type(e)
        } else {
            leaf_type(e)
        };
        cols.push(Column {
            name: e.name.clone(),
            data_type: data_type.to_string(),
            nullable: e.repetition != Some(0),
        });
        i = skip_subtree(rest, i, 0)?;
    }
    Ok(cols)
}

/// Index just past the subtree rooted at `rest[i]`.
fn skip_subtree(rest: &[Element], i: usize, depth: usize) -> Result<usize, String> {
    if depth > MAX_DEPTH {
        return Err("Parquet schema nests too deeply".into());
    }
    let e = rest.get(i).ok_or("Parquet schema is truncated")?;
    let mut next = i + 1;
    for _ in 0..e.num_children.max(0) {
        next = skip_subtree(rest, next, depth + 1)?;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zz(v: i64) -> Vec<u8> {
        let mut u = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            let b = (u & 0x7f) as u8;
            u >>= 7;
            if u == 0 {
                out.push(b);
                return out;
            }
            out.push(b | 0x80);
        }
    }

    /// Encodes a SchemaElement: (type, repetition, name, num_children, converted).
    fn elem(ty: Option<i32>, rep: i32, name: &str, children: i32, conv: Option<i32>) -> Vec<u8> {
        let mut b = Vec::new();
        let mut last = 0;
        let mut field = |b: &mut Vec<u8>, id: i32, t: u8| {
            b.push((((id - last) as u8) << 4) | t);
            last = id;
        };
        if let Some(t) = ty {
            field(&mut b, 1, T_I32);
            b.extend(zz(t as i64));
        }
        field(&mut b, 3, T_I32);
        b.extend(zz(rep as i64));
        field(&mut b, 4, T_BINARY);
        b.push(name.len() as u8);
        b.extend(name.as_bytes());
        if children > 0 {
            field(&mut b, 5, T_I32);
            b.extend(zz(children as i64));
        }
        if let Some(c) = conv {
            field(&mut b, 6, T_I32);
            b.extend(zz(c as i64));
        }
        b.push(0);
        b
    }

    #[test]
    fn decodes_a_schema() {
        let mut f = vec![0x15]; // field 1 (version), i32
        f.extend(zz(1));
        f.push(0x19); // field 2, list
        f.push(0x5c); // 5 structs
        f.extend(elem(None, 0, "schema", 3, None));
        f.extend(elem(Some(2), 0, "id", 0, None));
        f.extend(elem(Some(6), 1, "name", 0, Some(0)));
        f.extend(elem(None, 1, "tags", 1, Some(3)));
        f.extend(elem(Some(6), 2, "element", 0, Some(0)));
        f.push(0x16); // field 3, i64 (num_rows): must not be needed
        f.extend(zz(5));
        f.push(0);
        let cols = columns(&f).unwrap();
        let got: Vec<(&str, &str, bool)> = cols
            .iter()
            .map(|c| (c.name.as_str(), c.data_type.as_str(), c.nullable))
            .collect();
        assert_eq!(
            got,
            vec![
                ("id", "integer", false),
                ("name", "string", true),
                ("tags", "list", true)
            ]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for input in [
            &b""[..],
            b"\x19\xfc\xff\xff\xff\x0f",
            b"\x19\x5c\x18\xff\xff\xff",
            b"\xff\xff",
        ] {
            assert!(columns(input).is_err());
        }
        assert!(footer_len(b"1234PAR1").is_err());
        assert_eq!(
            footer_len(&[10, 0, 0, 0, b'P', b'A', b'R', b'1']).unwrap(),
            10
        );
    }
}
