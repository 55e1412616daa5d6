//! The PDF renderer: a small flow layout (wrapped lines, tables whose header repeats, boxes
//! that break across pages) into A4 pages, then krilla draws them. Laying out first lets each
//! footer say "page n of N".

use krilla::{
    Document as PdfDocument,
    color::rgb,
    geom::{PathBuilder, Point, Rect, Size},
    image::Image as PdfImage,
    metadata::Metadata,
    num::NormalizedF32,
    page::PageSettings,
    paint::{Fill, Stroke},
    text::{Font, TextDirection},
};
use ttf_parser::Face;

use crate::{Block, Document, Image, RenderError, Table, fonts};

/// A4 in points.
const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN_X: f32 = 56.7;
const MARGIN_TOP: f32 = 56.7;
const MARGIN_BOTTOM: f32 = 62.0;
const BODY_W: f32 = PAGE_W - 2.0 * MARGIN_X;
const BODY_SIZE: f32 = 10.5;
const LEADING: f32 = 1.4;

const INK: (u8, u8, u8) = (0x1f, 0x23, 0x28);
const MUTED: (u8, u8, u8) = (0x5f, 0x66, 0x70);
const ACCENT: (u8, u8, u8) = (0x1d, 0x4e, 0x89);
const WARN_INK: (u8, u8, u8) = (0x9a, 0x1c, 0x12);
const WARN_FILL: (u8, u8, u8) = (0xfd, 0xec, 0xea);
const RULE: (u8, u8, u8) = (0xc9, 0xcf, 0xd6);
const HEADER_FILL: (u8, u8, u8) = (0xe8, 0xee, 0xf5);

/// What one page shows, in page coordinates (points, origin top left, text at its baseline).
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        color: (u8, u8, u8),
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        color: (u8, u8, u8),
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        color: (u8, u8, u8),
    },
    Image {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        index: usize,
    },
}

/// Measures text in the embedded fonts.
struct Metrics {
    regular: Face<'static>,
    bold: Face<'static>,
}

impl Metrics {
    fn new() -> Result<Self, RenderError> {
        let parse = |data| Face::parse(data, 0).map_err(|e| RenderError::Pdf(e.to_string()));
        Ok(Self {
            regular: parse(fonts::REGULAR)?,
            bold: parse(fonts::BOLD)?,
        })
    }

    fn width(&self, text: &str, size: f32, bold: bool) -> f32 {
        let face = if bold { &self.bold } else { &self.regular };
        let units: u32 = text
            .chars()
            .map(|c| {
                face.glyph_index(c)
                    .and_then(|g| face.glyph_hor_advance(g))
                    .unwrap_or(face.units_per_em() / 2) as u32
            })
            .sum();
        units as f32 * size / face.units_per_em() as f32
    }

    /// Breaks `text` into lines no wider than `width`: at spaces, and inside a word only when
    /// the word alone is too wide. Line breaks in the text are kept.
    fn wrap(&self, text: &str, size: f32, bold: bool, width: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for paragraph in text.split('\n') {
            let mut line = String::new();
            for word in paragraph.split_whitespace() {
                let candidate = if line.is_empty() {
                    word.to_owned()
                } else {
                    format!("{line} {word}")
                };
                if self.width(&candidate, size, bold) <= width {
                    line = candidate;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                // A word wider than the line is cut where it must be.
                for c in word.chars() {
                    line.push(c);
                    if self.width(&line, size, bold) > width && line.chars().count() > 1 {
                        let last = line.pop().expect("two characters at least");
                        lines.push(std::mem::replace(&mut line, last.to_string()));
                    }
                }
            }
            lines.push(line);
        }
        lines
    }
}

/// The flow: pages filled from top to bottom.
struct Layout<'a> {
    metrics: &'a Metrics,
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl<'a> Layout<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        Self {
            metrics,
            pages: vec![Vec::new()],
            y: MARGIN_TOP,
        }
    }

    fn ops(&mut self) -> &mut Vec<Op> {
        self.pages.last_mut().expect("never empty")
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN_TOP;
    }

    /// Starts a new page unless `height` more fits on this one.
    fn ensure(&mut self, height: f32) {
        if self.y + height > PAGE_H - MARGIN_BOTTOM && self.y > MARGIN_TOP {
            self.new_page();
        }
    }

    fn text(&mut self, x: f32, size: f32, bold: bool, color: (u8, u8, u8), text: String) {
        let y = self.y + size;
        self.ops().push(Op::Text {
            x,
            y,
            size,
            bold,
            color,
            text,
        });
    }

    /// A wrapped paragraph at `x`, `width` wide; `fill` tints each line's band.
    fn paragraph(&mut self, text: &str, style: TextStyle, x: f32, width: f32) {
        let line_h = style.size * LEADING;
        for line in self.metrics.wrap(text, style.size, style.bold, width) {
            self.ensure(line_h);
            if let Some(fill) = style.band {
                let y = self.y;
                self.ops().push(Op::Rect {
                    x: MARGIN_X,
                    y,
                    w: BODY_W,
                    h: line_h,
                    color: fill,
                });
                self.ops().push(Op::Rect {
                    x: MARGIN_X,
                    y,
                    w: 3.0,
                    h: line_h,
                    color: WARN_INK,
                });
            }
            self.text(x, style.size, style.bold, style.color, line);
            self.y += line_h;
        }
    }

    fn heading(&mut self, text: &str) {
        let size = 13.0;
        // Keep a heading with at least two lines of what follows.
        self.ensure(size * LEADING + 8.0 + 2.0 * BODY_SIZE * LEADING);
        self.y += 8.0;
        self.paragraph(text, TextStyle::new(size, true, ACCENT), MARGIN_X, BODY_W);
        let y = self.y;
        self.ops().push(Op::Line {
            x1: MARGIN_X,
            y1: y,
            x2: MARGIN_X + BODY_W,
            y2: y,
            color: RULE,
        });
        self.y += 4.0;
    }

    fn bullets(&mut self, items: &[String]) {
        let indent = 14.0;
        for item in items {
            let line_h = BODY_SIZE * LEADING;
            self.ensure(line_h);
            self.text(MARGIN_X + 2.0, BODY_SIZE, false, ACCENT, "•".into());
            self.paragraph(item, TextStyle::body(), MARGIN_X + indent, BODY_W - indent);
        }
        self.y += 4.0;
    }

    fn warning(&mut self, title: &str, items: &[String]) {
        let band = Some(WARN_FILL);
        let pad = 10.0;
        self.ensure(3.0 * BODY_SIZE * LEADING);
        self.y += 4.0;
        let mut title_style = TextStyle::new(BODY_SIZE + 0.5, true, WARN_INK);
        title_style.band = band;
        self.paragraph(title, title_style, MARGIN_X + pad, BODY_W - 2.0 * pad);
        let mut item_style = TextStyle::new(BODY_SIZE, false, WARN_INK);
        item_style.band = band;
        for item in items {
            self.paragraph(
                &format!("– {item}"),
                item_style,
                MARGIN_X + pad,
                BODY_W - 2.0 * pad,
            );
        }
        self.y += 8.0;
    }

    fn table(&mut self, table: &Table) {
        let size = BODY_SIZE - 1.0;
        let line_h = size * LEADING;
        let pad = 4.0;
        let total: f32 = table.columns.iter().map(|(_, w)| w).sum::<f32>().max(0.01);
        let widths: Vec<f32> = table
            .columns
            .iter()
            .map(|(_, w)| w / total * BODY_W)
            .collect();
        let header: Vec<String> = table.columns.iter().map(|(t, _)| t.clone()).collect();
        let wrap_row = |row: &[String], bold: bool| -> Vec<Vec<String>> {
            row.iter()
                .zip(&widths)
                .map(|(cell, w)| self.metrics.wrap(cell, size, bold, w - 2.0 * pad))
                .collect()
        };
        let header_cells = wrap_row(&header, true);
        let header_h = row_height(&header_cells, line_h, pad);
        let mut draw_header = true;
        self.y += 4.0;
        for row in &table.rows {
            let cells = wrap_row(row, false);
            let h = row_height(&cells, line_h, pad);
            if self.y + h + if draw_header { header_h } else { 0.0 } > PAGE_H - MARGIN_BOTTOM {
                self.new_page();
                draw_header = true;
            }
            if draw_header {
                let y = self.y;
                self.ops().push(Op::Rect {
                    x: MARGIN_X,
                    y,
                    w: BODY_W,
                    h: header_h,
                    color: HEADER_FILL,
                });
                self.row(&header_cells, &widths, size, true, pad, line_h);
                self.y += header_h;
                draw_header = false;
            }
            self.row(&cells, &widths, size, false, pad, line_h);
            self.y += h;
            let y = self.y;
            self.ops().push(Op::Line {
                x1: MARGIN_X,
                y1: y,
                x2: MARGIN_X + BODY_W,
                y2: y,
                color: RULE,
            });
        }
        self.y += 8.0;
    }

    fn row(
        &mut self,
        cells: &[Vec<String>],
        widths: &[f32],
        size: f32,
        bold: bool,
        pad: f32,
        line_h: f32,
    ) {
        let top = self.y;
        let mut x = MARGIN_X;
        for (lines, w) in cells.iter().zip(widths) {
            for (i, line) in lines.iter().enumerate() {
                self.ops().push(Op::Text {
                    x: x + pad,
                    y: top + pad + i as f32 * line_h + size,
                    size,
                    bold,
                    color: INK,
                    text: line.clone(),
                });
            }
            x += w;
        }
    }

    fn image(&mut self, image: &Image, index: usize) {
        let w = BODY_W;
        let h = w * image.height as f32 / image.width.max(1) as f32;
        self.ensure(h + 2.0 * BODY_SIZE * LEADING);
        self.y += 4.0;
        let y = self.y;
        self.ops().push(Op::Image {
            x: MARGIN_X,
            y,
            w,
            h,
            index,
        });
        self.y += h + 4.0;
        self.paragraph(
            &image.caption,
            TextStyle::new(BODY_SIZE - 1.5, false, MUTED),
            MARGIN_X,
            BODY_W,
        );
        self.y += 6.0;
    }
}

fn row_height(cells: &[Vec<String>], line_h: f32, pad: f32) -> f32 {
    let lines = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
    lines as f32 * line_h + 2.0 * pad
}

#[derive(Clone, Copy)]
struct TextStyle {
    size: f32,
    bold: bool,
    color: (u8, u8, u8),
    band: Option<(u8, u8, u8)>,
}

impl TextStyle {
    fn new(size: f32, bold: bool, color: (u8, u8, u8)) -> Self {
        Self {
            size,
            bold,
            color,
            band: None,
        }
    }

    fn body() -> Self {
        Self::new(BODY_SIZE, false, INK)
    }
}

/// Lays `doc` out and writes the PDF.
pub(crate) fn render(doc: &Document) -> Result<Vec<u8>, RenderError> {
    let metrics = Metrics::new()?;
    let mut layout = Layout::new(&metrics);
    layout.paragraph(
        &doc.title,
        TextStyle::new(20.0, true, INK),
        MARGIN_X,
        BODY_W,
    );
    layout.y += 6.0;
    let label_w = doc
        .facts
        .iter()
        .map(|(label, _)| metrics.width(label, BODY_SIZE, true))
        .fold(0.0, f32::max)
        + 12.0;
    for (label, value) in &doc.facts {
        layout.ensure(BODY_SIZE * LEADING);
        layout.text(MARGIN_X, BODY_SIZE, true, MUTED, label.clone());
        layout.paragraph(
            value,
            TextStyle::body(),
            MARGIN_X + label_w,
            BODY_W - label_w,
        );
    }
    layout.y += 6.0;
    let mut images: Vec<&Image> = Vec::new();
    for block in &doc.blocks {
        match block {
            Block::Heading(text) => layout.heading(text),
            Block::Paragraph(text) => {
                layout.paragraph(text, TextStyle::body(), MARGIN_X, BODY_W);
                layout.y += 6.0;
            }
            Block::Bullets(items) => layout.bullets(items),
            Block::Warning { title, items } => layout.warning(title, items),
            Block::Table(table) => layout.table(table),
            Block::Image(image) => {
                images.push(image);
                layout.image(image, images.len() - 1);
            }
        }
    }
    let pages = std::mem::take(&mut layout.pages);
    draw(doc, &metrics, pages, &images)
}

fn draw(
    doc: &Document,
    metrics: &Metrics,
    pages: Vec<Vec<Op>>,
    images: &[&Image],
) -> Result<Vec<u8>, RenderError> {
    let regular = Font::new(fonts::REGULAR.into(), 0)
        .ok_or_else(|| RenderError::Pdf("the regular font does not load".into()))?;
    let bold = Font::new(fonts::BOLD.into(), 0)
        .ok_or_else(|| RenderError::Pdf("the bold font does not load".into()))?;
    let images = images
        .iter()
        .map(|image| PdfImage::from_png(image.png.clone().into(), true).map_err(RenderError::Pdf))
        .collect::<Result<Vec<_>, _>>()?;
    let mut pdf = PdfDocument::new();
    pdf.set_metadata(
        Metadata::new()
            .title(doc.title.clone())
            .creator("Tend".into())
            .language("en".into()),
    );
    let count = pages.len();
    let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| RenderError::Pdf("bad page size".into()))?;
    for (number, mut ops) in pages.into_iter().enumerate() {
        ops.push(Op::Line {
            x1: MARGIN_X,
            y1: PAGE_H - MARGIN_BOTTOM + 16.0,
            x2: PAGE_W - MARGIN_X,
            y2: PAGE_H - MARGIN_BOTTOM + 16.0,
            color: RULE,
        });
        ops.push(Op::Text {
            x: MARGIN_X,
            y: PAGE_H - MARGIN_BOTTOM + 30.0,
            size: 8.0,
            bold: false,
            color: MUTED,
            text: doc.footer.clone(),
        });
        let label = format!("Page {} of {count}", number + 1);
        ops.push(Op::Text {
            x: PAGE_W - MARGIN_X - metrics.width(&label, 8.0, false),
            y: PAGE_H - MARGIN_BOTTOM + 30.0,
            size: 8.0,
            bold: false,
            color: MUTED,
            text: label,
        });
        let mut page = pdf.start_page_with(settings.clone());
        let mut surface = page.surface();
        for op in ops {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    bold: is_bold,
                    color,
                    text,
                } => {
                    surface.set_fill(Some(fill(color)));
                    surface.set_stroke(None);
                    let font = if is_bold {
                        bold.clone()
                    } else {
                        regular.clone()
                    };
                    surface.draw_text(
                        Point::from_xy(x, y),
                        font,
                        size,
                        &text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Op::Rect { x, y, w, h, color } => {
                    if let Some(rect) = Rect::from_xywh(x, y, w, h) {
                        let mut path = PathBuilder::new();
                        path.push_rect(rect);
                        if let Some(path) = path.finish() {
                            surface.set_fill(Some(fill(color)));
                            surface.set_stroke(None);
                            surface.draw_path(&path);
                        }
                    }
                }
                Op::Line {
                    x1,
                    y1,
                    x2,
                    y2,
                    color,
                } => {
                    let mut path = PathBuilder::new();
                    path.move_to(x1, y1);
                    path.line_to(x2, y2);
                    if let Some(path) = path.finish() {
                        surface.set_fill(None);
                        surface.set_stroke(Some(Stroke {
                            paint: rgb(color).into(),
                            width: 0.6,
                            ..Default::default()
                        }));
                        surface.draw_path(&path);
                    }
                }
                Op::Image { x, y, w, h, index } => {
                    if let Some(size) = Size::from_wh(w, h) {
                        surface.push_transform(&krilla::geom::Transform::from_translate(x, y));
                        surface.draw_image(images[index].clone(), size);
                        surface.pop();
                    }
                }
            }
        }
        surface.finish();
        page.finish();
    }
    pdf.finish().map_err(|e| RenderError::Pdf(format!("{e:?}")))
}

fn rgb((r, g, b): (u8, u8, u8)) -> rgb::Color {
    rgb::Color::new(r, g, b)
}

fn fill(color: (u8, u8, u8)) -> Fill {
    Fill {
        paint: rgb(color).into(),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wrap_at_spaces_and_keep_every_word() {
        let metrics = Metrics::new().unwrap();
        let text =
            "Åsa Öberg talked about sleep and work and the weeks before the move. ".repeat(8);
        let lines = metrics.wrap(&text, BODY_SIZE, false, 200.0);
        assert!(lines.len() > 5);
        assert!(
            lines
                .iter()
                .all(|l| metrics.width(l, BODY_SIZE, false) <= 200.0)
        );
        assert_eq!(
            lines.join(" ").split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
        let long = metrics.wrap(&"x".repeat(500), BODY_SIZE, false, 100.0);
        assert!(long.len() > 3);
        assert_eq!(long.concat().len(), 500);
    }
}
