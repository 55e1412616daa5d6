//! The rendered documents read back: the PDF parses and its text (real text, through the
//! embedded font's Unicode map) holds every sentence and name; the DOCX is a ZIP whose XML
//! holds them; long text runs onto further, numbered pages.

use std::io::Read;

use tend_documents::{Block, Document, MoodPoint, Table, mood_chart};

const NAMES: [&str; 3] = ["Åsa Öberg", "Hélène Françoise", "Zoë"];

fn sample(paragraphs: usize) -> Document {
    let sentence = "The client described the week before the move and how sleep improved after the evening walks.";
    let chart = mood_chart(
        &(0..8)
            .map(|i| MoodPoint {
                label: format!("W{i}"),
                mood: Some(1.0 + (i % 5) as f64),
            })
            .collect::<Vec<_>>(),
        "Mood per week",
    )
    .unwrap();
    let mut blocks = vec![
        Block::Warning {
            title: "Risk flags".into(),
            items: vec!["Mentioned thoughts of self-harm last month".into()],
        },
        Block::Heading("Summary".into()),
    ];
    for i in 0..paragraphs {
        blocks.push(Block::Paragraph(format!(
            "Paragraph {i}. {}",
            sentence.repeat(3)
        )));
    }
    blocks.push(Block::Bullets(vec!["keep a sleep diary".into()]));
    blocks.push(Block::Table(Table {
        columns: vec![("Date".into(), 0.3), ("Topics".into(), 0.7)],
        rows: (0..60)
            .map(|i| {
                vec![
                    format!("2026-11-{:02}", i % 28 + 1),
                    format!("topic {i}, sleep"),
                ]
            })
            .collect(),
    }));
    blocks.push(Block::Image(chart));
    Document {
        title: "Session notes".into(),
        facts: vec![
            ("Patient".into(), NAMES[0].into()),
            (
                "Practitioner".into(),
                format!("{} and {}", NAMES[1], NAMES[2]),
            ),
        ],
        blocks,
        footer: "Confidential".into(),
    }
}

fn pdf_text(pdf: &[u8]) -> (String, usize) {
    let doc = lopdf::Document::load_mem(pdf).expect("a PDF parser accepts it");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let text = doc.extract_text(&pages).expect("text extracts");
    (text, pages.len())
}

#[test]
fn the_pdf_holds_real_text_with_accents_over_numbered_pages() {
    let pdf = tend_documents::pdf(&sample(40)).unwrap();
    let (text, pages) = pdf_text(&pdf);
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for name in NAMES {
        assert!(flat.contains(name), "{name} missing from {flat:.400}");
    }
    assert!(flat.contains("how sleep improved after the evening walks"));
    assert!(
        flat.contains("Paragraph 39."),
        "the last paragraph is there"
    );
    assert!(flat.contains("Mentioned thoughts of self-harm last month"));
    assert!(pages >= 3, "{pages} pages");
    assert!(flat.contains(&format!("Page {pages} of {pages}")));
}

#[test]
fn the_docx_is_a_zip_whose_xml_holds_the_text_and_the_chart() {
    let docx = tend_documents::docx(&sample(3)).unwrap();
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(docx)).expect("a ZIP reader accepts it");
    let mut xml = String::new();
    zip.by_name("word/document.xml")
        .unwrap()
        .read_to_string(&mut xml)
        .unwrap();
    for name in NAMES {
        assert!(xml.contains(name), "{name}");
    }
    assert!(xml.contains("how sleep improved after the evening walks"));
    assert!(xml.contains("Mentioned thoughts of self-harm"));
    let media: Vec<String> = zip
        .file_names()
        .filter(|n| n.starts_with("word/media/") && n.ends_with(".png"))
        .map(str::to_owned)
        .collect();
    assert_eq!(media.len(), 1, "{media:?}");
}
