//! Text in the base-14 Helvetica faces: Unicode to WinAnsi bytes, widths from the fonts'
//! metrics, and fitting text into a column by wrapping or truncating.
//!
//! The standard fonts are not embedded, so a character outside WinAnsi has no glyph. Such
//! characters are replaced here, before any width is measured: the rupee sign by `Rs.`, a few
//! symbols by ASCII look-alikes, anything else by `?`. What is written is therefore always
//! valid WinAnsi and always as wide as measured.

/// One of the two faces the reports use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Font {
    /// Helvetica.
    Regular,
    /// Helvetica-Bold.
    Bold,
}

/// The WinAnsi code of `ELLIPSIS`, shown where text was cut.
const ELLIPSIS: u8 = 0x85;

impl Font {
    /// Width of a WinAnsi string at `size` points.
    pub(crate) fn width(self, text: &[u8], size: f32) -> f32 {
        let table = match self {
            Font::Regular => &REGULAR,
            Font::Bold => &BOLD,
        };
        let units: u32 = text
            .iter()
            .map(|&b| {
                u32::from(
                    table
                        .get(usize::from(b).wrapping_sub(32))
                        .copied()
                        .unwrap_or(0),
                )
            })
            .sum();
        units as f32 * size / 1000.0
    }
}

/// Encodes `text` as WinAnsi for one line: line breaks and tabs become spaces, other control
/// characters are dropped, and characters without a glyph are replaced.
pub(crate) fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if let Some(b) = win_ansi(c) {
            out.push(b);
        } else if c == '\t' || c == '\n' || c == '\r' {
            out.push(b' ');
        } else if c.is_control() || matches!(c, '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}') {
            // Invisible: nothing to show.
        } else {
            out.extend_from_slice(replacement(c).as_bytes());
        }
    }
    out
}

/// The WinAnsi code of `c`, if the encoding has it.
fn win_ansi(c: char) -> Option<u8> {
    let code = u32::from(c);
    if (0x20..=0x7e).contains(&code) || (0xa0..=0xff).contains(&code) {
        return u8::try_from(code).ok();
    }
    Some(match c {
        '\u{20ac}' => 0x80,
        '\u{201a}' => 0x82,
        '\u{0192}' => 0x83,
        '\u{201e}' => 0x84,
        '\u{2026}' => 0x85,
        '\u{2020}' => 0x86,
        '\u{2021}' => 0x87,
        '\u{02c6}' => 0x88,
        '\u{2030}' => 0x89,
        '\u{0160}' => 0x8a,
        '\u{2039}' => 0x8b,
        '\u{0152}' => 0x8c,
        '\u{017d}' => 0x8e,
        '\u{2018}' => 0x91,
        '\u{2019}' => 0x92,
        '\u{201c}' => 0x93,
        '\u{201d}' => 0x94,
        '\u{2022}' => 0x95,
        '\u{2013}' => 0x96,
        '\u{2014}' => 0x97,
        '\u{02dc}' => 0x98,
        '\u{2122}' => 0x99,
        '\u{0161}' => 0x9a,
        '\u{203a}' => 0x9b,
        '\u{0153}' => 0x9c,
        '\u{017e}' => 0x9e,
        '\u{0178}' => 0x9f,
        _ => return None,
    })
}

/// ASCII for a character WinAnsi lacks.
fn replacement(c: char) -> &'static str {
    match c {
        '\u{20b9}' => "Rs.",
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2212}' => "-",
        '\u{2015}' => "--",
        '\u{2032}' => "'",
        '\u{2033}' => "\"",
        '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}' => " ",
        '\u{2190}' => "<-",
        '\u{2192}' => "->",
        '\u{2194}' => "<->",
        '\u{21d2}' => "=>",
        '\u{2264}' => "<=",
        '\u{2265}' => ">=",
        '\u{2260}' => "!=",
        '\u{2248}' => "~",
        '\u{2713}' | '\u{2714}' => "v",
        '\u{2717}' | '\u{2718}' => "x",
        _ => "?",
    }
}

/// Lays `text` out in lines no wider than `width`: paragraphs split at line breaks, words
/// wrapped at spaces, a word wider than the column broken where it must. At most `max_lines`
/// lines; when text is left over, the last line ends with an ellipsis. Always at least one line.
pub(crate) fn wrap(
    text: &str,
    font: Font,
    size: f32,
    width: f32,
    max_lines: usize,
) -> Vec<Vec<u8>> {
    let max_lines = max_lines.max(1);
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut cut = false;
    'paragraphs: for paragraph in text.trim_end().split('\n') {
        let encoded = encode(paragraph.trim_end_matches('\r'));
        let mut line: Vec<u8> = Vec::new();
        for word in encoded.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            let joined = if line.is_empty() {
                0.0
            } else {
                font.width(b" ", size)
            };
            if font.width(&line, size) + joined + font.width(word, size) <= width {
                if !line.is_empty() {
                    line.push(b' ');
                }
                line.extend_from_slice(word);
                continue;
            }
            if !line.is_empty() {
                if lines.len() == max_lines {
                    cut = true;
                    break 'paragraphs;
                }
                lines.push(std::mem::take(&mut line));
            }
            // The word starts a line; break it while it is wider than the column.
            let mut rest = word;
            while font.width(rest, size) > width {
                let take = fitting(rest, font, size, width).max(1);
                if lines.len() == max_lines {
                    cut = true;
                    break 'paragraphs;
                }
                lines.push(rest[..take].to_vec());
                rest = &rest[take..];
            }
            line = rest.to_vec();
        }
        if lines.len() == max_lines {
            cut = true;
            break;
        }
        lines.push(line);
    }
    // Trailing empty paragraphs (a message ending in a line break) show nothing.
    while lines.len() > 1 && lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if cut && let Some(last) = lines.last_mut() {
        *last = with_ellipsis(last, font, size, width);
    }
    if lines.is_empty() {
        lines.push(Vec::new());
    }
    lines
}

/// `text` on one line no wider than `width`, cut with an ellipsis if it has to be.
pub(crate) fn truncate(text: &str, font: Font, size: f32, width: f32) -> Vec<u8> {
    let encoded = encode(text);
    if font.width(&encoded, size) <= width {
        return encoded;
    }
    let mut cut = encoded;
    cut.pop();
    with_ellipsis(&cut, font, size, width)
}

/// `text` shortened until it and an ellipsis fit in `width`, then the ellipsis.
fn with_ellipsis(text: &[u8], font: Font, size: f32, width: f32) -> Vec<u8> {
    let room = width - font.width(&[ELLIPSIS], size);
    let take = if room > 0.0 {
        fitting(text, font, size, room)
    } else {
        0
    };
    let mut out = text[..take].to_vec();
    while out.last() == Some(&b' ') {
        out.pop();
    }
    out.push(ELLIPSIS);
    out
}

/// How many leading bytes of `text` fit in `width`.
fn fitting(text: &[u8], font: Font, size: f32, width: f32) -> usize {
    let mut used = 0.0;
    for (i, &b) in text.iter().enumerate() {
        used += font.width(&[b], size);
        if used > width {
            return i;
        }
    }
    text.len()
}

/// Helvetica advance widths in 1/1000 em for WinAnsi codes 0x20..=0xFF.
#[rustfmt::skip]
const REGULAR: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 584, 278, 278, // 0x20
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0x30
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // 0x40
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // 0x50
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // 0x60
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 0, // 0x70
    556, 0, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0, // 0x80
    0, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 0, 500, 667, // 0x90
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333, // 0xA0
    400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611, // 0xB0
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, // 0xC0
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, // 0xD0
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278, // 0xE0
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500, // 0xF0
];

/// Helvetica-Bold advance widths in 1/1000 em for WinAnsi codes 0x20..=0xFF.
#[rustfmt::skip]
const BOLD: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 584, 278, 278, // 0x20
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, // 0x30
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, // 0x40
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, // 0x50
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, // 0x60
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 0, // 0x70
    556, 0, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 0, 611, 0, // 0x80
    0, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 0, 500, 667, // 0x90
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333, // 0xA0
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611, // 0xB0
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278, // 0xC0
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611, // 0xD0
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278, // 0xE0
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556, // 0xF0
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_outside_win_ansi_are_replaced_not_dropped() {
        assert_eq!(encode("\u{20b9} 499"), b"Rs. 499");
        assert_eq!(
            encode("caf\u{e9} \u{2013} \u{201c}ok\u{201d}"),
            b"caf\xe9 \x96 \x93ok\x94"
        );
        assert_eq!(encode("\u{0928}\u{092e}"), b"??");
        assert_eq!(encode("a\tb\u{7}c\u{200b}d"), b"a bcd");
    }

    #[test]
    fn widths_follow_the_font_metrics() {
        // "Hello": H 722 + e 556 + l 222 + l 222 + o 556 = 2278 units.
        assert!((Font::Regular.width(b"Hello", 10.0) - 22.78).abs() < 1e-3);
        assert!(Font::Bold.width(b"Hello", 10.0) > Font::Regular.width(b"Hello", 10.0));
    }

    #[test]
    fn wrapped_lines_never_exceed_the_column() {
        let text = "a fairly long message that must wrap onto several lines, with averyveryveryverylongwordwithoutanyspacesthatmustbebrokenapart too";
        let lines = wrap(text, Font::Regular, 8.0, 60.0, 100);
        assert!(lines.len() > 3);
        for line in &lines {
            assert!(
                Font::Regular.width(line, 8.0) <= 60.0,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        let joined: Vec<u8> = lines.concat();
        assert!(joined.windows(4).any(|w| w == b"long"));

        let capped = wrap(text, Font::Regular, 8.0, 60.0, 2);
        assert_eq!(capped.len(), 2);
        assert_eq!(capped[1].last(), Some(&ELLIPSIS));
        assert!(Font::Regular.width(&capped[1], 8.0) <= 60.0);

        assert_eq!(
            wrap("", Font::Regular, 8.0, 60.0, 5),
            vec![Vec::<u8>::new()]
        );
        assert_eq!(wrap("one\ntwo\n", Font::Regular, 8.0, 60.0, 5).len(), 2);
    }

    #[test]
    fn truncation_keeps_within_the_column() {
        let cut = truncate(
            "a label far too long for its narrow column",
            Font::Bold,
            8.0,
            40.0,
        );
        assert!(Font::Bold.width(&cut, 8.0) <= 40.0);
        assert_eq!(cut.last(), Some(&ELLIPSIS));
        assert_eq!(truncate("short", Font::Bold, 8.0, 40.0), b"short");
    }
}
