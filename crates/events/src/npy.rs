//! Minimal NumPy `.npy` / `.npz` reading and writing: plain little-endian numeric arrays and structured
//! (record) arrays such as Prophesee's box files. Written by hand because the label files carry
//! unnamed padding fields and legacy field names that generic readers reject; every error names the file.

use crate::error::{EventsError, Result};
use std::io::{Read, Write};
use std::path::Path;

/// One scalar type of a numpy array or record field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    Bool,
    /// Raw bytes (`|V4` padding).
    Void(usize),
}

impl Scalar {
    pub fn size(self) -> usize {
        match self {
            Scalar::I8 | Scalar::U8 | Scalar::Bool => 1,
            Scalar::I16 | Scalar::U16 => 2,
            Scalar::I32 | Scalar::U32 | Scalar::F32 => 4,
            Scalar::I64 | Scalar::U64 | Scalar::F64 => 8,
            Scalar::Void(n) => n,
        }
    }

    fn parse(code: &str) -> Option<Scalar> {
        let (endian, rest) = code.split_at(1.min(code.len()));
        let rest = if matches!(endian, "<" | "|" | "=") {
            rest
        } else if endian == ">" {
            // Big-endian data is only fine for single bytes.
            if !matches!(rest, "u1" | "i1" | "b1") && !rest.starts_with('V') {
                return None;
            }
            rest
        } else {
            code
        };
        Some(match rest {
            "i1" => Scalar::I8,
            "u1" => Scalar::U8,
            "b1" => Scalar::Bool,
            "i2" => Scalar::I16,
            "u2" => Scalar::U16,
            "i4" => Scalar::I32,
            "u4" => Scalar::U32,
            "i8" => Scalar::I64,
            "u8" => Scalar::U64,
            "f4" => Scalar::F32,
            "f8" => Scalar::F64,
            v if v.starts_with('V') => Scalar::Void(v[1..].parse().ok()?),
            _ => return None,
        })
    }

    fn code(self) -> String {
        match self {
            Scalar::I8 => "|i1".into(),
            Scalar::U8 => "|u1".into(),
            Scalar::Bool => "|b1".into(),
            Scalar::I16 => "<i2".into(),
            Scalar::U16 => "<u2".into(),
            Scalar::I32 => "<i4".into(),
            Scalar::U32 => "<u4".into(),
            Scalar::I64 => "<i8".into(),
            Scalar::U64 => "<u8".into(),
            Scalar::F32 => "<f4".into(),
            Scalar::F64 => "<f8".into(),
            Scalar::Void(n) => format!("|V{n}"),
        }
    }

    /// Reads one value at the start of `b` as f64 (exact for every integer below 2^53 and every f32).
    pub fn read_f64(self, b: &[u8]) -> f64 {
        match self {
            Scalar::I8 => b[0] as i8 as f64,
            Scalar::U8 | Scalar::Bool => b[0] as f64,
            Scalar::I16 => i16::from_le_bytes([b[0], b[1]]) as f64,
            Scalar::U16 => u16::from_le_bytes([b[0], b[1]]) as f64,
            Scalar::I32 => i32::from_le_bytes(b[..4].try_into().unwrap_or_default()) as f64,
            Scalar::U32 => u32::from_le_bytes(b[..4].try_into().unwrap_or_default()) as f64,
            Scalar::I64 => i64::from_le_bytes(b[..8].try_into().unwrap_or_default()) as f64,
            Scalar::U64 => u64::from_le_bytes(b[..8].try_into().unwrap_or_default()) as f64,
            Scalar::F32 => f32::from_le_bytes(b[..4].try_into().unwrap_or_default()) as f64,
            Scalar::F64 => f64::from_le_bytes(b[..8].try_into().unwrap_or_default()),
            Scalar::Void(_) => f64::NAN,
        }
    }

    /// Reads one integer value exactly; `None` for floats that are not integral or void.
    pub fn read_i64(self, b: &[u8]) -> Option<i64> {
        Some(match self {
            Scalar::I8 => b[0] as i8 as i64,
            Scalar::U8 | Scalar::Bool => b[0] as i64,
            Scalar::I16 => i16::from_le_bytes([b[0], b[1]]) as i64,
            Scalar::U16 => u16::from_le_bytes([b[0], b[1]]) as i64,
            Scalar::I32 => i32::from_le_bytes(b[..4].try_into().ok()?) as i64,
            Scalar::U32 => u32::from_le_bytes(b[..4].try_into().ok()?) as i64,
            Scalar::I64 => i64::from_le_bytes(b[..8].try_into().ok()?),
            Scalar::U64 => i64::try_from(u64::from_le_bytes(b[..8].try_into().ok()?)).ok()?,
            Scalar::F32 | Scalar::F64 => {
                let v = self.read_f64(b);
                if v.fract() != 0.0 || !v.is_finite() {
                    return None;
                }
                v as i64
            }
            Scalar::Void(_) => return None,
        })
    }
}

/// A field of a record dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub ty: Scalar,
    pub offset: usize,
}

/// The element type of an array.
#[derive(Debug, Clone, PartialEq)]
pub enum Dtype {
    Simple(Scalar),
    Record { fields: Vec<Field>, itemsize: usize },
}

impl Dtype {
    pub fn itemsize(&self) -> usize {
        match self {
            Dtype::Simple(s) => s.size(),
            Dtype::Record { itemsize, .. } => *itemsize,
        }
    }
    pub fn field(&self, name: &str) -> Option<&Field> {
        match self {
            Dtype::Record { fields, .. } => fields.iter().find(|f| f.name == name),
            Dtype::Simple(_) => None,
        }
    }
}

/// A whole array as raw little-endian bytes.
#[derive(Debug, Clone)]
pub struct NpyArray {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl NpyArray {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The array as i64 values (any integer dtype; floats only when integral).
    pub fn to_i64(&self, path: &Path) -> Result<Vec<i64>> {
        let Dtype::Simple(s) = self.dtype else {
            return Err(EventsError::format(
                path,
                "expected a numeric array, found records",
            ));
        };
        self.data
            .chunks_exact(s.size())
            .enumerate()
            .map(|(i, b)| {
                s.read_i64(b).ok_or_else(|| {
                    EventsError::format(path, format!("element {i} is not an integer"))
                })
            })
            .collect()
    }
}

/// Reads a `.npy` file.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| EventsError::io(path, e))?;
    parse_npy(&bytes, path)
}

/// Reads one member (`name` without or with `.npy`) of an `.npz` archive.
pub fn read_npz_member(path: &Path, name: &str) -> Result<NpyArray> {
    let file = std::fs::File::open(path).map_err(|e| EventsError::io(path, e))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| EventsError::format(path, format!("not a valid npz (zip) archive: {e}")))?;
    let member = if name.ends_with(".npy") {
        name.to_string()
    } else {
        format!("{name}.npy")
    };
    let mut entry = zip
        .by_name(&member)
        .map_err(|_| EventsError::format(path, format!("npz archive has no array '{name}'")))?;
    // The size the archive claims is reserved only as far as the stored bytes can hold it (deflate
    // expands at most 1032×; stored members not at all): a corrupt size is not an allocation.
    let file_len = std::fs::metadata(path).map_or(0, |m| m.len());
    let justified = entry
        .compressed_size()
        .min(file_len)
        .saturating_mul(1032)
        .saturating_add(1 << 16);
    let mut bytes = Vec::with_capacity(entry.size().min(justified) as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| EventsError::format(path, format!("array '{name}': {e}")))?;
    parse_npy(&bytes, &path.join(&member))
}

/// Parses the bytes of a `.npy` file; `path` is only used in errors.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    let bad = |m: &str| EventsError::format(path, format!("not a valid .npy file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("unsupported format version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    let dict = literal::parse(header).map_err(|m| bad(&format!("header: {m}")))?;
    let descr = dict
        .get("descr")
        .ok_or_else(|| bad("header has no 'descr'"))?;
    let dtype = dtype_from_descr(descr).map_err(|m| bad(&m))?;
    if dict.get("fortran_order") == Some(&literal::Value::Bool(true)) {
        let nd = match dict.get("shape") {
            Some(literal::Value::Tuple(t)) => t.len(),
            _ => 0,
        };
        if nd > 1 {
            return Err(bad("Fortran-ordered arrays are not supported"));
        }
    }
    let shape = match dict.get("shape") {
        Some(literal::Value::Tuple(items)) => items
            .iter()
            .map(|v| match v {
                literal::Value::Int(n) if *n >= 0 => Ok(*n as usize),
                _ => Err(bad("shape entries must be non-negative integers")),
            })
            .collect::<Result<Vec<_>>>()?,
        _ => return Err(bad("header has no shape tuple")),
    };
    let n: usize = shape.iter().product();
    let need = n
        .checked_mul(dtype.itemsize())
        .ok_or_else(|| bad("shape too large"))?;
    let data = &bytes[start + header_len..];
    if data.len() < need {
        return Err(bad(&format!(
            "truncated data: {} bytes for {n} elements of {} bytes",
            data.len(),
            dtype.itemsize()
        )));
    }
    Ok(NpyArray {
        dtype,
        shape,
        data: data[..need].to_vec(),
    })
}

fn dtype_from_descr(v: &literal::Value) -> std::result::Result<Dtype, String> {
    match v {
        literal::Value::Str(code) => Scalar::parse(code)
            .map(Dtype::Simple)
            .ok_or_else(|| format!("unsupported dtype '{code}' (only little-endian numbers)")),
        literal::Value::List(items) => {
            let mut fields = Vec::new();
            let mut offset = 0;
            for item in items {
                let literal::Value::Tuple(t) = item else {
                    return Err("record fields must be tuples".into());
                };
                match t.as_slice() {
                    [literal::Value::Str(name), literal::Value::Str(code)] => {
                        let ty = Scalar::parse(code).ok_or_else(|| {
                            format!("field '{name}' has unsupported type '{code}'")
                        })?;
                        fields.push(Field {
                            name: name.clone(),
                            ty,
                            offset,
                        });
                        // A mutated '|V…' size must not wrap the record size around.
                        offset = offset.checked_add(ty.size()).ok_or_else(|| {
                            format!("field '{name}' makes the record size overflow")
                        })?;
                    }
                    _ => return Err("nested or shaped record fields are not supported".into()),
                }
            }
            Ok(Dtype::Record {
                fields,
                itemsize: offset,
            })
        }
        _ => Err("descr must be a string or a list of fields".into()),
    }
}

fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape = match shape {
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}");
    // numpy pads the header with spaces and a newline so the data starts on a 64-byte boundary.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// Serialises a numeric array as `.npy` bytes.
pub fn npy_bytes_simple(ty: Scalar, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = header_bytes(&format!("'{}'", ty.code()), shape);
    out.extend_from_slice(data);
    out
}

/// Serialises a 1-D record array as `.npy` bytes; padding fields have an empty name.
pub fn npy_bytes_records(fields: &[(&str, Scalar)], len: usize, data: &[u8]) -> Vec<u8> {
    let descr = fields
        .iter()
        .map(|(n, t)| format!("('{n}', '{}')", t.code()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = header_bytes(&format!("[{descr}]"), &[len]);
    out.extend_from_slice(data);
    out
}

/// i64 array → `.npy` bytes.
pub fn npy_bytes_i64(values: &[i64]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy_bytes_simple(Scalar::I64, &[values.len()], &data)
}

/// Writes `bytes` to `path` through a temporary file in the same folder, then renames it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    evdet_atomic::write(path, bytes).map_err(EventsError::Write)
}

/// Writes an `.npz` archive (stored, uncompressed, like `numpy.savez`) atomically.
pub fn write_npz(path: &Path, members: &[(&str, Vec<u8>)]) -> Result<()> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, bytes) in members {
            zip.start_file(format!("{name}.npy"), opts)
                .map_err(|e| EventsError::format(path, e.to_string()))?;
            zip.write_all(bytes).map_err(|e| EventsError::io(path, e))?;
        }
        zip.finish()
            .map_err(|e| EventsError::format(path, e.to_string()))?;
    }
    write_atomic(path, &buf.into_inner())
}

/// A parser for the Python literal subset numpy headers use: dicts, lists, tuples, strings,
/// integers and booleans.
mod literal {
    use std::collections::HashMap;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Str(String),
        Int(i64),
        Bool(bool),
        None,
        List(Vec<Value>),
        Tuple(Vec<Value>),
        Dict(Vec<(Value, Value)>),
    }

    pub fn parse(s: &str) -> Result<HashMap<String, Value>, String> {
        let mut p = Parser {
            s: s.as_bytes(),
            i: 0,
        };
        match p.value()? {
            Value::Dict(items) => items
                .into_iter()
                .map(|(k, v)| match k {
                    Value::Str(k) => Ok((k, v)),
                    _ => Err("dictionary keys must be strings".to_string()),
                })
                .collect(),
            _ => Err("header is not a dictionary".into()),
        }
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
        }
        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.s.get(self.i).copied()
        }
        fn expect(&mut self, c: u8) -> Result<(), String> {
            if self.peek() == Some(c) {
                self.i += 1;
                Ok(())
            } else {
                Err(format!("expected '{}' at byte {}", c as char, self.i))
            }
        }
        fn seq(&mut self, close: u8) -> Result<Vec<Value>, String> {
            let mut items = Vec::new();
            loop {
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(items);
                }
                items.push(self.value()?);
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(c) if c == close => {}
                    _ => return Err(format!("expected ',' at byte {}", self.i)),
                }
            }
        }
        fn value(&mut self) -> Result<Value, String> {
            match self.peek().ok_or("unexpected end")? {
                b'{' => {
                    self.i += 1;
                    let mut items = Vec::new();
                    loop {
                        if self.peek() == Some(b'}') {
                            self.i += 1;
                            return Ok(Value::Dict(items));
                        }
                        let k = self.value()?;
                        self.expect(b':')?;
                        let v = self.value()?;
                        items.push((k, v));
                        match self.peek() {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {}
                            _ => return Err(format!("expected ',' at byte {}", self.i)),
                        }
                    }
                }
                b'[' => {
                    self.i += 1;
                    Ok(Value::List(self.seq(b']')?))
                }
                b'(' => {
                    self.i += 1;
                    Ok(Value::Tuple(self.seq(b')')?))
                }
                q @ (b'\'' | b'"') => {
                    self.i += 1;
                    let start = self.i;
                    while self.i < self.s.len() && self.s[self.i] != q {
                        self.i += 1;
                    }
                    if self.i >= self.s.len() {
                        return Err("unterminated string".into());
                    }
                    let v = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                    self.i += 1;
                    Ok(Value::Str(v))
                }
                c if c == b'-' || c.is_ascii_digit() => {
                    let start = self.i;
                    self.i += 1;
                    while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                        self.i += 1;
                    }
                    let t = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                    // numpy writes long shapes as e.g. `3L` in Python 2 files.
                    if self.s.get(self.i) == Some(&b'L') {
                        self.i += 1;
                    }
                    t.parse()
                        .map(Value::Int)
                        .map_err(|_| format!("bad integer '{t}'"))
                }
                _ => {
                    for (word, v) in [
                        ("True", Value::Bool(true)),
                        ("False", Value::Bool(false)),
                        ("None", Value::None),
                    ] {
                        if self.s[self.i..].starts_with(word.as_bytes()) {
                            self.i += word.len();
                            return Ok(v);
                        }
                    }
                    Err(format!("unexpected character at byte {}", self.i))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_i64_arrays() {
        let bytes = npy_bytes_i64(&[1, -2, 3_000_000_000]);
        assert_eq!(
            (bytes.len() - 24) % 64,
            0,
            "data starts on a 64-byte boundary"
        );
        let a = parse_npy(&bytes, Path::new("x.npy")).unwrap();
        assert_eq!(a.shape, vec![3]);
        assert_eq!(
            a.to_i64(Path::new("x")).unwrap(),
            vec![1, -2, 3_000_000_000]
        );
    }

    #[test]
    fn parses_record_header_with_padding() {
        let fields = [
            ("t", Scalar::I64),
            ("x", Scalar::F32),
            ("", Scalar::Void(4)),
        ];
        let bytes = npy_bytes_records(&fields, 0, &[]);
        let a = parse_npy(&bytes, Path::new("r.npy")).unwrap();
        assert_eq!(a.dtype.itemsize(), 16);
        assert_eq!(a.dtype.field("x").unwrap().offset, 8);
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(parse_npy(b"hello world", Path::new("g.npy")).is_err());
        let bytes = npy_bytes_i64(&[1, 2, 3]);
        let err = parse_npy(&bytes[..bytes.len() - 3], Path::new("t.npy")).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let big_endian = npy_bytes_simple(Scalar::I64, &[0], &[]);
        let s = String::from_utf8_lossy(&big_endian).replace("<i8", ">i8");
        assert!(parse_npy(s.as_bytes(), Path::new("b.npy")).is_err());
    }
}
