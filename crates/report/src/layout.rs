//! Pages of an A4 portrait report: a title, headings, tables whose header repeats on every
//! page they run onto, and a footer with "Page n of m". Pages are kept as content streams
//! until the end, so that the footer can name the page count; the PDF is written in one go.

use crate::format;
use crate::text::{self, Font};
use pdf_writer::{Content, Date, Name, Pdf, Rect, Ref, Str, TextStr};
use time::{OffsetDateTime, UtcOffset};

/// A4 in points.
const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const MARGIN: f32 = 40.0;
/// Width between the margins; every table spans it.
pub(crate) const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN;
const TOP: f32 = PAGE_HEIGHT - MARGIN;
/// Nothing but the footer goes below this.
const BOTTOM: f32 = MARGIN + 8.0;
const FOOTER_BASELINE: f32 = MARGIN - 14.0;

/// Space left and right of a cell's text.
const CELL_PAD_X: f32 = 3.0;
/// Space above and below a row's lines.
const CELL_PAD_Y: f32 = 2.5;
/// A wrapped cell shows at most this many lines unless its table says otherwise; a longer
/// text ends with an ellipsis.
const MAX_CELL_LINES: usize = 60;
/// A row of at most this many lines that does not fit moves whole to the next page.
const KEEP_WHOLE_LINES: usize = 12;
/// A taller row is split across pages, but only where this many of its lines still fit.
const MIN_SPLIT_LINES: usize = 3;

const REGULAR: Name = Name(b"F1");
const BOLD: Name = Name(b"F2");

/// An RGB colour for a row's text.
pub(crate) type Color = [f32; 3];

/// Where a cell's text sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// One column of a table.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    /// Shown in the header.
    pub title: &'static str,
    /// In points; `None` takes what the other columns leave of the content width.
    pub width: Option<f32>,
    pub align: Align,
    /// Wrap onto several lines rather than cut with an ellipsis.
    pub wrap: bool,
}

impl Column {
    /// A column that cuts long text.
    pub(crate) fn fixed(title: &'static str, width: f32) -> Self {
        Column {
            title,
            width: Some(width),
            align: Align::Left,
            wrap: false,
        }
    }

    /// A column of figures, aligned right.
    pub(crate) fn figures(title: &'static str, width: f32) -> Self {
        Column {
            title,
            width: Some(width),
            align: Align::Right,
            wrap: false,
        }
    }

    /// The column that takes the remaining width and wraps.
    pub(crate) fn rest(title: &'static str) -> Self {
        Column {
            title,
            width: None,
            align: Align::Left,
            wrap: true,
        }
    }

    fn wrapping(mut self) -> Self {
        self.wrap = true;
        self
    }
}

/// The shape of a table: its columns with their widths fixed, and how it is drawn.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    columns: Vec<(Column, f32)>,
    size: f32,
    /// Draw a header row (repeated on each page).
    header: bool,
    /// The first column is a label, in bold.
    labels: bool,
    /// Most lines a wrapped cell shows.
    max_lines: usize,
}

impl Table {
    /// A table with a header row, text at `size` points.
    pub(crate) fn new(columns: Vec<Column>, size: f32) -> Self {
        let fixed: f32 = columns.iter().filter_map(|c| c.width).sum();
        let flexible = columns.iter().filter(|c| c.width.is_none()).count().max(1) as f32;
        let rest = ((CONTENT_WIDTH - fixed) / flexible).max(20.0);
        let columns = columns
            .into_iter()
            .map(|c| {
                let width = c.width.unwrap_or(rest);
                (c, width)
            })
            .collect();
        Table {
            columns,
            size,
            header: true,
            labels: false,
            max_lines: MAX_CELL_LINES,
        }
    }

    /// Label and value pairs: a bold label column of `label_width`, values wrapped beside it.
    pub(crate) fn key_values(label_width: f32, size: f32) -> Self {
        let mut table = Table::new(
            vec![Column::fixed("", label_width).wrapping(), Column::rest("")],
            size,
        );
        table.header = false;
        table.labels = true;
        table
    }

    /// Wrapped cells show at most `lines` lines, for an overview that points elsewhere for
    /// the whole text.
    pub(crate) fn max_lines(mut self, lines: usize) -> Self {
        self.max_lines = lines.max(1);
        self
    }

    /// One wrapped column across the page, without a header: a note or a paragraph.
    pub(crate) fn plain(size: f32) -> Self {
        let mut table = Table::new(vec![Column::rest("")], size);
        table.header = false;
        table
    }

    fn leading(&self) -> f32 {
        self.size * 1.25
    }

    fn header_height(&self) -> f32 {
        if self.header {
            self.leading() + 2.0 * CELL_PAD_Y
        } else {
            0.0
        }
    }

    fn row_height(&self, lines: usize) -> f32 {
        lines as f32 * self.leading() + 2.0 * CELL_PAD_Y
    }

    /// Lines of a row that fit between `top` and the bottom margin.
    fn lines_below(&self, top: f32) -> usize {
        let room = ((top - BOTTOM - 2.0 * CELL_PAD_Y) / self.leading()).floor();
        if room > 0.0 { room as usize } else { 0 }
    }
}

/// One row's cells, in column order, and its text colour.
#[derive(Debug, Clone, Default)]
pub(crate) struct Row {
    pub cells: Vec<String>,
    pub color: Option<Color>,
}

impl Row {
    /// Cells in the default colour.
    pub(crate) fn new(cells: Vec<String>) -> Self {
        Row { cells, color: None }
    }
}

/// A report being laid out.
pub(crate) struct Report {
    title: String,
    generated_at: OffsetDateTime,
    done: Vec<Content>,
    page: Content,
    /// The top of the free space on the current page.
    y: f32,
    /// Nothing has been drawn on this page but a repeated header.
    fresh: bool,
    /// The table being drawn, whose header starts each new page.
    repeat: Option<Table>,
    /// How far right and how low any text reached, for the tests.
    #[cfg(test)]
    extent: (f32, f32),
}

impl Report {
    /// A report whose first page starts with `title` and the time it was generated.
    pub(crate) fn new(title: &str, generated_at: OffsetDateTime) -> Self {
        let mut report = Report {
            title: title.to_owned(),
            generated_at,
            done: Vec::new(),
            page: Content::new(),
            y: TOP,
            fresh: true,
            repeat: None,
            #[cfg(test)]
            extent: (0.0, PAGE_HEIGHT),
        };
        let size = 16.0;
        for line in text::wrap(title, Font::Bold, size, CONTENT_WIDTH, 3) {
            report.y -= size * 1.2;
            report.show(MARGIN, report.y, Font::Bold, size, &line);
        }
        report.y -= 14.0;
        let generated = format!("Generated {}", format::date_time(generated_at));
        report.gray(0.35);
        report.show(
            MARGIN,
            report.y,
            Font::Regular,
            8.5,
            &text::encode(&generated),
        );
        report.gray(0.0);
        report.y -= 14.0;
        report.fresh = false;
        report
    }

    /// A section heading, moved to the next page when too little of this one is left for it
    /// and the start of what follows.
    pub(crate) fn heading(&mut self, heading: &str) {
        let size = 11.0;
        self.repeat = None;
        if self.y - 70.0 < BOTTOM {
            self.new_page();
        }
        self.y -= 8.0 + size;
        let line = text::truncate(heading, Font::Bold, size, CONTENT_WIDTH);
        self.show(MARGIN, self.y, Font::Bold, size, &line);
        self.y -= 6.0;
        self.fresh = false;
    }

    /// Draws `rows` in `table`; a row that does not fit goes to the next page, under the
    /// header again.
    pub(crate) fn table(&mut self, table: &Table, rows: impl IntoIterator<Item = Row>) {
        self.repeat = table.header.then(|| table.clone());
        let first_row = table.row_height(1);
        if self.y - table.header_height() - first_row < BOTTOM {
            self.new_page();
        } else {
            self.header(table);
        }
        for row in rows {
            self.row(table, &row);
        }
        self.repeat = None;
        self.y -= 6.0;
    }

    /// The PDF: every page with its footer, the two standard fonts, the document information.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let last = std::mem::replace(&mut self.page, Content::new());
        self.done.push(last);
        let count = self.done.len();
        let footer_note = text::truncate(
            &format!(
                "Cartwright \u{b7} {} \u{b7} generated {}",
                self.title,
                format::date_time(self.generated_at)
            ),
            Font::Regular,
            7.5,
            CONTENT_WIDTH - 90.0,
        );

        let mut pdf = Pdf::new();
        let catalog_id = Ref::new(1);
        let tree_id = Ref::new(2);
        let regular_id = Ref::new(3);
        let bold_id = Ref::new(4);
        let info_id = Ref::new(5);
        let mut next = Ref::new(6);
        let mut pages = Vec::with_capacity(count);
        for _ in 0..count {
            let page_id = next.bump();
            let content_id = next.bump();
            pages.push((page_id, content_id));
        }

        pdf.catalog(catalog_id).pages(tree_id);
        pdf.pages(tree_id)
            .kids(pages.iter().map(|(page, _)| *page))
            .count(i32::try_from(count).unwrap_or(i32::MAX));
        for (number, (mut content, (page_id, content_id))) in
            self.done.into_iter().zip(pages).enumerate()
        {
            footer(&mut content, &footer_note, number + 1, count);
            let mut page = pdf.page(page_id);
            page.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT));
            page.parent(tree_id);
            page.contents(content_id);
            let mut resources = page.resources();
            let mut fonts = resources.fonts();
            fonts.pair(REGULAR, regular_id);
            fonts.pair(BOLD, bold_id);
            drop(fonts);
            drop(resources);
            drop(page);
            pdf.stream(content_id, &content.finish());
        }
        for (id, name) in [
            (regular_id, &b"Helvetica"[..]),
            (bold_id, b"Helvetica-Bold"),
        ] {
            pdf.type1_font(id)
                .base_font(Name(name))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
        }
        let at = self.generated_at.to_offset(UtcOffset::UTC);
        let year = u16::try_from(at.year()).unwrap_or(0);
        pdf.document_info(info_id)
            .title(TextStr(&self.title))
            .producer(TextStr("Cartwright"))
            .creation_date(
                Date::new(year)
                    .month(u8::from(at.month()))
                    .day(at.day())
                    .hour(at.hour())
                    .minute(at.minute())
                    .second(at.second())
                    .utc_offset_hour(0),
            );
        pdf.finish()
    }

    fn new_page(&mut self) {
        let full = std::mem::replace(&mut self.page, Content::new());
        self.done.push(full);
        self.y = TOP;
        if let Some(table) = self.repeat.take() {
            self.header(&table);
            self.repeat = Some(table);
        }
        self.fresh = true;
    }

    fn header(&mut self, table: &Table) {
        if !table.header {
            return;
        }
        let height = table.header_height();
        self.page
            .set_fill_gray(0.9)
            .rect(MARGIN, self.y - height, CONTENT_WIDTH, height)
            .fill_nonzero()
            .set_fill_gray(0.0);
        let baseline = self.y - CELL_PAD_Y - table.size * 0.85;
        let mut x = MARGIN;
        for (column, width) in &table.columns {
            let title = text::truncate(
                column.title,
                Font::Bold,
                table.size,
                width - 2.0 * CELL_PAD_X,
            );
            self.cell_line(
                x,
                *width,
                column.align,
                baseline,
                Font::Bold,
                table.size,
                &title,
            );
            x += width;
        }
        self.y -= height;
        self.rule(0.6);
    }

    fn row(&mut self, table: &Table, row: &Row) {
        let cells: Vec<Vec<Vec<u8>>> = table
            .columns
            .iter()
            .enumerate()
            .map(|(i, (column, width))| {
                let cell = row.cells.get(i).map(String::as_str).unwrap_or("");
                let font = if table.labels && i == 0 {
                    Font::Bold
                } else {
                    Font::Regular
                };
                let inner = width - 2.0 * CELL_PAD_X;
                if column.wrap {
                    text::wrap(cell, font, table.size, inner, table.max_lines)
                } else {
                    vec![text::truncate(cell, font, table.size, inner)]
                }
            })
            .collect();
        let lines = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let fresh_fit = table.lines_below(TOP - table.header_height());
        let keep_whole = KEEP_WHOLE_LINES.min(fresh_fit);

        let mut start = 0;
        while start < lines {
            let fit = table.lines_below(self.y);
            let remaining = lines - start;
            if fit < remaining && !self.fresh && (fit < MIN_SPLIT_LINES || remaining <= keep_whole)
            {
                self.new_page();
                continue;
            }
            let take = remaining.min(fit.max(1));
            if let Some([r, g, b]) = row.color {
                self.page.set_fill_rgb(r, g, b);
            }
            let first_baseline = self.y - CELL_PAD_Y - table.size * 0.85;
            let mut x = MARGIN;
            for (i, ((column, width), cell)) in table.columns.iter().zip(&cells).enumerate() {
                let font = if table.labels && i == 0 {
                    Font::Bold
                } else {
                    Font::Regular
                };
                for (k, line) in cell.iter().skip(start).take(take).enumerate() {
                    let baseline = first_baseline - k as f32 * table.leading();
                    self.cell_line(x, *width, column.align, baseline, font, table.size, line);
                }
                x += width;
            }
            if row.color.is_some() {
                self.page.set_fill_gray(0.0);
            }
            self.y -= table.row_height(take);
            if table.header {
                self.rule(0.85);
            }
            self.fresh = false;
            start += take;
            if start < lines {
                self.new_page();
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn cell_line(
        &mut self,
        x: f32,
        width: f32,
        align: Align,
        baseline: f32,
        font: Font,
        size: f32,
        line: &[u8],
    ) {
        let left = match align {
            Align::Left => x + CELL_PAD_X,
            Align::Right => x + width - CELL_PAD_X - font.width(line, size),
        };
        self.show(left, baseline, font, size, line);
    }

    /// A thin horizontal line across the content width at the current position.
    fn rule(&mut self, gray: f32) {
        self.page
            .set_stroke_gray(gray)
            .set_line_width(0.4)
            .move_to(MARGIN, self.y)
            .line_to(MARGIN + CONTENT_WIDTH, self.y)
            .stroke();
    }

    fn gray(&mut self, gray: f32) {
        self.page.set_fill_gray(gray);
    }

    /// One run of WinAnsi text in its own text object.
    fn show(&mut self, x: f32, baseline: f32, font: Font, size: f32, line: &[u8]) {
        #[cfg(test)]
        {
            self.extent.0 = self.extent.0.max(x + font.width(line, size));
            self.extent.1 = self.extent.1.min(baseline);
        }
        show(&mut self.page, x, baseline, font, size, line);
    }
}

fn show(content: &mut Content, x: f32, baseline: f32, font: Font, size: f32, line: &[u8]) {
    if line.is_empty() {
        return;
    }
    let name = match font {
        Font::Regular => REGULAR,
        Font::Bold => BOLD,
    };
    content
        .begin_text()
        .set_font(name, size)
        .next_line(x, baseline)
        .show(Str(line))
        .end_text();
}

/// The footer: what the report is on the left, "Page n of m" on the right.
fn footer(content: &mut Content, note: &[u8], number: usize, count: usize) {
    let size = 7.5;
    content
        .set_stroke_gray(0.75)
        .set_line_width(0.4)
        .move_to(MARGIN, FOOTER_BASELINE + 10.0)
        .line_to(MARGIN + CONTENT_WIDTH, FOOTER_BASELINE + 10.0)
        .stroke()
        .set_fill_gray(0.35);
    show(content, MARGIN, FOOTER_BASELINE, Font::Regular, size, note);
    let page = text::encode(&format!("Page {number} of {count}"));
    let x = MARGIN + CONTENT_WIDTH - Font::Regular.width(&page, size);
    show(content, x, FOOTER_BASELINE, Font::Regular, size, &page);
    content.set_fill_gray(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn text_stays_inside_the_margins_whatever_it_is() {
        let long_word = "y".repeat(2_000);
        let long_words = "a moderately long sentence that goes on ".repeat(200);
        let mut report = Report::new(
            &"A title that is far too long ".repeat(10),
            datetime!(2026-11-22 10:00 UTC),
        );
        report.heading(&"A heading that is far too long ".repeat(10));
        report.table(
            &Table::key_values(110.0, 9.0),
            [Row::new(vec![
                "A label longer than its column".repeat(3),
                long_words.clone(),
            ])],
        );
        let table = Table::new(
            vec![
                Column::fixed("A header title too long for the column", 40.0),
                Column::figures("Total", 50.0),
                Column::rest("Message"),
            ],
            7.5,
        );
        let rows = (0..200).map(|i| {
            Row::new(vec![
                long_word.clone(),
                "123,456,789,012.00".into(),
                if i % 50 == 0 {
                    long_words.clone()
                } else {
                    long_word.clone()
                },
            ])
        });
        report.table(&table, rows);
        let (right, lowest) = report.extent;
        assert!(right <= PAGE_WIDTH - MARGIN + 0.01, "text reaches {right}");
        assert!(lowest >= BOTTOM, "text goes down to {lowest}");
        let pages = report.done.len() + 1;
        assert!(pages > 5, "{pages} pages");
        let pdf = report.finish();
        assert!(pdf.starts_with(b"%PDF-") && pdf.ends_with(b"%%EOF"));
    }
}
