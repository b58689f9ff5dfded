//! PDF objects and the tokenizer shared by the file parser and the content
//! stream interpreter. Every read is bounds-checked; nesting is limited.

/// A PDF object.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Object {
    Null,
    Bool(bool),
    Int(i64),
    Real(f64),
    Name(Vec<u8>),
    Str(Vec<u8>),
    Array(Vec<Object>),
    Dict(Dict),
    Ref(u32),
    Stream(Stream),
}

/// A dictionary; PDF dictionaries are small, so a vector is enough.
#[derive(Clone, Debug, PartialEq, Default)]
pub(crate) struct Dict(pub(crate) Vec<(Vec<u8>, Object)>);

impl Dict {
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Object> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// A stream: its dictionary and its still-encoded bytes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stream {
    pub(crate) dict: Dict,
    pub(crate) data: Vec<u8>,
}

impl Object {
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Object::Int(i) => Some(*i),
            Object::Real(r) if r.is_finite() => Some(*r as i64),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Object::Int(i) => Some(*i as f64),
            Object::Real(r) if r.is_finite() => Some(*r),
            _ => None,
        }
    }

    pub(crate) fn as_name(&self) -> Option<&[u8]> {
        match self {
            Object::Name(n) => Some(n),
            _ => None,
        }
    }

    pub(crate) fn as_dict(&self) -> Option<&Dict> {
        match self {
            Object::Dict(d) => Some(d),
            Object::Stream(s) => Some(&s.dict),
            _ => None,
        }
    }
}

/// What the tokenizer yields: an object, or a bare keyword (`obj`, `R`,
/// `stream`, a content-stream operator such as `Tj`).
#[derive(Debug, PartialEq)]
pub(crate) enum Token {
    Object(Object),
    Keyword(Vec<u8>),
}

const MAX_DEPTH: usize = 48;

pub(crate) fn is_whitespace(b: u8) -> bool {
    matches!(b, b'\0' | b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

pub(crate) fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn is_regular(b: u8) -> bool {
    !is_whitespace(b) && !is_delimiter(b)
}

/// A cursor over PDF bytes.
pub(crate) struct Lexer<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(data: &'a [u8], pos: usize) -> Self {
        Self { data, pos }
    }

    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    pub(crate) fn skip_whitespace(&mut self) {
        while let Some(b) = self.peek() {
            if is_whitespace(b) {
                self.pos += 1;
            } else if b == b'%' {
                while let Some(b) = self.peek() {
                    if b == b'\n' || b == b'\r' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// The next token, or `None` at the end or on bytes that are no token.
    pub(crate) fn token(&mut self) -> Option<Token> {
        self.token_at_depth(0)
    }

    fn token_at_depth(&mut self, depth: usize) -> Option<Token> {
        self.skip_whitespace();
        let b = self.peek()?;
        match b {
            b'/' => {
                self.pos += 1;
                Some(Token::Object(Object::Name(self.name())))
            }
            b'(' => {
                self.pos += 1;
                Some(Token::Object(Object::Str(self.literal_string())))
            }
            b'<' if self.data.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                self.dict(depth).map(|d| Token::Object(Object::Dict(d)))
            }
            b'<' => {
                self.pos += 1;
                Some(Token::Object(Object::Str(self.hex_string())))
            }
            b'[' => {
                self.pos += 1;
                self.array(depth).map(|a| Token::Object(Object::Array(a)))
            }
            b'+' | b'-' | b'.' | b'0'..=b'9' => self.number().map(Token::Object),
            b']' | b'>' | b')' | b'{' | b'}' => {
                // Stray delimiters: skip (and report as a keyword so callers advance).
                self.pos += 1;
                Some(Token::Keyword(vec![b]))
            }
            _ => {
                let start = self.pos;
                while self.peek().is_some_and(is_regular) {
                    self.pos += 1;
                }
                let word = &self.data[start..self.pos];
                Some(match word {
                    b"true" => Token::Object(Object::Bool(true)),
                    b"false" => Token::Object(Object::Bool(false)),
                    b"null" => Token::Object(Object::Null),
                    _ => Token::Keyword(word.to_vec()),
                })
            }
        }
    }

    /// A full object, resolving `N G R` into a reference (file syntax).
    pub(crate) fn object(&mut self) -> Option<Object> {
        self.object_at_depth(0)
    }

    fn object_at_depth(&mut self, depth: usize) -> Option<Object> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.token_at_depth(depth)? {
            Token::Object(Object::Int(num)) => {
                // `N G R`?
                let save = self.pos;
                if let Some(Token::Object(Object::Int(_))) = self.token_at_depth(depth)
                    && let Some(Token::Keyword(k)) = self.token_at_depth(depth)
                    && k == b"R"
                    && let Ok(num) = u32::try_from(num)
                {
                    return Some(Object::Ref(num));
                }
                self.pos = save;
                Some(Object::Int(num))
            }
            Token::Object(object) => Some(object),
            Token::Keyword(_) => None,
        }
    }

    fn array(&mut self, depth: usize) -> Option<Vec<Object>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut items = Vec::new();
        loop {
            self.skip_whitespace();
            match self.peek()? {
                b']' => {
                    self.pos += 1;
                    return Some(items);
                }
                _ => {
                    let before = self.pos;
                    match self.object_at_depth(depth + 1) {
                        Some(object) => items.push(object),
                        None if self.pos == before => self.pos += 1,
                        None => {}
                    }
                }
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Option<Dict> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut entries = Vec::new();
        loop {
            self.skip_whitespace();
            match self.peek()? {
                b'>' => {
                    self.pos += 1;
                    if self.peek() == Some(b'>') {
                        self.pos += 1;
                    }
                    return Some(Dict(entries));
                }
                b'/' => {
                    self.pos += 1;
                    let key = self.name();
                    self.skip_whitespace();
                    if matches!(self.peek(), Some(b'>')) {
                        entries.push((key, Object::Null));
                        continue;
                    }
                    let before = self.pos;
                    match self.object_at_depth(depth + 1) {
                        Some(value) => entries.push((key, value)),
                        None if self.pos == before => self.pos += 1,
                        None => {}
                    }
                }
                _ => {
                    // Junk inside a dictionary: skip one token.
                    let before = self.pos;
                    let _ = self.token_at_depth(depth + 1);
                    if self.pos == before {
                        self.pos += 1;
                    }
                }
            }
        }
    }

    fn name(&mut self) -> Vec<u8> {
        let mut name = Vec::new();
        while let Some(b) = self.peek() {
            if !is_regular(b) {
                break;
            }
            self.pos += 1;
            if b == b'#' {
                let hex = self.data.get(self.pos..self.pos + 2);
                if let Some(value) =
                    hex.and_then(|h| Some(hex_value(h[0])? * 16 + hex_value(h[1])?))
                {
                    name.push(value);
                    self.pos += 2;
                    continue;
                }
            }
            name.push(b);
        }
        name
    }

    fn literal_string(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut depth = 1usize;
        while let Some(b) = self.peek() {
            self.pos += 1;
            match b {
                b'(' => {
                    depth += 1;
                    out.push(b);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                    out.push(b);
                }
                b'\\' => {
                    let Some(e) = self.peek() else { break };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'\r' => {
                            if self.peek() == Some(b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        b'0'..=b'7' => {
                            let mut value = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        value = value * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push((value & 0xff) as u8);
                        }
                        other => out.push(other),
                    }
                }
                _ => out.push(b),
            }
        }
        out
    }

    fn hex_string(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        while let Some(b) = self.peek() {
            self.pos += 1;
            if b == b'>' {
                break;
            }
            if let Some(v) = hex_value(b) {
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

    fn number(&mut self) -> Option<Object> {
        let start = self.pos;
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        let mut dot = false;
        while let Some(b) = self.peek() {
            match b {
                b'0'..=b'9' => self.pos += 1,
                b'.' if !dot => {
                    dot = true;
                    self.pos += 1;
                }
                _ => break,
            }
        }
        // Tolerate junk such as `--5` or `1.2.3`: skip the rest of the word.
        let end = self.pos;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            self.pos += 1;
        }
        if self.pos == start {
            self.pos += 1;
            return Some(Object::Int(0));
        }
        let text = std::str::from_utf8(&self.data[start..end]).ok()?;
        if !dot && let Ok(i) = text.parse::<i64>() {
            return Some(Object::Int(i));
        }
        let value = match text {
            "" | "+" | "-" | "." | "+." | "-." => 0.0,
            _ => text.parse::<f64>().unwrap_or(0.0),
        };
        Some(Object::Real(value))
    }
}

pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Option<Object> {
        Lexer::new(src.as_bytes(), 0).object()
    }

    #[test]
    fn parses_the_object_syntax() {
        assert_eq!(
            parse("<< /Type /Page /Kids [1 0 R 2 0 R] /N -1.5 /S (a\\(b\\)\\101) /H <48 6>>>"),
            Some(Object::Dict(Dict(vec![
                (b"Type".to_vec(), Object::Name(b"Page".to_vec())),
                (
                    b"Kids".to_vec(),
                    Object::Array(vec![Object::Ref(1), Object::Ref(2)])
                ),
                (b"N".to_vec(), Object::Real(-1.5)),
                (b"S".to_vec(), Object::Str(b"a(b)A".to_vec())),
                (b"H".to_vec(), Object::Str(vec![0x48, 0x60])),
            ])))
        );
        assert_eq!(parse("/A#20B"), Some(Object::Name(b"A B".to_vec())));
        assert_eq!(parse("12 0 obj"), Some(Object::Int(12)));
    }

    #[test]
    fn survives_deep_nesting_and_truncation() {
        assert_eq!(parse(&"[".repeat(10_000)), None);
        assert_eq!(parse(&"<<".repeat(10_000)), None);
        assert_eq!(
            parse("(unterminated"),
            Some(Object::Str(b"unterminated".to_vec()))
        );
        assert_eq!(parse("<< /A"), None);
    }
}
