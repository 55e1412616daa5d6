//! Render time of practice documents: a progress report over 52 weeks with enough sessions
//! to fill 40 A4 pages (table, chart, header and footer on every page), as PDF and as DOCX,
//! through the same builder and renderers the `render_export` job uses. Target: under 2 s
//! for the 40-page PDF. Also a long session-notes PDF.
//!
//! `cargo bench -p tend-tests --bench render` (`RENDER_RUNS`, default 5, runs each).

use std::time::Instant;

use chrono::{Days, Utc};
use tend_shared::{db::stats::Week, sessions::Notes};
use tend_worker::jobs::render_export::{
    ProgressInput, ReportSession, SessionNotesInput, progress_report_document,
    session_notes_document,
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pages(pdf: &[u8]) -> usize {
    lopdf::Document::load_mem(pdf).map_or(0, |d| d.get_pages().len())
}

fn main() {
    let runs: usize = std::env::var("RENDER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let weeks = 52;
    let first = Week::of(Utc::now().date_naive() - Days::new(7 * (weeks - 1)));
    let (start, _) = first.bounds();
    let sessions: Vec<ReportSession> = (0..1_250)
        .map(|i| ReportSession {
            at: start + i as i64 * (weeks as i64 * 7 * 86_400_000 / 1_250),
            duration_ms: Some(50 * 60_000),
            mood: Some(1 + (i % 5) as i64),
            trajectory: ["improving", "stable", "declining"][i % 3].into(),
            topics: vec!["sleep".into(), "work stress".into(), "Åsa's family".into()],
            risk_flags: (i % 40 == 0) as i64,
        })
        .collect();
    let input = ProgressInput {
        practitioner: "Zoë Lindqvist",
        patient: "Hélène Françoise",
        first_week: first,
        weeks: weeks as usize,
        sessions: &sessions,
    };
    let mut pdf_times = Vec::new();
    let mut docx_times = Vec::new();
    let (mut pdf_pages, mut pdf_bytes, mut docx_bytes) = (0, 0, 0);
    for _ in 0..runs {
        let started = Instant::now();
        let document = progress_report_document(&input).expect("document");
        let pdf = tend_documents::pdf(&document).expect("pdf");
        pdf_times.push(started.elapsed().as_secs_f64());
        pdf_pages = pages(&pdf);
        pdf_bytes = pdf.len();
        let started = Instant::now();
        let document = progress_report_document(&input).expect("document");
        let docx = tend_documents::docx(&document).expect("docx");
        docx_times.push(started.elapsed().as_secs_f64());
        docx_bytes = docx.len();
    }
    println!(
        "progress report, {} sessions over {weeks} weeks: PDF {pdf_pages} pages, {} KiB, median {:.3} s (max {:.3} s); DOCX {} KiB, median {:.3} s",
        sessions.len(),
        pdf_bytes / 1024,
        median(pdf_times.clone()),
        pdf_times.iter().copied().fold(0.0, f64::max),
        docx_bytes / 1024,
        median(docx_times),
    );

    let sentence = "The client described the weeks before the move, the sleep diary and what changed after the evening walks. ";
    let notes: Notes = serde_json::from_value(serde_json::json!({
        "key_topics": ["sleep", "work stress", "family"],
        "topic_summary": sentence.repeat(20),
        "strategies": ["box breathing", "a wind-down routine"],
        "action_items": ["keep a sleep diary", "book a follow-up"],
        "session_mood": "low",
        "mood_trajectory": "improving",
        "therapist_notes": sentence.repeat(600),
        "patient_summary": sentence.repeat(10),
        "risk_flags": ["Mentioned not wanting to wake up some mornings"]
    }))
    .expect("notes");
    let mut times = Vec::new();
    let mut notes_pages = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let document = session_notes_document(&SessionNotesInput {
            practitioner: "Zoë Lindqvist",
            patient: "Åsa Öberg",
            recorded_at: Utc::now().timestamp_millis(),
            duration_ms: Some(3_000_000),
            notes: &notes,
        });
        let pdf = tend_documents::pdf(&document).expect("pdf");
        times.push(started.elapsed().as_secs_f64());
        notes_pages = pages(&pdf);
    }
    println!(
        "session notes: PDF {notes_pages} pages, median {:.3} s",
        median(times)
    );
    if median(pdf_times) > 2.0 {
        println!("ABOVE TARGET: the 40-page report takes over 2 s");
    }
}
