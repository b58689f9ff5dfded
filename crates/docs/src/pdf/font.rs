//! From the bytes of a PDF string to Unicode text: a font's `ToUnicode` CMap
//! when it has one, else its simple encoding (WinAnsi, MacRoman, Standard,
//! with `/Differences` glyph names).

use super::file::File;
use super::lexer::{Dict, Lexer, Object, Token};
use std::collections::HashMap;

/// What the text extractor needs from a font.
pub(crate) struct Font {
    /// Byte lengths of codes: `(len, low, high)` ranges.
    codespace: Vec<(usize, u32, u32)>,
    default_len: usize,
    to_unicode: Option<CMap>,
    /// Simple fonts: text of each single-byte code.
    encoding: Option<Vec<Option<String>>>,
    /// Glyph widths in 1/1000 em, for the spacing heuristics.
    widths: HashMap<u32, f64>,
    default_width: f64,
}

impl Font {
    /// A font that shows Latin-1/WinAnsi bytes, for text without a usable font.
    pub(crate) fn fallback() -> Font {
        Font {
            codespace: Vec::new(),
            default_len: 1,
            to_unicode: None,
            encoding: Some(base_encoding(b"WinAnsiEncoding")),
            widths: HashMap::new(),
            default_width: 500.0,
        }
    }

    pub(crate) fn load(file: &File, dict: &Dict) -> Font {
        let composite = dict.get(b"Subtype").and_then(Object::as_name) == Some(b"Type0");
        let to_unicode = match file.get(dict, b"ToUnicode") {
            Some(Object::Stream(stream)) => file.decode(stream).map(|data| CMap::parse(&data)),
            _ => None,
        };
        let mut font = Font {
            codespace: Vec::new(),
            default_len: if composite { 2 } else { 1 },
            to_unicode: None,
            encoding: None,
            widths: HashMap::new(),
            default_width: if composite { 1000.0 } else { 500.0 },
        };
        if let Some(cmap) = to_unicode {
            // A ToUnicode CMap's codespace describes the font's codes, but
            // simple fonts always use one byte.
            if composite {
                font.codespace.clone_from(&cmap.codespace);
            }
            font.to_unicode = Some(cmap);
        }
        if composite {
            if let Some(descendant) = file
                .get(dict, b"DescendantFonts")
                .and_then(|d| match d {
                    Object::Array(items) => items.first(),
                    _ => None,
                })
                .and_then(|d| file.resolve(d).as_dict())
            {
                font.load_cid_widths(file, descendant);
            }
        } else {
            font.encoding = Some(simple_encoding(file, dict));
            font.load_simple_widths(file, dict);
        }
        font
    }

    fn load_simple_widths(&mut self, file: &File, dict: &Dict) {
        let first = file
            .get(dict, b"FirstChar")
            .and_then(Object::as_int)
            .unwrap_or(0);
        if let Some(Object::Array(widths)) = file.get(dict, b"Widths") {
            for (i, width) in widths.iter().enumerate().take(256) {
                if let (Some(w), Ok(code)) = (
                    file.resolve(width).as_f64(),
                    u32::try_from(first.saturating_add(i as i64)),
                ) {
                    self.widths.insert(code, w);
                }
            }
        }
    }

    fn load_cid_widths(&mut self, file: &File, dict: &Dict) {
        if let Some(dw) = file.get(dict, b"DW").and_then(Object::as_f64) {
            self.default_width = dw;
        }
        let Some(Object::Array(w)) = file.get(dict, b"W") else {
            return;
        };
        let mut items = w.iter().map(|o| file.resolve(o));
        while let Some(first) = items.next() {
            if self.widths.len() > 65_536 {
                break;
            }
            let Some(first) = first.as_int().and_then(|f| u32::try_from(f).ok()) else {
                break;
            };
            match items.next() {
                Some(Object::Array(list)) => {
                    for (i, w) in list.iter().enumerate().take(65_536) {
                        if let Some(w) = file.resolve(w).as_f64() {
                            self.widths.insert(first.saturating_add(i as u32), w);
                        }
                    }
                }
                Some(last) => {
                    let last = last
                        .as_int()
                        .and_then(|l| u32::try_from(l).ok())
                        .unwrap_or(first);
                    let width = items
                        .next()
                        .and_then(Object::as_f64)
                        .unwrap_or(self.default_width);
                    for code in first..=last.min(first.saturating_add(65_535)) {
                        self.widths.insert(code, width);
                    }
                }
                None => break,
            }
        }
    }

    /// Splits `bytes` into codes.
    pub(crate) fn codes(&self, bytes: &[u8]) -> Vec<(u32, usize)> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let len = self
                .codespace
                .iter()
                .find(|(len, lo, hi)| {
                    bytes
                        .get(i..i + len)
                        .is_some_and(|b| (*lo..=*hi).contains(&be(b)))
                })
                .map_or(self.default_len, |(len, _, _)| *len);
            let end = (i + len).min(bytes.len());
            out.push((be(&bytes[i..end]), end - i));
            i = end;
        }
        out
    }

    /// Appends the text of one code (nothing when the font does not say).
    pub(crate) fn push_text(&self, code: u32, len: usize, out: &mut String) {
        if let Some(cmap) = &self.to_unicode {
            if let Some(text) = cmap.get(code, len) {
                out.push_str(text);
                return;
            }
            if let Some(text) = cmap.get_range(code, len) {
                out.push_str(&text);
                return;
            }
        }
        if let Some(text) = self
            .encoding
            .as_ref()
            .and_then(|e| e.get(code as usize)?.as_deref())
        {
            out.push_str(text);
        }
    }

    /// Advance of a code in 1/1000 em.
    pub(crate) fn width(&self, code: u32) -> f64 {
        self.widths
            .get(&code)
            .copied()
            .unwrap_or(self.default_width)
    }
}

fn be(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
}

/// A parsed `ToUnicode` CMap.
#[derive(Default)]
pub(crate) struct CMap {
    codespace: Vec<(usize, u32, u32)>,
    chars: HashMap<(usize, u32), String>,
    ranges: Vec<(usize, u32, u32, RangeTarget)>,
}

enum RangeTarget {
    /// UTF-16 units of the first code; the last unit increments.
    Start(Vec<u16>),
    List(Vec<String>),
}

impl CMap {
    pub(crate) fn parse(data: &[u8]) -> CMap {
        let mut cmap = CMap::default();
        let mut lexer = Lexer::new(data, 0);
        let mut operands: Vec<Object> = Vec::new();
        while let Some(token) = lexer.token() {
            match token {
                Token::Object(object) => {
                    if operands.len() < 100_000 {
                        operands.push(object);
                    }
                }
                Token::Keyword(keyword) => {
                    match keyword.as_slice() {
                        b"endcodespacerange" => {
                            for pair in operands.chunks_exact(2) {
                                if let (Object::Str(lo), Object::Str(hi)) = (&pair[0], &pair[1])
                                    && (1..=4).contains(&lo.len())
                                {
                                    cmap.codespace.push((lo.len(), be(lo), be(hi)));
                                }
                            }
                        }
                        b"endbfchar" => {
                            for pair in operands.chunks_exact(2) {
                                if let Object::Str(src) = &pair[0] {
                                    let dst = match &pair[1] {
                                        Object::Str(dst) => utf16(dst),
                                        Object::Name(name) => glyph_text(name).unwrap_or_default(),
                                        _ => continue,
                                    };
                                    cmap.chars.insert((src.len(), be(src)), dst);
                                }
                            }
                        }
                        b"endbfrange" => {
                            for triple in operands.chunks_exact(3) {
                                let (Object::Str(lo), Object::Str(hi)) = (&triple[0], &triple[1])
                                else {
                                    continue;
                                };
                                let target = match &triple[2] {
                                    Object::Str(dst) => RangeTarget::Start(
                                        dst.chunks(2)
                                            .map(|c| {
                                                (u16::from(c[0]) << 8)
                                                    | u16::from(*c.get(1).unwrap_or(&0))
                                            })
                                            .collect(),
                                    ),
                                    Object::Array(items) => RangeTarget::List(
                                        items
                                            .iter()
                                            .take(65_536)
                                            .map(|i| match i {
                                                Object::Str(s) => utf16(s),
                                                _ => String::new(),
                                            })
                                            .collect(),
                                    ),
                                    _ => continue,
                                };
                                if cmap.ranges.len() < 100_000 {
                                    cmap.ranges.push((lo.len(), be(lo), be(hi), target));
                                }
                            }
                        }
                        _ => {}
                    }
                    operands.clear();
                }
            }
        }
        cmap
    }

    fn get(&self, code: u32, len: usize) -> Option<&str> {
        self.chars.get(&(len, code)).map(String::as_str)
    }

    fn get_range(&self, code: u32, len: usize) -> Option<String> {
        self.ranges.iter().find_map(|(l, lo, hi, target)| {
            if *l != len || code < *lo || code > *hi {
                return None;
            }
            let offset = code - lo;
            match target {
                RangeTarget::Start(units) => {
                    let mut units = units.clone();
                    let last = units.last_mut()?;
                    *last = last.wrapping_add(u16::try_from(offset).ok()?);
                    Some(String::from_utf16_lossy(&units))
                }
                RangeTarget::List(items) => items.get(offset as usize).cloned(),
            }
        })
    }
}

/// UTF-16BE bytes to text.
pub(crate) fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks(2)
        .map(|c| (u16::from(c[0]) << 8) | u16::from(*c.get(1).unwrap_or(&0)))
        .collect();
    String::from_utf16_lossy(&units)
}

/// The 256-entry text table of a simple font.
fn simple_encoding(file: &File, dict: &Dict) -> Vec<Option<String>> {
    let symbolic_base = dict
        .get(b"BaseFont")
        .and_then(Object::as_name)
        .is_some_and(|n| n.ends_with(b"Symbol") || n.ends_with(b"Dingbats"));
    let default: &[u8] = match dict.get(b"Subtype").and_then(Object::as_name) {
        Some(b"TrueType") => b"WinAnsiEncoding",
        _ => b"StandardEncoding",
    };
    let (base, differences) = match file.get(dict, b"Encoding") {
        Some(Object::Name(name)) => (name.as_slice(), None),
        Some(Object::Dict(enc)) => (
            file.get(enc, b"BaseEncoding")
                .and_then(Object::as_name)
                .unwrap_or(default),
            match file.get(enc, b"Differences") {
                Some(Object::Array(items)) => Some(items),
                _ => None,
            },
        ),
        _ => (default, None),
    };
    let mut table = if symbolic_base {
        vec![None; 256]
    } else {
        base_encoding(base)
    };
    if let Some(differences) = differences {
        let mut code = 0usize;
        for item in differences {
            match file.resolve(item) {
                Object::Int(c) => code = usize::try_from(*c).unwrap_or(256),
                Object::Name(name) => {
                    if let Some(slot) = table.get_mut(code) {
                        *slot = glyph_text(name);
                    }
                    code = code.saturating_add(1);
                }
                _ => {}
            }
        }
    }
    table
}

fn base_encoding(name: &[u8]) -> Vec<Option<String>> {
    (0u8..=255)
        .map(|code| {
            let c = match name {
                b"MacRomanEncoding" => mac_roman(code),
                b"StandardEncoding" => standard(code),
                _ => win_ansi(code),
            }?;
            Some(c.to_string())
        })
        .collect()
}

fn win_ansi(code: u8) -> Option<char> {
    const HIGH: &str = "€\u{0}‚ƒ„…†‡ˆ‰Š‹Œ\u{0}Ž\u{0}\u{0}‘’“”•–—˜™š›œ\u{0}žŸ";
    match code {
        0x20..=0x7e | 0xa0..=0xff => Some(char::from(code)),
        0x80..=0x9f => HIGH
            .chars()
            .nth(usize::from(code - 0x80))
            .filter(|&c| c != '\0'),
        _ => None,
    }
}

fn mac_roman(code: u8) -> Option<char> {
    const HIGH: &str = "ÄÅÇÉÑÖÜáàâäãåçéèêëíìîïñóòôöõúùûü†°¢£§•¶ß®©™´¨≠ÆØ∞±≤≥¥µ∂∑∏π∫ªºΩæø¿¡¬√ƒ≈∆«»… ÀÃÕŒœ–—“”‘’÷◊ÿŸ⁄€‹›ﬁﬂ‡·‚„‰ÂÊÁËÈÍÎÏÌÓÔ\u{0}ÒÚÛÙıˆ˜¯˘˙˚¸˝˛ˇ";
    match code {
        0x20..=0x7e => Some(char::from(code)),
        0x80..=0xff => HIGH
            .chars()
            .nth(usize::from(code - 0x80))
            .filter(|&c| c != '\0'),
        _ => None,
    }
}

fn standard(code: u8) -> Option<char> {
    Some(match code {
        0x27 => '’',
        0x60 => '‘',
        0x20..=0x7e => char::from(code),
        0xa1 => '¡',
        0xa2 => '¢',
        0xa3 => '£',
        0xa5 => '¥',
        0xa7 => '§',
        0xa9 => '\'',
        0xaa => '“',
        0xab => '«',
        0xae => 'ﬁ',
        0xaf => 'ﬂ',
        0xb1 => '–',
        0xb2 => '†',
        0xb3 => '‡',
        0xb4 => '·',
        0xb6 => '¶',
        0xb7 => '•',
        0xb9 => '”',
        0xba => '”',
        0xbb => '»',
        0xbc => '…',
        0xbf => '¿',
        0xd0 => '—',
        0xe1 => 'Æ',
        0xe9 => 'Ø',
        0xea => 'Œ',
        0xf1 => 'æ',
        0xf5 => 'ı',
        0xf9 => 'ø',
        0xfa => 'œ',
        0xfb => 'ß',
        _ => return None,
    })
}

/// Text for an Adobe glyph name: `a`, `uni00E9`, `u1F600`, `f_i`, `eacute`, `one.oldstyle`.
pub(crate) fn glyph_text(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    let base = name.split('.').next().unwrap_or(name);
    if base.contains('_') {
        let parts: Option<String> = base.split('_').map(|p| glyph_text(p.as_bytes())).collect();
        return parts;
    }
    if base.len() == 1 && base.is_ascii() {
        return Some(base.to_owned());
    }
    if let Some(hex) = base.strip_prefix("uni")
        && hex.len() >= 4
        && hex.len() % 4 == 0
    {
        let units: Option<Vec<u16>> = (0..hex.len() / 4)
            .map(|i| u16::from_str_radix(hex.get(i * 4..i * 4 + 4)?, 16).ok())
            .collect();
        return Some(String::from_utf16_lossy(&units?));
    }
    if let Some(hex) = base.strip_prefix('u')
        && (4..=6).contains(&hex.len())
        && let Some(c) = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
    {
        return Some(c.to_string());
    }
    GLYPHS.split(' ').find_map(|entry| {
        let (glyph, text) = entry.split_at(entry.find('=')?);
        (glyph == base).then(|| text[1..].to_owned())
    })
}

/// Common Adobe glyph names (the Latin-1, WinAnsi and typographic ones).
const GLYPHS: &str = "space=\u{20} exclam=! quotedbl=\" numbersign=# dollar=$ percent=% ampersand=& quotesingle=' parenleft=( parenright=) asterisk=* plus=+ comma=, hyphen=- period=. slash=/ zero=0 one=1 two=2 three=3 four=4 five=5 six=6 seven=7 eight=8 nine=9 colon=: semicolon=; less=< equal== greater=> question=? at=@ bracketleft=[ backslash=\\ bracketright=] asciicircum=^ underscore=_ grave=` braceleft={ bar=| braceright=} asciitilde=~ quoteright=’ quoteleft=‘ quotedblleft=“ quotedblright=” quotesinglbase=‚ quotedblbase=„ guillemotleft=« guillemotright=» guilsinglleft=‹ guilsinglright=› endash=– emdash=— bullet=• ellipsis=… dagger=† daggerdbl=‡ section=§ paragraph=¶ copyright=© registered=® trademark=™ degree=° plusminus=± multiply=× divide=÷ minus=− periodcentered=· Euro=€ sterling=£ yen=¥ cent=¢ florin=ƒ perthousand=‰ exclamdown=¡ questiondown=¿ fi=ﬁ fl=ﬂ ff=ﬀ ffi=ﬃ ffl=ﬄ dotlessi=ı germandbls=ß ae=æ AE=Æ oe=œ OE=Œ oslash=ø Oslash=Ø aring=å Aring=Å ccedilla=ç Ccedilla=Ç ntilde=ñ Ntilde=Ñ agrave=à aacute=á acircumflex=â atilde=ã adieresis=ä egrave=è eacute=é ecircumflex=ê edieresis=ë igrave=ì iacute=í icircumflex=î idieresis=ï ograve=ò oacute=ó ocircumflex=ô otilde=õ odieresis=ö ugrave=ù uacute=ú ucircumflex=û udieresis=ü yacute=ý ydieresis=ÿ Agrave=À Aacute=Á Acircumflex=Â Atilde=Ã Adieresis=Ä Egrave=È Eacute=É Ecircumflex=Ê Edieresis=Ë Igrave=Ì Iacute=Í Icircumflex=Î Idieresis=Ï Ograve=Ò Oacute=Ó Ocircumflex=Ô Otilde=Õ Odieresis=Ö Ugrave=Ù Uacute=Ú Ucircumflex=Û Udieresis=Ü Yacute=Ý Ydieresis=Ÿ Scaron=Š scaron=š Zcaron=Ž zcaron=ž eth=ð Eth=Ð thorn=þ Thorn=Þ mu=µ ordfeminine=ª ordmasculine=º onehalf=½ onequarter=¼ threequarters=¾ logicalnot=¬ brokenbar=¦ dieresis=¨ acute=´ cedilla=¸ macron=¯ circumflex=ˆ tilde=˜ nbspace=\u{a0} currency=¤ arrowright=→ arrowleft=← lessequal=≤ greaterequal=≥ notequal=≠ infinity=∞ approxequal=≈";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_glyph_names_to_text() {
        assert_eq!(glyph_text(b"a").as_deref(), Some("a"));
        assert_eq!(glyph_text(b"eacute").as_deref(), Some("é"));
        assert_eq!(glyph_text(b"uni00E9").as_deref(), Some("é"));
        assert_eq!(glyph_text(b"u1F600").as_deref(), Some("😀"));
        assert_eq!(glyph_text(b"f_i").as_deref(), Some("fi"));
        assert_eq!(glyph_text(b"one.oldstyle").as_deref(), Some("1"));
        assert_eq!(glyph_text(b"equal").as_deref(), Some("="));
        assert_eq!(glyph_text(b"g123"), None);
    }

    #[test]
    fn reads_tounicode_chars_and_ranges() {
        let cmap = CMap::parse(
            b"1 begincodespacerange <0000> <FFFF> endcodespacerange\n2 beginbfchar <0003> <0020> <0011> <00660069> endbfchar\n1 beginbfrange <0024> <0026> <0041> <0030> <0031> [<0078> <0079>] endbfrange",
        );
        assert_eq!(cmap.codespace, vec![(2, 0, 0xffff)]);
        assert_eq!(cmap.get(3, 2), Some(" "));
        assert_eq!(cmap.get(0x11, 2), Some("fi"));
        assert_eq!(cmap.get_range(0x25, 2).as_deref(), Some("B"));
        assert_eq!(cmap.get_range(0x31, 2).as_deref(), Some("y"));
        assert_eq!(cmap.get_range(0x27, 2), None);
    }

    #[test]
    fn decodes_win_ansi_and_mac_roman_high_codes() {
        assert_eq!(win_ansi(0x93), Some('“'));
        assert_eq!(win_ansi(0x81), None);
        assert_eq!(win_ansi(0xe9), Some('é'));
        assert_eq!(mac_roman(0x8e), Some('é'));
        assert_eq!(mac_roman(0xd2), Some('“'));
        assert_eq!(mac_roman(0xff), Some('ˇ'));
        assert_eq!(standard(0x27), Some('’'));
    }
}
