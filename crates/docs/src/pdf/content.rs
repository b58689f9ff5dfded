//! Runs a page's content stream far enough to recover its text in reading
//! order: text operators, the text and transformation matrices, fonts, and
//! form XObjects. Line breaks come from vertical moves, spaces from
//! horizontal gaps, paragraphs from larger vertical gaps.

use super::file::File;
use super::font::Font;
use super::lexer::{Dict, Lexer, Object, Token};
use std::collections::HashMap;
use std::rc::Rc;

type Matrix = [f64; 6];

const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
const MAX_FORM_DEPTH: usize = 8;
const MAX_SAVED_STATES: usize = 256;
const MAX_OPERANDS: usize = 4096;

fn multiply(m: &Matrix, n: &Matrix) -> Matrix {
    [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    ]
}

fn translate(tx: f64, ty: f64) -> Matrix {
    [1.0, 0.0, 0.0, 1.0, tx, ty]
}

#[derive(Clone)]
struct GraphicsState {
    ctm: Matrix,
    font: Option<Rc<Font>>,
    size: f64,
    leading: f64,
    char_spacing: f64,
    word_spacing: f64,
    scale: f64,
}

/// Extracts text from pages; fonts are cached across pages.
pub(crate) struct Extractor<'f> {
    file: &'f File,
    fonts: HashMap<u32, Rc<Font>>,
    fallback: Rc<Font>,
}

/// The text being written for one page.
struct Page {
    out: String,
    /// Where the last text ended (user space) and its size.
    last: Option<(f64, f64, f64)>,
}

impl<'f> Extractor<'f> {
    pub(crate) fn new(file: &'f File) -> Self {
        Self {
            file,
            fonts: HashMap::new(),
            fallback: Rc::new(Font::fallback()),
        }
    }

    /// The text of a page given its content bytes and resources.
    pub(crate) fn page_text(&mut self, content: &[u8], resources: Option<&Dict>) -> String {
        let mut page = Page {
            out: String::new(),
            last: None,
        };
        let state = GraphicsState {
            ctm: IDENTITY,
            font: None,
            size: 0.0,
            leading: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            scale: 1.0,
        };
        self.run(content, resources, state, &mut page, 0);
        tidy(&page.out)
    }

    fn run(
        &mut self,
        content: &[u8],
        resources: Option<&Dict>,
        mut gs: GraphicsState,
        page: &mut Page,
        depth: usize,
    ) {
        let mut saved: Vec<GraphicsState> = Vec::new();
        let mut tm = IDENTITY;
        let mut tlm = IDENTITY;
        let mut operands: Vec<Object> = Vec::new();
        let mut lexer = Lexer::new(content, 0);
        loop {
            let before = lexer.pos;
            let Some(token) = lexer.token() else {
                if lexer.pos >= content.len() {
                    break;
                }
                lexer.pos = before.max(lexer.pos) + 1;
                operands.clear();
                continue;
            };
            let op = match token {
                Token::Object(object) => {
                    if operands.len() < MAX_OPERANDS {
                        operands.push(object);
                    }
                    continue;
                }
                Token::Keyword(op) => op,
            };
            let num = |i: usize| operands.get(i).and_then(Object::as_f64).unwrap_or(0.0);
            match op.as_slice() {
                b"q" if saved.len() < MAX_SAVED_STATES => {
                    saved.push(gs.clone());
                }
                b"Q" => {
                    if let Some(previous) = saved.pop() {
                        gs = previous;
                    }
                }
                b"cm" if operands.len() >= 6 => {
                    let m = [num(0), num(1), num(2), num(3), num(4), num(5)];
                    gs.ctm = multiply(&m, &gs.ctm);
                }
                b"BT" => {
                    tm = IDENTITY;
                    tlm = IDENTITY;
                }
                b"Tf" => {
                    gs.size = operands.get(1).and_then(Object::as_f64).unwrap_or(gs.size);
                    gs.font = operands
                        .first()
                        .and_then(Object::as_name)
                        .and_then(|name| self.font(resources, name));
                }
                b"TL" => gs.leading = num(0),
                b"Tc" => gs.char_spacing = num(0),
                b"Tw" => gs.word_spacing = num(0),
                b"Tz" => gs.scale = num(0) / 100.0,
                b"Td" => {
                    tlm = multiply(&translate(num(0), num(1)), &tlm);
                    tm = tlm;
                }
                b"TD" => {
                    gs.leading = -num(1);
                    tlm = multiply(&translate(num(0), num(1)), &tlm);
                    tm = tlm;
                }
                b"Tm" if operands.len() >= 6 => {
                    tlm = [num(0), num(1), num(2), num(3), num(4), num(5)];
                    tm = tlm;
                }
                b"T*" => {
                    tlm = multiply(&translate(0.0, -gs.leading), &tlm);
                    tm = tlm;
                }
                b"Tj" | b"'" | b"\"" => {
                    if op != b"Tj" {
                        if op == b"\"" {
                            gs.word_spacing = num(0);
                            gs.char_spacing = num(1);
                        }
                        tlm = multiply(&translate(0.0, -gs.leading), &tlm);
                        tm = tlm;
                    }
                    if let Some(Object::Str(bytes)) = operands.last() {
                        self.show(bytes, &gs, &mut tm, page);
                    }
                }
                b"TJ" => {
                    if let Some(Object::Array(items)) = operands.last() {
                        for item in items {
                            match item {
                                Object::Str(bytes) => self.show(bytes, &gs, &mut tm, page),
                                other => {
                                    let adjust = other.as_f64().unwrap_or(0.0);
                                    let tx = -adjust / 1000.0 * gs.size * gs.scale;
                                    tm = multiply(&translate(tx, 0.0), &tm);
                                }
                            }
                        }
                    }
                }
                b"Do" if depth < MAX_FORM_DEPTH => {
                    if let Some(name) = operands.first().and_then(Object::as_name) {
                        self.form(resources, name, &gs, page, depth);
                    }
                }
                b"BI" => skip_inline_image(&mut lexer),
                _ => {}
            }
            operands.clear();
        }
    }

    fn form(
        &mut self,
        resources: Option<&Dict>,
        name: &[u8],
        gs: &GraphicsState,
        page: &mut Page,
        depth: usize,
    ) {
        let file = self.file;
        let Some(Object::Stream(stream)) = resources
            .and_then(|r| file.get_dict(r, b"XObject"))
            .and_then(|x| file.get(x, name))
        else {
            return;
        };
        if stream.dict.get(b"Subtype").and_then(Object::as_name) != Some(b"Form") {
            return;
        }
        let Some(content) = file.decode(stream) else {
            return;
        };
        let mut inner = gs.clone();
        if let Some(Object::Array(m)) = file.get(&stream.dict, b"Matrix") {
            let v: Vec<f64> = m.iter().filter_map(|o| file.resolve(o).as_f64()).collect();
            if let [a, b, c, d, e, f] = v.as_slice() {
                inner.ctm = multiply(&[*a, *b, *c, *d, *e, *f], &gs.ctm);
            }
        }
        let form_resources = file.get_dict(&stream.dict, b"Resources").or(resources);
        self.run(&content, form_resources, inner, page, depth + 1);
    }

    fn font(&mut self, resources: Option<&Dict>, name: &[u8]) -> Option<Rc<Font>> {
        let file = self.file;
        let fonts = file.get_dict(resources?, b"Font")?;
        let entry = fonts.get(name)?;
        if let Object::Ref(number) = entry {
            if let Some(font) = self.fonts.get(number) {
                return Some(Rc::clone(font));
            }
            let font = Rc::new(Font::load(file, file.resolve(entry).as_dict()?));
            self.fonts.insert(*number, Rc::clone(&font));
            return Some(font);
        }
        Some(Rc::new(Font::load(file, file.resolve(entry).as_dict()?)))
    }

    fn show(&mut self, bytes: &[u8], gs: &GraphicsState, tm: &mut Matrix, page: &mut Page) {
        let font = gs.font.clone().unwrap_or_else(|| Rc::clone(&self.fallback));
        let m = multiply(tm, &gs.ctm);
        let size = (gs.size * m[2].hypot(m[3])).abs().max(0.1);
        let (x, y) = (m[4], m[5]);
        if let Some((last_x, last_y, last_size)) = page.last {
            let line = last_size.max(size);
            let dy = last_y - y;
            if dy.abs() > line * 0.5 {
                let paragraph = dy > line * 1.8 || dy < -line * 1.5;
                let kept = page.out.trim_end_matches(' ').len();
                page.out.truncate(kept);
                page.out.push_str(if paragraph { "\n\n" } else { "\n" });
            } else if (x - last_x).abs() > line * 0.2 && !page.out.ends_with([' ', '\n']) {
                page.out.push(' ');
            }
        }
        for (code, len) in font.codes(bytes) {
            font.push_text(code, len, &mut page.out);
            let mut advance = font.width(code) / 1000.0 * gs.size + gs.char_spacing;
            if len == 1 && code == 32 {
                advance += gs.word_spacing;
            }
            *tm = multiply(&translate(advance * gs.scale, 0.0), tm);
        }
        let end = multiply(tm, &gs.ctm);
        page.last = Some((end[4], end[5], size));
    }
}

/// Skips an inline image: `BI <dict> ID <bytes> EI`.
fn skip_inline_image(lexer: &mut Lexer<'_>) {
    while let Some(token) = lexer.token() {
        if token == Token::Keyword(b"ID".to_vec()) {
            break;
        }
    }
    let data = lexer.data;
    let mut i = lexer.pos + 1;
    while i + 2 <= data.len() {
        if &data[i..i + 2] == b"EI"
            && data
                .get(i.wrapping_sub(1))
                .is_some_and(|&b| super::lexer::is_whitespace(b))
            && data
                .get(i + 2)
                .is_none_or(|&b| super::lexer::is_whitespace(b))
        {
            lexer.pos = i + 2;
            return;
        }
        i += 1;
    }
    lexer.pos = data.len();
}

/// Collapses runs of spaces, trims lines, keeps at most one blank line.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_lines = 0;
    for line in text.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank_lines += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_lines > 0 { "\n\n" } else { "\n" });
        }
        blank_lines = 0;
        out.push_str(&line);
    }
    out
}
