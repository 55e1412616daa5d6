//! Practice documents (session notes, progress reports) rendered as PDF and DOCX from one
//! plain model, [`Document`]: the export job builds the model from the database, this crate
//! lays it out. Both formats carry real text (searchable, copyable); the PDF embeds DejaVu
//! Sans (subset) so any Latin, Greek or Cyrillic name renders; pages are A4 and numbered.

mod chart;
mod docx;
mod pdf;

pub use chart::{MoodPoint, mood_chart};

/// A document to render.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// The title on the first page and in the file's metadata.
    pub title: String,
    /// Label/value pairs under the title (practitioner, patient, date, ...).
    pub facts: Vec<(String, String)>,
    /// The body, in order.
    pub blocks: Vec<Block>,
    /// A short line repeated in every page's footer beside the page number.
    pub footer: String,
}

/// One piece of a document's body.
#[derive(Debug, Clone)]
pub enum Block {
    /// A section heading.
    Heading(String),
    /// A paragraph of running text (line breaks in it are kept).
    Paragraph(String),
    /// A bulleted list.
    Bullets(Vec<String>),
    /// Something the reader must not miss (risk flags): set apart, in a tinted box.
    Warning {
        /// The box's title.
        title: String,
        /// One line each.
        items: Vec<String>,
    },
    /// A table with a header row, repeated on every page it spans.
    Table(Table),
    /// An image (the mood chart), full width.
    Image(Image),
}

/// A table.
#[derive(Debug, Clone)]
pub struct Table {
    /// Column titles and their share of the width (summing to about 1).
    pub columns: Vec<(String, f32)>,
    /// The rows, a cell per column.
    pub rows: Vec<Vec<String>>,
}

/// A PNG image with its size in pixels.
#[derive(Debug, Clone)]
pub struct Image {
    /// The PNG file.
    pub png: Vec<u8>,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Text describing it, under it (and its alternative text).
    pub caption: String,
}

/// Why a document could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The PDF writer refused the content.
    #[error("PDF: {0}")]
    Pdf(String),
    /// The DOCX writer failed.
    #[error("DOCX: {0}")]
    Docx(String),
    /// The chart could not be drawn or encoded.
    #[error("chart: {0}")]
    Chart(String),
}

/// Renders `doc` as an A4 PDF.
pub fn pdf(doc: &Document) -> Result<Vec<u8>, RenderError> {
    pdf::render(doc)
}

/// Renders `doc` as an A4 DOCX (Office Open XML).
pub fn docx(doc: &Document) -> Result<Vec<u8>, RenderError> {
    docx::render(doc)
}

/// The embedded fonts (DejaVu Sans, see `fonts/LICENSE`).
pub(crate) mod fonts {
    /// Regular weight.
    pub const REGULAR: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
    /// Bold weight.
    pub const BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");
}
