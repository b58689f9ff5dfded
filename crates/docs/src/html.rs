//! HTML: the page's main text, structured by its headings, via the `html5gum`
//! WHATWG tokenizer.
//!
//! A tokenizer is enough for text extraction: entities, raw-text elements
//! (`<script>`, `<style>`) and malformed markup are handled by it, and the
//! few tree rules that matter for text (which elements end a block, which are
//! dropped) are applied here. When the page has a `<main>` (or
//! `role="main"`), only its content is kept; otherwise, when it has
//! `<article>`s, only theirs; otherwise the whole body. `<script>`, `<style>`,
//! `<noscript>`, `<nav>`, `<footer>`, `<template>`, `<svg>`, `<iframe>`,
//! `<button>`, `<select>` and the `<head>` (except `<title>`) are dropped.

use crate::ParsedDocument;
use crate::builder::Builder;
use crate::text::decode;
use html5gum::{DefaultEmitter, Token, Tokenizer};
use ragspin_core::Result;

const DROPPED: &[&[u8]] = &[
    b"script",
    b"style",
    b"noscript",
    b"nav",
    b"footer",
    b"template",
    b"svg",
    b"math",
    b"iframe",
    b"object",
    b"button",
    b"select",
    b"head",
];

/// Elements that end the current block of text.
const BLOCKS: &[&[u8]] = &[
    b"p",
    b"div",
    b"section",
    b"article",
    b"main",
    b"header",
    b"aside",
    b"blockquote",
    b"pre",
    b"ul",
    b"ol",
    b"dl",
    b"dt",
    b"dd",
    b"li",
    b"table",
    b"caption",
    b"thead",
    b"tbody",
    b"tfoot",
    b"tr",
    b"figure",
    b"figcaption",
    b"hr",
    b"address",
    b"details",
    b"summary",
    b"form",
    b"fieldset",
    b"legend",
    b"body",
    b"html",
];

pub(crate) fn parse(bytes: &[u8]) -> Result<ParsedDocument> {
    let source = decode(bytes)?;
    let mut emitter = DefaultEmitter::default();
    emitter.naively_switch_states(true);
    let tokens: Vec<Token> = Tokenizer::new_with_emitter(source, emitter)
        .flatten()
        .filter(|t| !matches!(t, Token::Error(_) | Token::Comment(_) | Token::Doctype(_)))
        .collect();
    let scope = Scope::of(&tokens);
    let mut state = State {
        scope,
        ..State::default()
    };
    for token in &tokens {
        state.token(token);
    }
    state.flush();
    let mut doc = state.doc;
    doc.title = state.title.or(state.first_h1);
    doc.finish()
}

/// Which part of the page is kept.
#[derive(Default, Clone, Copy, PartialEq)]
enum Scope {
    /// The whole body.
    #[default]
    All,
    /// Only inside the first `<main>` (or `role="main"`).
    Main,
    /// Only inside `<article>`s.
    Articles,
}

impl Scope {
    fn of(tokens: &[Token]) -> Scope {
        let mut articles = false;
        for token in tokens {
            if let Token::StartTag(tag) = token {
                if is_main(tag) {
                    return Scope::Main;
                }
                articles |= tag.name.as_slice() == b"article";
            }
        }
        if articles {
            Scope::Articles
        } else {
            Scope::All
        }
    }
}

fn is_main(tag: &html5gum::StartTag<()>) -> bool {
    tag.name.as_slice() == b"main"
        || tag
            .attributes
            .get(b"role".as_slice())
            .is_some_and(|role| role.value.eq_ignore_ascii_case(b"main"))
}

#[derive(Default)]
struct State {
    doc: Builder,
    scope: Scope,
    /// Open elements of the kept scope (`main`/`article` nesting); `None` when outside.
    in_scope: Option<(Vec<u8>, usize)>,
    main_done: bool,
    /// Open dropped elements, innermost last.
    dropped: Vec<Vec<u8>>,
    headings: Vec<(u8, String)>,
    path: Vec<String>,
    heading: Option<(u8, String)>,
    buf: String,
    /// Open `<pre>` elements: whitespace is kept inside.
    pre: usize,
    /// Open lists and tables: blocks inside them become lines, not sections.
    containers: usize,
    /// Next number of each open list (`None` for `<ul>`).
    lists: Vec<Option<u64>>,
    row_cells: usize,
    in_title: bool,
    title: Option<String>,
    first_h1: Option<String>,
}

impl State {
    fn token(&mut self, token: &Token) {
        match token {
            Token::StartTag(tag) => self.start(tag),
            Token::EndTag(tag) => self.end(&tag.name),
            Token::String(text) => self.text(&String::from_utf8_lossy(&text.value)),
            _ => {}
        }
    }

    fn kept(&self) -> bool {
        self.dropped.is_empty() && (self.scope == Scope::All || self.in_scope.is_some())
    }

    fn start(&mut self, tag: &html5gum::StartTag<()>) {
        let name = tag.name.as_slice();
        if name == b"title" && self.title.is_none() {
            self.in_title = true;
            self.title = Some(String::new());
            return;
        }
        // Entering or nesting the kept scope.
        match (&mut self.in_scope, self.scope) {
            (Some((scope_name, depth)), _) if scope_name.as_slice() == name => *depth += 1,
            (None, Scope::Main) if !self.main_done && is_main(tag) => {
                self.in_scope = Some((name.to_vec(), 1));
            }
            (None, Scope::Articles) if name == b"article" => {
                self.in_scope = Some((name.to_vec(), 1));
            }
            _ => {}
        }
        if DROPPED.contains(&name) && !tag.self_closing {
            self.dropped.push(name.to_vec());
            return;
        }
        if !self.kept() {
            return;
        }
        if let Some(level) = heading_level(name) {
            self.flush();
            self.heading = Some((level, String::new()));
            return;
        }
        match name {
            b"br" => self.newline(),
            b"ul" | b"ol" => {
                self.block_break();
                self.containers += 1;
                let start = tag
                    .attributes
                    .get(b"start".as_slice())
                    .and_then(|v| std::str::from_utf8(&v.value).ok()?.trim().parse().ok())
                    .unwrap_or(1);
                self.lists.push((name == b"ol").then_some(start));
            }
            b"li" => {
                self.newline();
                crate::builder::push_list_marker(&mut self.buf, &mut self.lists);
            }
            b"table" => {
                self.block_break();
                self.containers += 1;
            }
            b"tr" => {
                self.newline();
                self.row_cells = 0;
            }
            b"td" | b"th" => {
                if self.row_cells > 0 {
                    self.buf.push_str(" | ");
                }
                self.row_cells += 1;
            }
            b"pre" => {
                self.block_break();
                self.pre += 1;
            }
            b"img" => {
                if let Some(alt) = tag.attributes.get(b"alt".as_slice()) {
                    self.text(&String::from_utf8_lossy(&alt.value));
                }
            }
            _ if BLOCKS.contains(&name) => self.block_break(),
            _ => {}
        }
    }

    fn end(&mut self, name: &[u8]) {
        if name == b"title" && self.in_title {
            self.in_title = false;
            return;
        }
        if let Some(pos) = self
            .dropped
            .iter()
            .rposition(|open| open.as_slice() == name)
        {
            self.dropped.truncate(pos);
            return;
        }
        let kept = self.kept();
        if let Some((scope_name, depth)) = &mut self.in_scope
            && scope_name.as_slice() == name
        {
            *depth -= 1;
            if *depth == 0 {
                self.flush();
                self.in_scope = None;
                self.main_done |= self.scope == Scope::Main;
                return;
            }
        }
        if !kept {
            return;
        }
        if let Some(level) = heading_level(name) {
            if let Some((open, text)) = self.heading.take() {
                self.close_heading(open.min(level), &text);
            }
            return;
        }
        match name {
            b"ul" | b"ol" => {
                self.lists.pop();
                self.containers = self.containers.saturating_sub(1);
                self.block_break();
            }
            b"table" => {
                self.containers = self.containers.saturating_sub(1);
                self.block_break();
            }
            b"pre" => {
                self.pre = self.pre.saturating_sub(1);
                self.block_break();
            }
            b"li" | b"tr" => self.newline(),
            _ if BLOCKS.contains(&name) => self.block_break(),
            _ => {}
        }
    }

    fn close_heading(&mut self, level: u8, text: &str) {
        let text = collapse(text);
        if text.is_empty() {
            return;
        }
        while self.headings.last().is_some_and(|(l, _)| *l >= level) {
            self.headings.pop();
        }
        self.headings.push((level, text.clone()));
        self.path = self.headings.iter().map(|(_, t)| t.clone()).collect();
        if level == 1 && self.first_h1.is_none() {
            self.first_h1 = Some(text.clone());
        }
        self.doc.heading(&text);
    }

    fn text(&mut self, text: &str) {
        if self.in_title {
            if let Some(title) = &mut self.title {
                title.push_str(text);
            }
            return;
        }
        if !self.kept() {
            return;
        }
        if let Some((_, heading)) = &mut self.heading {
            heading.push_str(text);
            return;
        }
        if self.pre > 0 {
            self.buf.push_str(text);
            return;
        }
        for (i, word) in text.split(|c: char| c.is_whitespace()).enumerate() {
            let at_line_start = self.buf.is_empty() || self.buf.ends_with(['\n', ' ']);
            if i > 0 && !at_line_start {
                self.buf.push(' ');
            }
            self.buf.push_str(word);
        }
    }

    fn newline(&mut self) {
        if let Some((_, heading)) = &mut self.heading {
            heading.push(' ');
            return;
        }
        if ends_with_marker(&self.buf) {
            return; // `<li><p>`: the paragraph starts on the marker's line.
        }
        let kept = self.buf.trim_end_matches(' ').len();
        self.buf.truncate(kept);
        if !self.buf.is_empty() && !self.buf.ends_with('\n') {
            self.buf.push('\n');
        }
    }

    /// Ends the current block: a section, or a line inside a list or table.
    fn block_break(&mut self) {
        if self.containers > 0 && self.heading.is_none() {
            self.newline();
        } else {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if let Some((level, text)) = self.heading.take() {
            self.close_heading(level, &text);
        }
        // The buffer keeps its capacity for the next block.
        self.doc.block(&self.buf, &self.path);
        self.buf.clear();
        self.row_cells = 0;
    }
}

fn heading_level(name: &[u8]) -> Option<u8> {
    match name {
        [b'h', level @ b'1'..=b'6'] => Some(level - b'0'),
        _ => None,
    }
}

/// Whether the last line is only a list marker (`- `, `  3. `).
fn ends_with_marker(buf: &str) -> bool {
    let line = buf.rsplit('\n').next().unwrap_or_default().trim_start();
    line == "- "
        || line
            .strip_suffix(". ")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(html: &str) -> Vec<(Vec<String>, String)> {
        parse(html.as_bytes())
            .unwrap()
            .sections
            .into_iter()
            .map(|s| (s.heading_path, s.text))
            .collect()
    }

    fn owned(want: &[(&[&str], &str)]) -> Vec<(Vec<String>, String)> {
        want.iter()
            .map(|(p, t)| (p.iter().map(|s| s.to_string()).collect(), t.to_string()))
            .collect()
    }

    #[test]
    fn keeps_headings_as_paths_and_paragraphs_as_sections() {
        let got = sections(
            "<h1>Guide</h1><p>Intro   text\n over lines.</p><h2>Install</h2><p>Run &amp; enjoy.</p><h3>Linux</h3><div>Apt<br>get</div><h2>Use</h2><p>Go.</p>",
        );
        assert_eq!(
            got,
            owned(&[
                (&["Guide"], "Intro text over lines."),
                (&["Guide", "Install"], "Run & enjoy."),
                (&["Guide", "Install", "Linux"], "Apt\nget"),
                (&["Guide", "Use"], "Go."),
            ])
        );
    }

    #[test]
    fn drops_scripts_styles_navigation_and_footers() {
        let got = sections(
            "<html><head><title>T</title><style>p{}</style></head><body><nav><a>Home</a></nav><script>var x = '</p>';</script><noscript>Enable JS</noscript><p>Body</p><footer>(c) 2024</footer></body></html>",
        );
        assert_eq!(got, owned(&[(&[], "Body")]));
    }

    #[test]
    fn prefers_main_then_articles_when_present() {
        let got = sections("<p>Chrome</p><main><h1>A</h1><p>Kept</p></main><p>More chrome</p>");
        assert_eq!(got, owned(&[(&["A"], "Kept")]));
        let got = sections(
            "<div>Sidebar</div><article><p>One</p></article><div>Ad</div><article><p>Two</p></article>",
        );
        assert_eq!(got, owned(&[(&[], "One"), (&[], "Two")]));
        let got = sections("<div>x</div><div role=\"main\"><div>In</div></div><div>out</div>");
        assert_eq!(got, owned(&[(&[], "In")]));
    }

    #[test]
    fn takes_the_title_element_or_else_the_first_h1() {
        let doc = parse(b"<title> My &amp; Page </title><h1>H</h1><p>x</p>").unwrap();
        assert_eq!(doc.title.as_deref(), Some("My & Page"));
        let doc = parse(b"<h2>Sub</h2><h1>Main</h1><p>x</p>").unwrap();
        assert_eq!(doc.title.as_deref(), Some("Main"));
    }

    #[test]
    fn renders_lists_tables_and_preformatted_text() {
        let got = sections(
            "<ul><li>One</li><li><p>Two</p></li></ul><ol start=3><li>Three</li></ol><table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table><pre>  x = 1\n  y = 2</pre>",
        );
        assert_eq!(
            got,
            owned(&[
                (&[], "- One\n- Two"),
                (&[], "3. Three"),
                (&[], "k | v\na | 1"),
                (&[], "x = 1\n  y = 2"),
            ])
        );
    }

    #[test]
    fn survives_unclosed_and_misnested_markup() {
        let got = sections("<p>a<b>b<i>c</b>d</i><div>e<p>f");
        assert_eq!(got, owned(&[(&[], "abcd"), (&[], "e"), (&[], "f")]));
    }
}
