//! The flow layout: a document's blocks measured with the font's metrics and placed as
//! drawing operations on A4 pages (wrapped lines, tables whose header repeats, boxes that
//! break across pages).

use super::*;

/// What one page shows, in page coordinates (points, origin top left, text at its baseline).
pub(super) enum Op {
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
pub(super) struct Metrics {
    pub(super) regular: Face<'static>,
    pub(super) bold: Face<'static>,
}

impl Metrics {
    pub(super) fn new() -> Result<Self, RenderError> {
        let parse = |data| Face::parse(data, 0).map_err(|e| RenderError::Pdf(e.to_string()));
        Ok(Self {
            regular: parse(fonts::REGULAR)?,
            bold: parse(fonts::BOLD)?,
        })
    }

    pub(super) fn width(&self, text: &str, size: f32, bold: bool) -> f32 {
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
    pub(super) fn wrap(&self, text: &str, size: f32, bold: bool, width: f32) -> Vec<String> {
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
pub(super) struct Layout<'a> {
    pub(super) metrics: &'a Metrics,
    pub(super) pages: Vec<Vec<Op>>,
    pub(super) y: f32,
}

impl<'a> Layout<'a> {
    pub(super) fn new(metrics: &'a Metrics) -> Self {
        Self {
            metrics,
            pages: vec![Vec::new()],
            y: MARGIN_TOP,
        }
    }

    pub(super) fn ops(&mut self) -> &mut Vec<Op> {
        self.pages.last_mut().expect("never empty")
    }

    pub(super) fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN_TOP;
    }

    /// Starts a new page unless `height` more fits on this one.
    pub(super) fn ensure(&mut self, height: f32) {
        if self.y + height > PAGE_H - MARGIN_BOTTOM && self.y > MARGIN_TOP {
            self.new_page();
        }
    }

    pub(super) fn text(
        &mut self,
        x: f32,
        size: f32,
        bold: bool,
        color: (u8, u8, u8),
        text: String,
    ) {
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
    pub(super) fn paragraph(&mut self, text: &str, style: TextStyle, x: f32, width: f32) {
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

    pub(super) fn heading(&mut self, text: &str) {
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

    pub(super) fn bullets(&mut self, items: &[String]) {
        let indent = 14.0;
        for item in items {
            let line_h = BODY_SIZE * LEADING;
            self.ensure(line_h);
            self.text(MARGIN_X + 2.0, BODY_SIZE, false, ACCENT, "•".into());
            self.paragraph(item, TextStyle::body(), MARGIN_X + indent, BODY_W - indent);
        }
        self.y += 4.0;
    }

    pub(super) fn warning(&mut self, title: &str, items: &[String]) {
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

    pub(super) fn table(&mut self, table: &Table) {
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

    pub(super) fn row(
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

    pub(super) fn image(&mut self, image: &Image, index: usize) {
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

pub(super) fn row_height(cells: &[Vec<String>], line_h: f32, pad: f32) -> f32 {
    let lines = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
    lines as f32 * line_h + 2.0 * pad
}

#[derive(Clone, Copy)]
pub(super) struct TextStyle {
    pub(super) size: f32,
    pub(super) bold: bool,
    pub(super) color: (u8, u8, u8),
    pub(super) band: Option<(u8, u8, u8)>,
}

impl TextStyle {
    pub(super) fn new(size: f32, bold: bool, color: (u8, u8, u8)) -> Self {
        Self {
            size,
            bold,
            color,
            band: None,
        }
    }

    pub(super) fn body() -> Self {
        Self::new(BODY_SIZE, false, INK)
    }
}
