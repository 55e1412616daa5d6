//! The DOCX renderer: the same [`Document`] as Word paragraphs, tables and an inline image,
//! A4 with a "page n of N" footer (Word's PAGE and NUMPAGES fields), ready to edit.

use std::io::Cursor;

use docx_rs::{
    AlignmentType, Docx, Footer, LineSpacing, NumPages, PageMargin, PageNum, Paragraph, Pic, Run,
    RunFonts, Shading, SpecialIndentType, Table as DocxTable, TableCell, TableRow, WidthType,
};

use crate::{Block, Document, Image, RenderError, Table};

/// A4 in twentieths of a point.
const PAGE_W: u32 = 11_906;
const PAGE_H: u32 = 16_838;
/// 2 cm margins.
const MARGIN: i32 = 1_134;
const BODY_W: usize = (PAGE_W as i32 - 2 * MARGIN) as usize;
/// English Metric Units per pixel at 96 dpi.
const EMU_PER_TWIP: u32 = 635;

const INK: &str = "1F2328";
const MUTED: &str = "5F6670";
const ACCENT: &str = "1D4E89";
const WARN_INK: &str = "9A1C12";
const WARN_FILL: &str = "FDECEA";
const HEADER_FILL: &str = "E8EEF5";

/// Renders `doc` as a DOCX file.
pub(crate) fn render(doc: &Document) -> Result<Vec<u8>, RenderError> {
    let mut docx = Docx::new()
        .page_size(PAGE_W, PAGE_H)
        .page_margin(PageMargin {
            top: MARGIN,
            left: MARGIN,
            bottom: MARGIN,
            right: MARGIN,
            header: 567,
            footer: 567,
            gutter: 0,
        })
        .default_fonts(
            RunFonts::new()
                .ascii("DejaVu Sans")
                .hi_ansi("DejaVu Sans")
                .cs("DejaVu Sans"),
        )
        .default_size(21)
        .footer(footer(&doc.footer));
    docx = docx.add_paragraph(spaced(
        Paragraph::new().add_run(Run::new().add_text(&doc.title).bold().size(40).color(INK)),
        120,
    ));
    for (label, value) in &doc.facts {
        docx = docx.add_paragraph(spaced(
            Paragraph::new()
                .add_run(
                    Run::new()
                        .add_text(format!("{label}  "))
                        .bold()
                        .color(MUTED),
                )
                .add_run(Run::new().add_text(value).color(INK)),
            40,
        ));
    }
    for block in &doc.blocks {
        docx = match block {
            Block::Heading(text) => docx.add_paragraph(
                spaced(
                    Paragraph::new()
                        .add_run(Run::new().add_text(text).bold().size(26).color(ACCENT)),
                    80,
                )
                .line_spacing(LineSpacing::new().before(240).after(80))
                .keep_next(true),
            ),
            Block::Paragraph(text) => docx.add_paragraph(text_paragraph(text, INK)),
            Block::Bullets(items) => items.iter().fold(docx, |docx, item| {
                docx.add_paragraph(
                    spaced(
                        Paragraph::new()
                            .add_run(Run::new().add_text("•\u{9}").color(ACCENT))
                            .add_run(Run::new().add_text(item).color(INK)),
                        40,
                    )
                    .indent(
                        Some(360),
                        Some(SpecialIndentType::Hanging(360)),
                        None,
                        None,
                    ),
                )
            }),
            Block::Warning { title, items } => docx.add_table(warning(title, items)),
            Block::Table(table) => docx.add_table(table_of(table)),
            Block::Image(image) => {
                let (paragraph, caption) = image_of(image);
                docx.add_paragraph(paragraph).add_paragraph(caption)
            }
        };
    }
    let mut out = Cursor::new(Vec::new());
    docx.build()
        .pack(&mut out)
        .map_err(|e| RenderError::Docx(e.to_string()))?;
    Ok(out.into_inner())
}

fn spaced(paragraph: Paragraph, after: u32) -> Paragraph {
    paragraph.line_spacing(LineSpacing::new().after(after))
}

/// A paragraph of running text; its line breaks become breaks in the run.
fn text_paragraph(text: &str, color: &str) -> Paragraph {
    let mut run = Run::new().color(color);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            run = run.add_break(docx_rs::BreakType::TextWrapping);
        }
        run = run.add_text(line);
    }
    spaced(Paragraph::new().add_run(run), 120)
}

fn footer(text: &str) -> Footer {
    let small = |t: &str| Run::new().add_text(t).size(16).color(MUTED);
    Footer::new().add_paragraph(
        Paragraph::new()
            .add_run(small(&format!("{text}    Page ")))
            .add_page_num(PageNum::new())
            .add_run(small(" of "))
            .add_num_pages(NumPages::new())
            .align(AlignmentType::Right),
    )
}

fn warning(title: &str, items: &[String]) -> DocxTable {
    let mut cell = TableCell::new()
        .shading(Shading::new().fill(WARN_FILL))
        .width(BODY_W, WidthType::Dxa)
        .add_paragraph(spaced(
            Paragraph::new().add_run(Run::new().add_text(title).bold().color(WARN_INK)),
            60,
        ));
    for item in items {
        cell = cell.add_paragraph(spaced(
            Paragraph::new().add_run(Run::new().add_text(format!("– {item}")).color(WARN_INK)),
            40,
        ));
    }
    DocxTable::new(vec![TableRow::new(vec![cell])]).width(BODY_W, WidthType::Dxa)
}

fn table_of(table: &Table) -> DocxTable {
    let total: f32 = table.columns.iter().map(|(_, w)| w).sum::<f32>().max(0.01);
    let widths: Vec<usize> = table
        .columns
        .iter()
        .map(|(_, w)| (w / total * BODY_W as f32) as usize)
        .collect();
    let cell = |text: &str, width: usize, header: bool| {
        let mut run = Run::new().add_text(text).size(19).color(INK);
        if header {
            run = run.bold();
        }
        let mut cell = TableCell::new()
            .width(width, WidthType::Dxa)
            .add_paragraph(Paragraph::new().add_run(run));
        if header {
            cell = cell.shading(Shading::new().fill(HEADER_FILL));
        }
        cell
    };
    let header = TableRow::new(
        table
            .columns
            .iter()
            .zip(&widths)
            .map(|((title, _), w)| cell(title, *w, true))
            .collect(),
    )
    .cant_split();
    let mut rows = vec![header];
    for row in &table.rows {
        rows.push(
            TableRow::new(
                row.iter()
                    .zip(&widths)
                    .map(|(text, w)| cell(text, *w, false))
                    .collect(),
            )
            .cant_split(),
        );
    }
    DocxTable::new(rows)
        .set_grid(widths)
        .width(BODY_W, WidthType::Dxa)
}

/// The image full width, and its caption.
fn image_of(image: &Image) -> (Paragraph, Paragraph) {
    let width_emu = BODY_W as u32 * EMU_PER_TWIP;
    let height_emu = (width_emu as u64 * image.height as u64 / image.width.max(1) as u64) as u32;
    let pic = Pic::new_with_dimensions(image.png.clone(), image.width, image.height)
        .size(width_emu, height_emu);
    let picture = Paragraph::new()
        .add_run(Run::new().add_image(pic))
        .keep_next(true);
    let caption = spaced(
        Paragraph::new().add_run(Run::new().add_text(&image.caption).size(17).color(MUTED)),
        160,
    );
    (picture, caption)
}
