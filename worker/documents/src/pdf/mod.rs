//! The PDF renderer: a small flow layout (wrapped lines, tables whose header repeats, boxes
//! that break across pages) into A4 pages, then krilla draws them. Laying out first lets each
//! footer say "page n of N".

mod layout;

use layout::*;

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
