//! Markdown: heading-aware, via `pulldown-cmark`.
//!
//! Every top-level block (paragraph, list, code block, table, block quote)
//! becomes one section under the current heading path. Lists keep their
//! markers (`- `, `1. `), tables become rows of `a | b`, code blocks keep their
//! text verbatim, links and images keep their text, raw HTML and front matter
//! are dropped (front matter's `title:` becomes the title).

use crate::ParsedDocument;
use crate::builder::Builder;
use crate::text::decode;
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use ragspin_core::Result;

pub(crate) fn parse(bytes: &[u8]) -> Result<ParsedDocument> {
    let source = decode(bytes)?;
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_HEADING_ATTRIBUTES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS;
    let mut state = State {
        doc: Builder::with_capacity(source.len()),
        ..State::default()
    };
    for event in Parser::new_ext(source, options) {
        state.event(event);
    }
    state.flush();
    let mut doc = state.doc;
    doc.title = (state.front_matter_title)
        .or(state.first_h1)
        .or(state.first_heading);
    doc.finish()
}

#[derive(Default)]
struct State {
    doc: Builder,
    /// `(level, text)` of the open headings, outermost first.
    headings: Vec<(HeadingLevel, String)>,
    path: Vec<String>,
    /// Text of the current top-level block.
    buf: String,
    /// Open block-level elements; the block is flushed when this returns to 0.
    depth: usize,
    /// Inside a heading at top level: its text.
    heading: Option<String>,
    /// Open lists: the next number of ordered ones.
    lists: Vec<Option<u64>>,
    in_metadata: bool,
    in_code: bool,
    html_block: usize,
    row_cells: usize,
    front_matter_title: Option<String>,
    first_h1: Option<String>,
    first_heading: Option<String>,
}

impl State {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(text) if self.in_metadata => {
                if self.front_matter_title.is_none() {
                    self.front_matter_title = front_matter_title(&text);
                }
            }
            Event::Text(text)
            | Event::Code(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => {
                if self.html_block == 0 {
                    self.push(&text);
                }
            }
            Event::SoftBreak => self.push(" "),
            Event::HardBreak => self.newline(),
            Event::TaskListMarker(done) => self.push(if done { "[x] " } else { "[ ] " }),
            Event::Rule => self.flush(),
            Event::Html(_) | Event::InlineHtml(_) | Event::FootnoteReference(_) => {}
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Heading { .. } if self.depth == 0 => {
                self.flush();
                self.heading = Some(String::new());
                return;
            }
            Tag::MetadataBlock(_) => {
                self.in_metadata = true;
                return;
            }
            Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Superscript
            | Tag::Subscript
            | Tag::Link { .. }
            | Tag::Image { .. } => return,
            _ => {}
        }
        // A block-level element.
        if self.depth > 0 {
            match &tag {
                Tag::Item => {
                    self.newline();
                    crate::builder::push_list_marker(&mut self.buf, &mut self.lists);
                }
                Tag::TableCell => {
                    if self.row_cells > 0 {
                        self.buf.push_str(" | ");
                    }
                    self.row_cells += 1;
                }
                Tag::TableHead | Tag::TableRow => {
                    self.newline();
                    self.row_cells = 0;
                }
                Tag::Paragraph if self.buf.ends_with(". ") || self.buf.ends_with("- ") => {}
                _ => self.newline(),
            }
        }
        match tag {
            Tag::List(start) => self.lists.push(start),
            Tag::CodeBlock(_) => self.in_code = true,
            Tag::HtmlBlock => self.html_block += 1,
            _ => {}
        }
        self.depth += 1;
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(level) if self.depth == 0 => {
                let text = self.heading.take().unwrap_or_default();
                let text = text.trim().to_owned();
                if text.is_empty() {
                    return;
                }
                while self.headings.last().is_some_and(|(l, _)| *l >= level) {
                    self.headings.pop();
                }
                self.headings.push((level, text.clone()));
                self.path = self.headings.iter().map(|(_, t)| t.clone()).collect();
                if level == HeadingLevel::H1 && self.first_h1.is_none() {
                    self.first_h1 = Some(text.clone());
                }
                if self.first_heading.is_none() {
                    self.first_heading = Some(text.clone());
                }
                self.doc.heading(&text);
                return;
            }
            TagEnd::MetadataBlock(_) => {
                self.in_metadata = false;
                return;
            }
            TagEnd::Emphasis
            | TagEnd::Strong
            | TagEnd::Strikethrough
            | TagEnd::Superscript
            | TagEnd::Subscript
            | TagEnd::Link
            | TagEnd::Image => return,
            TagEnd::List(_) => {
                self.lists.pop();
            }
            TagEnd::CodeBlock => self.in_code = false,
            TagEnd::HtmlBlock => self.html_block = self.html_block.saturating_sub(1),
            _ => {}
        }
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            self.flush();
        }
    }

    fn push(&mut self, text: &str) {
        match &mut self.heading {
            Some(heading) => heading.push_str(text),
            None => self.buf.push_str(text),
        }
    }

    fn newline(&mut self) {
        if self.heading.is_some() {
            self.push(" ");
        } else if !self.buf.is_empty() && !self.buf.ends_with('\n') {
            self.buf.push('\n');
        }
    }

    fn flush(&mut self) {
        if self.in_code {
            // Code keeps its text verbatim: only the final newline goes.
            let trimmed = self.buf.trim_end_matches('\n').len();
            self.buf.truncate(trimmed);
        }
        // The buffer keeps its capacity for the next block.
        self.doc.block(&self.buf, &self.path);
        self.buf.clear();
        self.row_cells = 0;
    }
}

fn front_matter_title(front_matter: &str) -> Option<String> {
    front_matter.lines().find_map(|line| {
        let value = line
            .strip_prefix("title:")
            .or_else(|| line.strip_prefix("title ="))?;
        let value = value.trim().trim_matches(['"', '\'']).trim();
        (!value.is_empty()).then(|| value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sections(md: &str) -> Vec<(Vec<String>, String)> {
        parse(md.as_bytes())
            .unwrap()
            .sections
            .into_iter()
            .map(|s| (s.heading_path, s.text))
            .collect()
    }

    #[test]
    fn tracks_the_heading_stack_in_heading_paths() {
        let got = sections(
            "Intro.\n\n# Install\n\nGeneral.\n\n## Linux\n\nApt.\n\n### Debian\n\nDeb.\n\n## macOS\n\nBrew.\n\n# Use\n\nRun.",
        );
        let want: Vec<(Vec<&str>, &str)> = vec![
            (vec![], "Intro."),
            (vec!["Install"], "General."),
            (vec!["Install", "Linux"], "Apt."),
            (vec!["Install", "Linux", "Debian"], "Deb."),
            (vec!["Install", "macOS"], "Brew."),
            (vec!["Use"], "Run."),
        ];
        let got: Vec<(Vec<&str>, &str)> = got
            .iter()
            .map(|(p, t)| (p.iter().map(String::as_str).collect(), t.as_str()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn keeps_code_blocks_verbatim_and_tables_as_rows() {
        let got = sections(
            "# Ref\n\n```sh\ncargo build \\\n  --release\n```\n\n| key | value |\n|---|---|\n| a | `1` |\n| b | 2 |\n",
        );
        assert_eq!(got[0].1, "cargo build \\\n  --release");
        assert_eq!(got[1].1, "key | value\na | 1\nb | 2");
    }

    #[test]
    fn renders_lists_with_markers_and_inline_markup_as_text() {
        let got = sections(
            "- **Fast** start\n- see [the docs](https://x.invalid)\n  - nested\n\n3. three\n4. four\n\n- [x] done\n",
        );
        assert_eq!(got[0].1, "- Fast start\n- see the docs\n  - nested");
        assert_eq!(got[1].1, "3. three\n4. four");
        assert_eq!(got[2].1, "- [x] done");
    }

    #[test]
    fn ignores_front_matter_but_takes_its_title() {
        let doc =
            parse(b"---\ntitle: \"The Guide\"\ntags: [a]\n---\n\n# Heading\n\nBody.").unwrap();
        assert_eq!(doc.title.as_deref(), Some("The Guide"));
        assert_eq!(doc.sections.len(), 1);
        assert!(!doc.text.contains("tags"));
    }

    #[test]
    fn takes_the_first_h1_as_title_without_front_matter() {
        let doc = parse(b"## Preface\n\nx\n\n# Real Title\n\ny").unwrap();
        assert_eq!(doc.title.as_deref(), Some("Real Title"));
        let doc = parse(b"## Only H2\n\nx").unwrap();
        assert_eq!(doc.title.as_deref(), Some("Only H2"));
    }

    #[test]
    fn drops_raw_html_and_heading_attributes() {
        let got = sections("# Title {#anchor}\n\n<div>\nhidden\n</div>\n\nText <b>bold</b>.");
        assert_eq!(
            got,
            vec![(vec!["Title".to_owned()], "Text bold.".to_owned())]
        );
    }
}
