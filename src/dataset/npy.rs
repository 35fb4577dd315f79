//! The `.npy` format (numpy's NEP 1): a magic string, a Python-literal header dict, then raw C-order data.
//!
//! Parsed here rather than through ndarray-npy because its reader loads whole arrays, and datasets are
//! streamed one sample at a time.

use std::io::Read;

use super::error::DatasetErrorKind;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Headers are a few hundred bytes; the cap keeps a malformed length from allocating gigabytes.
const MAX_HEADER_LEN: usize = 1 << 20;

/// The header of one `.npy` array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NpyHeader {
    /// Element type.
    pub dtype: Dtype,
    /// Array shape; the first axis indexes samples.
    pub shape: Vec<usize>,
    /// Bytes before the data (magic, version, length field, header text).
    pub data_offset: u64,
}

/// What kind of number an element is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElementKind {
    /// `b1`: one byte, 0 or 1.
    Bool,
    /// `u1`..`u8`.
    Unsigned,
    /// `i1`..`i8`.
    Signed,
    /// `f2`, `f4`, `f8`.
    Float,
}

/// An element type as numpy's `descr` states it (`<f4`, `|u1`, `>i8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dtype {
    /// The `descr` string, for messages.
    pub descr: String,
    /// Number kind.
    pub kind: ElementKind,
    /// Bytes per element.
    pub size: usize,
    /// Byte order of multi-byte elements.
    pub big_endian: bool,
}

impl Dtype {
    /// Parses a numpy `descr`, accepting the types datasets convert to f32.
    pub fn parse(descr: &str) -> Result<Dtype, DatasetErrorKind> {
        let unsupported = || DatasetErrorKind::UnsupportedDtype {
            found: descr.to_string(),
        };
        let mut chars = descr.chars();
        let order = chars.next().ok_or_else(unsupported)?;
        let big_endian = match order {
            '<' | '|' => false,
            '>' => true,
            '=' => cfg!(target_endian = "big"),
            _ => return Err(unsupported()),
        };
        let kind = match chars.next() {
            Some('b') => ElementKind::Bool,
            Some('u') => ElementKind::Unsigned,
            Some('i') => ElementKind::Signed,
            Some('f') => ElementKind::Float,
            _ => return Err(unsupported()),
        };
        let size: usize = chars.as_str().parse().map_err(|_| unsupported())?;
        let supported = match kind {
            ElementKind::Bool => size == 1,
            ElementKind::Unsigned | ElementKind::Signed => matches!(size, 1 | 2 | 4 | 8),
            ElementKind::Float => matches!(size, 2 | 4 | 8),
        };
        if !supported {
            return Err(unsupported());
        }
        Ok(Dtype {
            descr: descr.to_string(),
            kind,
            size,
            big_endian,
        })
    }

    /// numpy's name of the type (`uint8`, `float64`, `bool`).
    pub fn numpy_name(&self) -> String {
        match self.kind {
            ElementKind::Bool => "bool".to_string(),
            ElementKind::Unsigned => format!("uint{}", self.size * 8),
            ElementKind::Signed => format!("int{}", self.size * 8),
            ElementKind::Float => format!("float{}", self.size * 8),
        }
    }

    /// The values the type can hold, as `[low, high]` (integer types; floats say so).
    pub fn value_range(&self) -> String {
        let bits = self.size * 8;
        match self.kind {
            ElementKind::Bool => "0 or 1".to_string(),
            ElementKind::Unsigned => format!("0 to {}", u128::MAX >> (128 - bits)),
            ElementKind::Signed => format!(
                "{} to {}",
                -(1i128 << (bits - 1)),
                (1i128 << (bits - 1)) - 1
            ),
            ElementKind::Float => "floating point".to_string(),
        }
    }

    /// Whether the elements are integers (bool included), so they can feed integer inputs exactly.
    pub fn is_integer(&self) -> bool {
        self.kind != ElementKind::Float
    }

    /// Converts raw elements to f32, appending to `out`. `bytes.len()` must be a multiple of `self.size`.
    pub fn decode_into(&self, bytes: &[u8], out: &mut Vec<f32>) {
        out.reserve(bytes.len() / self.size.max(1));
        let big_endian = self.big_endian;
        // One loop per type (the type is matched once, not per element): this is the hot path of
        // reading a dataset.
        macro_rules! convert {
            ($width:literal, $to_f32:expr) => {
                out.extend(bytes.chunks_exact($width).map(|chunk| {
                    let mut element = [0u8; $width];
                    element.copy_from_slice(chunk);
                    if big_endian {
                        element.reverse();
                    }
                    $to_f32(element)
                }))
            };
        }
        match (self.kind, self.size) {
            (ElementKind::Bool, _) => {
                out.extend(bytes.iter().map(|&b| f32::from(u8::from(b != 0))))
            }
            (ElementKind::Unsigned, 1) => out.extend(bytes.iter().map(|&b| f32::from(b))),
            (ElementKind::Signed, 1) => out.extend(bytes.iter().map(|&b| f32::from(b as i8))),
            (ElementKind::Unsigned, 2) => convert!(2, |e| f32::from(u16::from_le_bytes(e))),
            (ElementKind::Unsigned, 4) => convert!(4, |e| u32::from_le_bytes(e) as f32),
            (ElementKind::Unsigned, _) => convert!(8, |e| u64::from_le_bytes(e) as f32),
            (ElementKind::Signed, 2) => convert!(2, |e| f32::from(i16::from_le_bytes(e))),
            (ElementKind::Signed, 4) => convert!(4, |e| i32::from_le_bytes(e) as f32),
            (ElementKind::Signed, _) => convert!(8, |e| i64::from_le_bytes(e) as f32),
            (ElementKind::Float, 2) => convert!(2, |e| half::f16::from_le_bytes(e).to_f32()),
            (ElementKind::Float, 4) => convert!(4, f32::from_le_bytes),
            (ElementKind::Float, _) => convert!(8, |e| f64::from_le_bytes(e) as f32),
        }
    }
}

/// Reads the magic, version and header dict, leaving `reader` at the first data byte.
pub(crate) fn read_header(reader: &mut impl Read) -> Result<NpyHeader, DatasetErrorKind> {
    let bad = |what: &str| DatasetErrorKind::NpyHeader(what.to_string());
    let mut preamble = [0u8; 8];
    read_exact_or(
        reader,
        &mut preamble,
        "file is shorter than the .npy preamble",
    )?;
    if &preamble[..6] != MAGIC {
        return Err(bad("does not start with the .npy magic \\x93NUMPY"));
    }
    let major = preamble[6];
    let (header_len, length_field) = match major {
        1 => {
            let mut len = [0u8; 2];
            read_exact_or(reader, &mut len, "file ends inside the header length")?;
            (usize::from(u16::from_le_bytes(len)), 2)
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            read_exact_or(reader, &mut len, "file ends inside the header length")?;
            let len = usize::try_from(u32::from_le_bytes(len))
                .map_err(|_| bad("header length overflows"))?;
            (len, 4)
        }
        other => {
            return Err(DatasetErrorKind::NpyHeader(format!(
                "format version {other} is not 1, 2 or 3"
            )))
        }
    };
    if header_len > MAX_HEADER_LEN {
        return Err(DatasetErrorKind::NpyHeader(format!(
            "header length {header_len} exceeds {MAX_HEADER_LEN} bytes"
        )));
    }
    let mut text = vec![0u8; header_len];
    read_exact_or(reader, &mut text, "file ends inside the header")?;
    // Version 1 and 2 headers are latin-1, version 3 UTF-8; the keys and values we read are ASCII either way.
    let text = String::from_utf8_lossy(&text);
    let header = parse_dict(&text)?;
    let data_offset = (8 + length_field + header_len) as u64;
    header.into_header(data_offset)
}

fn read_exact_or(
    reader: &mut impl Read,
    buf: &mut [u8],
    what: &str,
) -> Result<(), DatasetErrorKind> {
    reader.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => DatasetErrorKind::NpyHeader(what.to_string()),
        _ => DatasetErrorKind::Io(e),
    })
}

/// A Python literal as found in `.npy` headers.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Int(u64),
    Seq(Vec<Literal>),
    Dict(Vec<(String, Literal)>),
}

struct HeaderFields {
    descr: Option<Literal>,
    fortran_order: Option<Literal>,
    shape: Option<Literal>,
}

impl HeaderFields {
    fn into_header(self, data_offset: u64) -> Result<NpyHeader, DatasetErrorKind> {
        let bad = |what: &str| DatasetErrorKind::NpyHeader(what.to_string());
        let descr = match self.descr {
            Some(Literal::Str(descr)) => descr,
            // Structured dtypes are lists of (name, type) fields.
            Some(other) => {
                return Err(DatasetErrorKind::UnsupportedDtype {
                    found: describe(&other),
                })
            }
            None => return Err(bad("header has no 'descr'")),
        };
        match self.fortran_order {
            Some(Literal::Bool(false)) => {}
            Some(Literal::Bool(true)) => return Err(DatasetErrorKind::FortranOrder),
            _ => return Err(bad("header has no boolean 'fortran_order'")),
        }
        let shape = match self.shape {
            Some(Literal::Seq(items)) => items
                .into_iter()
                .map(|item| match item {
                    Literal::Int(n) => {
                        usize::try_from(n).map_err(|_| bad("shape dimension overflows"))
                    }
                    _ => Err(bad("'shape' holds a non-integer")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(bad("header has no tuple 'shape'")),
        };
        let dtype = Dtype::parse(&descr)?;
        Ok(NpyHeader {
            dtype,
            shape,
            data_offset,
        })
    }
}

fn describe(literal: &Literal) -> String {
    match literal {
        Literal::Str(s) => s.clone(),
        Literal::Bool(b) => b.to_string(),
        Literal::Int(n) => n.to_string(),
        Literal::Seq(items) => format!(
            "[{}]",
            items.iter().map(describe).collect::<Vec<_>>().join(", ")
        ),
        Literal::Dict(_) => "{...}".to_string(),
    }
}

fn parse_dict(text: &str) -> Result<HeaderFields, DatasetErrorKind> {
    let mut parser = LiteralParser {
        chars: text.chars().collect(),
        pos: 0,
        depth: 0,
    };
    let literal = parser.value()?;
    parser.skip_space();
    if parser.pos != parser.chars.len() {
        return Err(DatasetErrorKind::NpyHeader(
            "trailing text after the header dict".to_string(),
        ));
    }
    let Literal::Dict(entries) = literal else {
        return Err(DatasetErrorKind::NpyHeader(
            "header is not a dict".to_string(),
        ));
    };
    let mut fields = HeaderFields {
        descr: None,
        fortran_order: None,
        shape: None,
    };
    for (key, value) in entries {
        match key.as_str() {
            "descr" => fields.descr = Some(value),
            "fortran_order" => fields.fortran_order = Some(value),
            "shape" => fields.shape = Some(value),
            _ => {}
        }
    }
    Ok(fields)
}

/// A recursive-descent parser for the Python literals numpy writes: dicts, tuples, lists, strings, ints, bools.
struct LiteralParser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

/// Nesting deeper than this is no numpy header; the cap keeps malformed input from exhausting the stack.
const MAX_DEPTH: usize = 32;

impl LiteralParser {
    fn error(&self, what: &str) -> DatasetErrorKind {
        DatasetErrorKind::NpyHeader(format!("{what} at header offset {}", self.pos))
    }

    fn skip_space(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.chars.get(self.pos).copied()
    }

    fn value(&mut self) -> Result<Literal, DatasetErrorKind> {
        match self.peek() {
            Some('{') => self.nested(|p| p.dict()),
            Some('(') => self.nested(|p| p.sequence(')')),
            Some('[') => self.nested(|p| p.sequence(']')),
            Some(quote @ ('\'' | '"')) => self.string(quote).map(Literal::Str),
            Some(c) if c.is_ascii_digit() => self.integer(),
            Some(c) if c.is_ascii_alphabetic() => self.word(),
            Some(_) => Err(self.error("unexpected character")),
            None => Err(self.error("header ends early")),
        }
    }

    fn nested(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<Literal, DatasetErrorKind>,
    ) -> Result<Literal, DatasetErrorKind> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("header nests too deeply"));
        }
        let value = parse(self);
        self.depth -= 1;
        value
    }

    fn dict(&mut self) -> Result<Literal, DatasetErrorKind> {
        self.pos += 1; // '{'
        let mut entries = Vec::new();
        loop {
            match self.peek() {
                Some('}') => {
                    self.pos += 1;
                    return Ok(Literal::Dict(entries));
                }
                Some(quote @ ('\'' | '"')) => {
                    let key = self.string(quote)?;
                    if self.peek() != Some(':') {
                        return Err(self.error("expected ':' after a dict key"));
                    }
                    self.pos += 1;
                    let value = self.value()?;
                    entries.push((key, value));
                    match self.peek() {
                        Some(',') => self.pos += 1,
                        Some('}') => {}
                        _ => return Err(self.error("expected ',' or '}' in the header dict")),
                    }
                }
                _ => return Err(self.error("expected a quoted dict key")),
            }
        }
    }

    fn sequence(&mut self, close: char) -> Result<Literal, DatasetErrorKind> {
        self.pos += 1; // '(' or '['
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(Literal::Seq(items));
            }
            items.push(self.value()?);
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => return Err(self.error("expected ',' or the end of a tuple/list")),
            }
        }
    }

    fn string(&mut self, quote: char) -> Result<String, DatasetErrorKind> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.chars.get(self.pos).copied() {
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    let escaped = self
                        .chars
                        .get(self.pos + 1)
                        .copied()
                        .ok_or_else(|| self.error("header ends in a string"))?;
                    out.push(escaped);
                    self.pos += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
                None => return Err(self.error("header ends in a string")),
            }
        }
    }

    fn integer(&mut self) -> Result<Literal, DatasetErrorKind> {
        let start = self.pos;
        while self.chars.get(self.pos).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        // Python 2 era writers append `L` to longs.
        let digits: String = self.chars[start..self.pos].iter().collect();
        if self.chars.get(self.pos) == Some(&'L') {
            self.pos += 1;
        }
        digits
            .parse()
            .map(Literal::Int)
            .map_err(|_| self.error("integer does not fit 64 bits"))
    }

    fn word(&mut self) -> Result<Literal, DatasetErrorKind> {
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        match word.as_str() {
            "True" => Ok(Literal::Bool(true)),
            "False" => Ok(Literal::Bool(false)),
            _ => Err(self.error(&format!("unexpected word `{word}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy_bytes(header: &str) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes
    }

    #[test]
    fn header_of_numpy_save_parses_to_dtype_and_shape() {
        let bytes =
            npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (100, 8, 8, 1), }    \n");
        let header = read_header(&mut bytes.as_slice()).unwrap();
        assert_eq!(header.shape, vec![100, 8, 8, 1]);
        assert_eq!(header.dtype.kind, ElementKind::Float);
        assert_eq!(header.dtype.size, 4);
        assert_eq!(header.data_offset, bytes.len() as u64);
    }

    #[test]
    fn one_dimensional_shape_tuple_with_trailing_comma_parses() {
        let bytes = npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (7,), }\n");
        assert_eq!(read_header(&mut bytes.as_slice()).unwrap().shape, vec![7]);
    }

    #[test]
    fn fortran_order_is_rejected() {
        let bytes = npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n");
        assert!(matches!(
            read_header(&mut bytes.as_slice()),
            Err(DatasetErrorKind::FortranOrder)
        ));
    }

    #[test]
    fn complex_and_structured_dtypes_are_named_in_the_error() {
        let bytes = npy_bytes("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }\n");
        match read_header(&mut bytes.as_slice()) {
            Err(DatasetErrorKind::UnsupportedDtype { found }) => assert_eq!(found, "<c8"),
            other => panic!("expected UnsupportedDtype, got {other:?}"),
        }
        let bytes =
            npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }\n");
        match read_header(&mut bytes.as_slice()) {
            Err(DatasetErrorKind::UnsupportedDtype { found }) => assert_eq!(found, "[[a, <f4]]"),
            other => panic!("expected UnsupportedDtype, got {other:?}"),
        }
    }

    #[test]
    fn malformed_headers_are_errors_not_panics() {
        for header in [
            "",
            "{",
            "{'descr'",
            "{'descr': '<f4'",
            "((((",
            "{'shape': (1,2,), 'x': [[[",
            "{1: 2}",
            "{'a': Nope}",
        ] {
            let bytes = npy_bytes(header);
            assert!(
                read_header(&mut bytes.as_slice()).is_err(),
                "{header:?} parsed"
            );
        }
        assert!(read_header(&mut b"NOTNPY00".as_slice()).is_err());
        let deep = format!("{{'descr': {}", "[".repeat(10_000));
        assert!(read_header(&mut npy_bytes(&deep).as_slice()).is_err());
    }

    #[test]
    fn every_supported_dtype_decodes_to_its_value() {
        let cases: Vec<(&str, Vec<u8>, f32)> = vec![
            ("<f4", 1.5f32.to_le_bytes().to_vec(), 1.5),
            (">f4", 1.5f32.to_be_bytes().to_vec(), 1.5),
            ("<f8", (-2.25f64).to_le_bytes().to_vec(), -2.25),
            ("<f2", half::f16::from_f32(0.5).to_le_bytes().to_vec(), 0.5),
            ("|u1", vec![200], 200.0),
            ("|i1", vec![0x80], -128.0),
            ("<i2", (-300i16).to_le_bytes().to_vec(), -300.0),
            (">i2", (-300i16).to_be_bytes().to_vec(), -300.0),
            ("<u2", 60000u16.to_le_bytes().to_vec(), 60000.0),
            ("<i4", (-70000i32).to_le_bytes().to_vec(), -70000.0),
            ("<u4", 70000u32.to_le_bytes().to_vec(), 70000.0),
            ("<i8", (-5i64).to_le_bytes().to_vec(), -5.0),
            ("<u8", 9u64.to_le_bytes().to_vec(), 9.0),
            ("|b1", vec![1], 1.0),
        ];
        for (descr, bytes, expected) in cases {
            let dtype = Dtype::parse(descr).unwrap();
            let mut out = Vec::new();
            dtype.decode_into(&bytes, &mut out);
            assert_eq!(out, vec![expected], "{descr}");
        }
    }
}
