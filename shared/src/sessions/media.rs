//! What an upload is, decided from its first bytes (never from its name or declared type):
//! one of the audio formats the transcription provider accepts, or a transcript.

/// How many leading bytes [`sniff`] needs to decide.
pub const SNIFF_BYTES: usize = 8192;

/// A transcript's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptFormat {
    /// Plain UTF-8 text: no timestamps.
    Plain,
    /// WebVTT captions.
    WebVtt,
    /// SubRip captions.
    Srt,
}

impl TranscriptFormat {
    /// The media type stored with the session.
    pub fn media_type(self) -> &'static str {
        match self {
            TranscriptFormat::Plain => "text/plain",
            TranscriptFormat::WebVtt => "text/vtt",
            TranscriptFormat::Srt => "application/x-subrip",
        }
    }
}

/// What the leading bytes of an upload say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// Audio the provider accepts, with its media type, e.g. `audio/mpeg` (stored with the
    /// session; [`audio_extension`] names the file for the provider).
    Audio(&'static str),
    /// A transcript, which skips transcription.
    Transcript(TranscriptFormat),
    /// Anything else, with the type recognised if any.
    Unsupported(Option<&'static str>),
}

/// The file extension providers expect for a stored audio media type (from [`sniff`]).
pub fn audio_extension(media_type: &str) -> &'static str {
    match media_type {
        "audio/mpeg" => "mp3",
        "audio/mp4" => "m4a",
        "audio/wav" => "wav",
        "audio/ogg" => "ogg",
        "audio/webm" => "webm",
        "audio/flac" => "flac",
        _ => "bin",
    }
}

/// Decides what an upload is from its first bytes (up to [`SNIFF_BYTES`]; `complete` says
/// whether they are the whole file, so a text cut mid-character at the end is not refused).
pub fn sniff(head: &[u8], complete: bool) -> Sniffed {
    if let Some(kind) = infer::get(head) {
        return match kind.mime_type() {
            "audio/mpeg" => Sniffed::Audio("audio/mpeg"),
            "audio/m4a" | "video/mp4" | "video/x-m4v" => Sniffed::Audio("audio/mp4"),
            "audio/x-wav" => Sniffed::Audio("audio/wav"),
            "audio/ogg" | "audio/opus" => Sniffed::Audio("audio/ogg"),
            "video/webm" => Sniffed::Audio("audio/webm"),
            "audio/x-flac" => Sniffed::Audio("audio/flac"),
            other => Sniffed::Unsupported(Some(other)),
        };
    }
    match text_prefix(head, complete) {
        Some(text) => Sniffed::Transcript(transcript_format(text)),
        None => Sniffed::Unsupported(None),
    }
}

/// The head as text, if it is UTF-8 without control characters other than whitespace.
fn text_prefix(head: &[u8], complete: bool) -> Option<&str> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        // A character cut by the end of the sniffing window is fine.
        Err(err) if !complete && err.error_len().is_none() => {
            std::str::from_utf8(&head[..err.valid_up_to()]).ok()?
        }
        Err(_) => return None,
    };
    let is_text = text
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'));
    (is_text && !text.trim().is_empty()).then_some(text)
}

fn transcript_format(text: &str) -> TranscriptFormat {
    let trimmed = text.trim_start();
    if trimmed.starts_with("WEBVTT") {
        return TranscriptFormat::WebVtt;
    }
    let mut lines = trimmed.lines().map(str::trim);
    let first = lines.next().unwrap_or_default();
    let second = lines.next().unwrap_or_default();
    if !first.is_empty() && first.chars().all(|c| c.is_ascii_digit()) && second.contains("-->") {
        TranscriptFormat::Srt
    } else {
        TranscriptFormat::Plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_recognised_by_content() {
        let mut wav = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
        wav.extend_from_slice(&[0; 32]);
        assert_eq!(sniff(&wav, true), Sniffed::Audio("audio/wav"));
        let mp3 = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00";
        assert_eq!(sniff(mp3, true), Sniffed::Audio("audio/mpeg"));
        let flac = b"fLaC\x00\x00\x00\x22";
        assert_eq!(sniff(flac, true), Sniffed::Audio("audio/flac"));
        let m4a = b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00";
        assert_eq!(sniff(m4a, true), Sniffed::Audio("audio/mp4"));
        assert_eq!(audio_extension("audio/mp4"), "m4a");
    }

    #[test]
    fn transcripts_are_told_apart() {
        assert_eq!(
            sniff(b"WEBVTT\n\n00:01.000 --> 00:02.000\nHi", true),
            Sniffed::Transcript(TranscriptFormat::WebVtt)
        );
        assert_eq!(
            sniff(b"1\n00:00:01,000 --> 00:00:02,000\nHi\n", true),
            Sniffed::Transcript(TranscriptFormat::Srt)
        );
        assert_eq!(
            sniff("Therapist: Hello, how are you?".as_bytes(), true),
            Sniffed::Transcript(TranscriptFormat::Plain)
        );
    }

    #[test]
    fn other_files_are_refused() {
        assert_eq!(
            sniff(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", true),
            Sniffed::Unsupported(Some("application/pdf"))
        );
        assert_eq!(
            sniff(&[0u8, 1, 2, 3, 200, 201], true),
            Sniffed::Unsupported(None)
        );
        assert_eq!(sniff(b"   \n ", true), Sniffed::Unsupported(None));
    }

    #[test]
    fn a_character_cut_by_the_window_is_still_text() {
        let text = "é".repeat(10);
        let cut = &text.as_bytes()[..5];
        assert!(matches!(sniff(cut, false), Sniffed::Transcript(_)));
        assert!(matches!(sniff(cut, true), Sniffed::Unsupported(None)));
    }
}
