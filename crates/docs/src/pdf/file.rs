//! The object layer of a PDF file: finds every object by scanning (which
//! also recovers files whose cross-reference table is damaged), unpacks
//! object streams, resolves references and decodes stream filters.

use super::lexer::{Dict, Lexer, Object, Stream, Token, is_delimiter, is_whitespace};
use std::cell::Cell;
use std::collections::HashMap;

/// Decoded bytes one stream may produce (a "zip bomb" stops here).
const MAX_STREAM_BYTES: usize = 64 << 20;
/// Decoded bytes a whole file may produce.
const MAX_TOTAL_BYTES: usize = 256 << 20;
/// How many references are followed in a chain before giving up.
const MAX_REF_CHAIN: usize = 32;

pub(crate) struct File {
    objects: HashMap<u32, Object>,
    pub(crate) trailer: Dict,
    decoded: Cell<usize>,
}

impl File {
    /// Scans `data` for `N G obj` definitions; later definitions win, as in
    /// incremental updates.
    pub(crate) fn load(data: &[u8]) -> File {
        let mut file = File {
            objects: HashMap::new(),
            trailer: Dict::default(),
            decoded: Cell::new(0),
        };
        let mut trailers: Vec<Dict> = Vec::new();
        let mut pos = 0;
        while let Some(found) = find(data, pos, b"obj") {
            pos = found + 3;
            if data
                .get(pos)
                .is_some_and(|&b| !is_whitespace(b) && !is_delimiter(b))
            {
                continue; // `objects`, `endobj`'s tail etc.
            }
            let Some(number) = object_number(data, found) else {
                continue;
            };
            let mut lexer = Lexer::new(data, pos);
            let Some(object) = lexer.object() else {
                continue;
            };
            let object = match object {
                Object::Dict(dict) => match stream_data(data, &mut lexer, &dict) {
                    Some(bytes) => Object::Stream(Stream { dict, data: bytes }),
                    None => Object::Dict(dict),
                },
                other => other,
            };
            pos = lexer.pos;
            if let Object::Stream(stream) = &object {
                match stream.dict.get(b"Type").and_then(Object::as_name) {
                    Some(b"ObjStm") => file.unpack_object_stream(stream),
                    Some(b"XRef") => trailers.push(stream.dict.clone()),
                    _ => {}
                }
            }
            file.objects.insert(number, object);
        }
        let mut pos = 0;
        while let Some(found) = find(data, pos, b"trailer") {
            pos = found + 7;
            if let Some(Object::Dict(dict)) = Lexer::new(data, pos).object() {
                trailers.push(dict);
            }
        }
        for dict in trailers {
            for (key, value) in dict.0 {
                if matches!(key.as_slice(), b"Root" | b"Info" | b"Encrypt") {
                    file.trailer.0.retain(|(k, _)| *k != key);
                    file.trailer.0.push((key, value));
                }
            }
        }
        file
    }

    fn unpack_object_stream(&mut self, stream: &Stream) {
        let Some(data) = self.decode(stream) else {
            return;
        };
        let count = stream.dict.get(b"N").and_then(Object::as_int).unwrap_or(0);
        let first = stream
            .dict
            .get(b"First")
            .and_then(Object::as_int)
            .unwrap_or(0);
        let (Ok(count), Ok(first)) = (usize::try_from(count), usize::try_from(first)) else {
            return;
        };
        let mut header = Lexer::new(&data, 0);
        for _ in 0..count.min(1_000_000) {
            let (
                Some(Token::Object(Object::Int(number))),
                Some(Token::Object(Object::Int(offset))),
            ) = (header.token(), header.token())
            else {
                break;
            };
            let (Ok(number), Ok(offset)) = (u32::try_from(number), usize::try_from(offset)) else {
                continue;
            };
            let Some(at) = first.checked_add(offset).filter(|&at| at < data.len()) else {
                continue;
            };
            if let Some(object) = Lexer::new(&data, at).object() {
                self.objects.insert(number, object);
            }
        }
    }

    /// Follows references (a bounded chain); unknown ones are `Null`.
    pub(crate) fn resolve<'a>(&'a self, mut object: &'a Object) -> &'a Object {
        for _ in 0..MAX_REF_CHAIN {
            match object {
                Object::Ref(number) => {
                    object = self.objects.get(number).unwrap_or(&Object::Null);
                }
                _ => return object,
            }
        }
        &Object::Null
    }

    /// `dict[key]`, resolved.
    pub(crate) fn get<'a>(&'a self, dict: &'a Dict, key: &[u8]) -> Option<&'a Object> {
        match self.resolve(dict.get(key)?) {
            Object::Null => None,
            object => Some(object),
        }
    }

    pub(crate) fn get_dict<'a>(&'a self, dict: &'a Dict, key: &[u8]) -> Option<&'a Dict> {
        self.get(dict, key)?.as_dict()
    }

    /// All objects, ordered by number (for fallbacks that must be deterministic).
    pub(crate) fn objects_by_number(&self) -> Vec<(u32, &Object)> {
        let mut all: Vec<_> = self.objects.iter().map(|(n, o)| (*n, o)).collect();
        all.sort_unstable_by_key(|(n, _)| *n);
        all
    }

    /// The decoded bytes of a stream, or `None` for a filter we do not read
    /// (images) or a budget overrun.
    pub(crate) fn decode(&self, stream: &Stream) -> Option<Vec<u8>> {
        let filters: Vec<&[u8]> = match stream.dict.get(b"Filter").map(|f| self.resolve(f)) {
            None | Some(Object::Null) => Vec::new(),
            Some(Object::Name(name)) => vec![name.as_slice()],
            Some(Object::Array(names)) => names
                .iter()
                .filter_map(|n| self.resolve(n).as_name())
                .collect(),
            Some(_) => return None,
        };
        let params: Vec<Option<&Dict>> =
            match stream.dict.get(b"DecodeParms").map(|p| self.resolve(p)) {
                Some(Object::Dict(d)) => vec![Some(d)],
                Some(Object::Array(items)) => {
                    items.iter().map(|p| self.resolve(p).as_dict()).collect()
                }
                _ => Vec::new(),
            };
        let mut data = stream.data.clone();
        for (i, filter) in filters.iter().enumerate() {
            let budget = MAX_STREAM_BYTES.min(MAX_TOTAL_BYTES.saturating_sub(self.decoded.get()));
            data = match *filter {
                b"FlateDecode" | b"Fl" => {
                    let inflated = inflate(&data, budget)?;
                    predict(inflated, params.get(i).copied().flatten())?
                }
                b"ASCIIHexDecode" | b"AHx" => ascii_hex(&data),
                b"ASCII85Decode" | b"A85" => ascii85(&data)?,
                _ => return None,
            };
            self.decoded
                .set(self.decoded.get().saturating_add(data.len()));
        }
        Some(data)
    }
}

/// Finds `needle` in `data` from `from`.
pub(crate) fn find(data: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut at = from;
    while at + needle.len() <= data.len() {
        let offset = data.get(at..)?.iter().position(|&b| b == first)?;
        at += offset;
        if data.get(at..at + needle.len()) == Some(needle) {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// For `obj` at `at`, the object number in `N G obj` before it.
fn object_number(data: &[u8], at: usize) -> Option<u32> {
    let mut i = at;
    let skip_ws = |i: &mut usize| {
        while *i > 0 && is_whitespace(data[*i - 1]) {
            *i -= 1;
        }
    };
    let digits = |i: &mut usize| -> Option<&[u8]> {
        let end = *i;
        while *i > 0 && data[*i - 1].is_ascii_digit() && end - *i < 10 {
            *i -= 1;
        }
        (end > *i).then(|| &data[*i..end])
    };
    skip_ws(&mut i);
    if i == at {
        return None;
    }
    digits(&mut i)?;
    let before_generation = i;
    skip_ws(&mut i);
    if i == before_generation {
        return None;
    }
    let number = digits(&mut i)?;
    if i > 0 && !is_whitespace(data[i - 1]) && !is_delimiter(data[i - 1]) {
        return None;
    }
    std::str::from_utf8(number).ok()?.parse().ok()
}

/// After a stream's dictionary: its raw bytes, when `stream` follows.
fn stream_data(data: &[u8], lexer: &mut Lexer<'_>, dict: &Dict) -> Option<Vec<u8>> {
    let save = lexer.pos;
    lexer.skip_whitespace();
    if data.get(lexer.pos..lexer.pos + 6) != Some(b"stream") {
        lexer.pos = save;
        return None;
    }
    let mut start = lexer.pos + 6;
    if data.get(start) == Some(&b'\r') {
        start += 1;
    }
    if data.get(start) == Some(&b'\n') {
        start += 1;
    }
    // Trust a direct /Length when `endstream` follows it; else search.
    let declared = dict
        .get(b"Length")
        .and_then(Object::as_int)
        .and_then(|l| usize::try_from(l).ok())
        .and_then(|l| start.checked_add(l))
        .filter(|&end| end <= data.len());
    let end = declared
        .filter(|&end| {
            let mut after = Lexer::new(data, end);
            after.skip_whitespace();
            data.get(after.pos..after.pos + 9) == Some(b"endstream")
        })
        .or_else(|| {
            let found = find(data, start, b"endstream")?;
            let mut end = found;
            if end > start && data[end - 1] == b'\n' {
                end -= 1;
            }
            if end > start && data[end - 1] == b'\r' {
                end -= 1;
            }
            Some(end)
        })
        .unwrap_or(data.len());
    let bytes = data.get(start..end)?.to_vec();
    lexer.pos = find(data, end, b"endstream").map_or(data.len(), |p| p + 9);
    Some(bytes)
}

/// zlib (or raw deflate), keeping what decoded before an error: damaged
/// streams are common and their first part is usually fine.
fn inflate(data: &[u8], limit: usize) -> Option<Vec<u8>> {
    use miniz_oxide::inflate::{decompress_to_vec_with_limit, decompress_to_vec_zlib_with_limit};
    match decompress_to_vec_zlib_with_limit(data, limit) {
        Ok(out) => Some(out),
        Err(e) if !e.output.is_empty() => Some(e.output),
        Err(_) => match decompress_to_vec_with_limit(data, limit) {
            Ok(out) => Some(out),
            Err(e) if !e.output.is_empty() => Some(e.output),
            Err(_) => None,
        },
    }
}

/// Undoes PNG predictors (`/Predictor` ≥ 10) of Flate-encoded streams.
fn predict(data: Vec<u8>, params: Option<&Dict>) -> Option<Vec<u8>> {
    let Some(params) = params else {
        return Some(data);
    };
    let int =
        |key: &[u8], default: i64| params.get(key).and_then(Object::as_int).unwrap_or(default);
    let predictor = int(b"Predictor", 1);
    if predictor < 10 {
        return Some(data);
    }
    let colors = usize::try_from(int(b"Colors", 1).clamp(1, 32)).ok()?;
    let bits = usize::try_from(int(b"BitsPerComponent", 8).clamp(1, 16)).ok()?;
    let columns = usize::try_from(int(b"Columns", 1).clamp(1, 1 << 20)).ok()?;
    let bpp = (colors * bits).div_ceil(8).max(1);
    let row_len = (colors * bits * columns).div_ceil(8);
    let mut out = Vec::with_capacity(data.len());
    let mut previous = vec![0u8; row_len];
    for row in data.chunks(row_len + 1) {
        let (&kind, row) = row.split_first()?;
        let mut current = row.to_vec();
        current.resize(row_len, 0);
        for i in 0..row_len {
            let left = if i >= bpp { current[i - bpp] } else { 0 };
            let up = previous[i];
            let up_left = if i >= bpp { previous[i - bpp] } else { 0 };
            current[i] = current[i].wrapping_add(match kind {
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => paeth(left, up, up_left),
                _ => 0,
            });
        }
        out.extend_from_slice(&current);
        previous = current;
    }
    Some(out)
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

fn ascii_hex(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2);
    let mut high: Option<u8> = None;
    for &b in data {
        if b == b'>' {
            break;
        }
        if let Some(v) = super::lexer::hex_value(b) {
            match high.take() {
                Some(h) => out.push(h * 16 + v),
                None => high = Some(v),
            }
        }
    }
    if let Some(h) = high {
        out.push(h * 16);
    }
    out
}

fn ascii85(data: &[u8]) -> Option<Vec<u8>> {
    let data = data.strip_prefix(b"<~").unwrap_or(data);
    let mut out = Vec::with_capacity(data.len() * 4 / 5);
    let mut group = [0u8; 5];
    let mut n = 0;
    for &b in data {
        match b {
            b'~' => break,
            b'z' if n == 0 => out.extend_from_slice(&[0; 4]),
            b'!'..=b'u' => {
                group[n] = b - b'!';
                n += 1;
                if n == 5 {
                    let value = group.iter().fold(0u64, |acc, &d| acc * 85 + u64::from(d));
                    out.extend_from_slice(&(value as u32).to_be_bytes());
                    n = 0;
                }
            }
            _ => {}
        }
    }
    if n > 1 {
        for slot in group.iter_mut().skip(n) {
            *slot = 84;
        }
        let value = group.iter().fold(0u64, |acc, &d| acc * 85 + u64::from(d));
        out.extend_from_slice(&(value as u32).to_be_bytes()[..n - 1]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_objects_without_a_cross_reference_table() {
        let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj\n<< /Length 5 >>\nstream\nhello\nendstream\nendobj\ntrailer << /Root 1 0 R >>";
        let file = File::load(pdf);
        let root = file.get(&file.trailer, b"Root").unwrap().as_dict().unwrap();
        let pages = file.get(root, b"Pages").unwrap();
        match pages {
            Object::Stream(s) => assert_eq!(s.data, b"hello"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decodes_ascii_filters() {
        assert_eq!(ascii_hex(b"48 65 6c6C 6f>"), b"Hello");
        assert_eq!(ascii85(b"<~87cURDZ~>").unwrap(), b"Hello");
    }

    #[test]
    fn undoes_png_up_prediction() {
        let params = Dict(vec![
            (b"Predictor".to_vec(), Object::Int(12)),
            (b"Columns".to_vec(), Object::Int(2)),
        ]);
        let out = predict(vec![2, 1, 2, 2, 1, 1], Some(&params)).unwrap();
        assert_eq!(out, [1, 2, 2, 3]);
    }

    #[test]
    fn stops_reference_cycles() {
        let file = File::load(b"1 0 obj 2 0 R endobj 2 0 obj 1 0 R endobj");
        assert_eq!(file.resolve(&Object::Ref(1)), &Object::Null);
    }
}
