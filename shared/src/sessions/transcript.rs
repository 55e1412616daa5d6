//! Transcripts: timed segments, parsed from uploaded WebVTT or SRT captions (plain text has
//! none), or merged from the provider's answers for each audio chunk.

use serde::{Deserialize, Serialize};

use super::TranscriptFormat;

/// One timed piece of the transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Start, in milliseconds from the start of the recording.
    pub start_ms: i64,
    /// End, in milliseconds.
    pub end_ms: i64,
    /// What was said.
    pub text: String,
}

/// A transcript ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The whole text.
    pub text: String,
    /// The timed segments (empty for plain text).
    pub segments: Vec<Segment>,
    /// The end of the last segment, if any.
    pub duration_ms: Option<i64>,
}

impl Transcript {
    /// Builds a transcript from segments, joining their text.
    pub fn from_segments(segments: Vec<Segment>) -> Self {
        let text = segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        let duration_ms = segments.iter().map(|s| s.end_ms).max();
        Self {
            text,
            segments,
            duration_ms,
        }
    }
}

/// Parses an uploaded transcript. The error names the line that is wrong.
pub fn parse(format: TranscriptFormat, raw: &str) -> Result<Transcript, String> {
    let raw = raw
        .strip_prefix('\u{feff}')
        .unwrap_or(raw)
        .replace("\r\n", "\n");
    let transcript = match format {
        TranscriptFormat::Plain => Transcript {
            text: raw.trim().to_owned(),
            segments: Vec::new(),
            duration_ms: None,
        },
        TranscriptFormat::WebVtt => Transcript::from_segments(parse_cues(&raw, true)?),
        TranscriptFormat::Srt => Transcript::from_segments(parse_cues(&raw, false)?),
    };
    if transcript.text.is_empty() {
        return Err("the transcript has no text".into());
    }
    Ok(transcript)
}

/// Parses the cues of WebVTT (`vtt`) or SRT: blocks separated by blank lines, each with an
/// optional identifier, a `start --> end` line, then text.
fn parse_cues(raw: &str, vtt: bool) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut line_no = 0usize;
    let mut lines = raw.lines().peekable();
    let mut first_block = true;
    while lines.peek().is_some() {
        // Collect one block.
        let mut block = Vec::new();
        let mut block_start = line_no + 1;
        for line in lines.by_ref() {
            line_no += 1;
            if line.trim().is_empty() {
                if block.is_empty() {
                    block_start = line_no + 1;
                    continue;
                }
                break;
            }
            block.push(line);
        }
        if block.is_empty() {
            continue;
        }
        let is_first = std::mem::take(&mut first_block);
        if vtt {
            if is_first {
                if !block[0].starts_with("WEBVTT") {
                    return Err("line 1: a WebVTT file starts with WEBVTT".into());
                }
                continue;
            }
            if ["NOTE", "STYLE", "REGION"]
                .iter()
                .any(|kw| block[0].starts_with(kw))
            {
                continue;
            }
        }
        let timing_at = block
            .iter()
            .position(|l| l.contains("-->"))
            .ok_or_else(|| format!("line {block_start}: a cue without a `start --> end` line"))?;
        if timing_at > 1 {
            return Err(format!(
                "line {block_start}: a cue without a `start --> end` line"
            ));
        }
        let timing_line = block_start + timing_at;
        let (start, end) = block[timing_at].split_once("-->").expect("checked above");
        let start_ms = timestamp_ms(start.trim())
            .ok_or_else(|| format!("line {timing_line}: bad start time {:?}", start.trim()))?;
        let end_raw = end.split_whitespace().next().unwrap_or_default();
        let end_ms = timestamp_ms(end_raw)
            .ok_or_else(|| format!("line {timing_line}: bad end time {end_raw:?}"))?;
        if end_ms < start_ms {
            return Err(format!("line {timing_line}: the cue ends before it starts"));
        }
        let text = block[timing_at + 1..]
            .iter()
            .map(|l| strip_tags(l.trim()))
            .collect::<Vec<_>>()
            .join(" ");
        segments.push(Segment {
            start_ms,
            end_ms,
            text,
        });
    }
    if segments.is_empty() {
        return Err("the file has no cues".into());
    }
    Ok(segments)
}

/// Most hours a timestamp may name: longer than any recording, small enough that no sum of
/// timestamps overflows.
const MAX_HOURS: i64 = 999;

/// `hh:mm:ss.mmm`, `mm:ss.mmm` (WebVTT) or `hh:mm:ss,mmm` (SRT) to milliseconds. Every field
/// is plain digits (no sign), minutes and seconds under 60, hours at most [`MAX_HOURS`], so a
/// time is never negative and never overflows.
fn timestamp_ms(raw: &str) -> Option<i64> {
    let raw = raw.replace(',', ".");
    let (clock, millis) = raw.split_once('.')?;
    let digits = |part: &str, max_len: usize| -> Option<i64> {
        let plain =
            !part.is_empty() && part.len() <= max_len && part.bytes().all(|b| b.is_ascii_digit());
        plain.then(|| part.parse().ok()).flatten()
    };
    if millis.len() != 3 {
        return None;
    }
    let millis = digits(millis, 3)?;
    let parts: Vec<i64> = clock
        .split(':')
        .map(|p| digits(p, 3))
        .collect::<Option<_>>()?;
    let (h, m, s) = match parts.as_slice() {
        [m, s] => (0, *m, *s),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    if h > MAX_HOURS || m >= 60 || s >= 60 {
        return None;
    }
    Some(((h * 60 + m) * 60 + s) * 1000 + millis)
}

/// Drops markup: `<v Ann>Hi</v>` becomes `Ann: Hi`, other tags vanish.
fn strip_tags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let tag = &rest[open + 1..open + close];
        if tag.starts_with("v ") || tag.starts_with("v.") {
            let name = tag.split_once(' ').map_or("", |(_, n)| n).trim();
            if !name.is_empty() {
                out.push_str(name);
                out.push_str(": ");
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webvtt_cues_become_segments() {
        let vtt = "WEBVTT - session\n\nNOTE recorded in room 2\n\n1\n00:00:01.500 --> 00:00:04.000 align:start\n<v Therapist>How was your week?\n\n00:01:05.000 --> 00:01:09.250\n<v Client>Better, I slept\nmore.\n";
        let t = parse(TranscriptFormat::WebVtt, vtt).unwrap();
        assert_eq!(t.segments.len(), 2);
        assert_eq!(t.segments[0].start_ms, 1500);
        assert_eq!(t.segments[0].text, "Therapist: How was your week?");
        assert_eq!(t.segments[1].start_ms, 65_000);
        assert_eq!(t.segments[1].text, "Client: Better, I slept more.");
        assert_eq!(t.duration_ms, Some(69_250));
    }

    #[test]
    fn srt_cues_become_segments() {
        let srt = "1\r\n00:00:00,000 --> 00:00:02,000\r\nHello.\r\n\r\n2\r\n01:00:00,000 --> 01:00:01,000\r\nBye.\r\n";
        let t = parse(TranscriptFormat::Srt, srt).unwrap();
        assert_eq!(t.segments[1].start_ms, 3_600_000);
        assert_eq!(t.text, "Hello.\nBye.");
    }

    #[test]
    fn broken_captions_name_the_line() {
        let err = parse(
            TranscriptFormat::Srt,
            "1\n00:00:0x,000 --> 00:00:02,000\nHi\n",
        )
        .unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        let err = parse(TranscriptFormat::WebVtt, "WEBVTT\n\nno timing here\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(parse(TranscriptFormat::Plain, "  \n").is_err());
    }

    #[test]
    fn negative_and_overflowing_times_are_refused_with_their_line() {
        for timing in [
            "-00:00:05.000 --> 00:00:02.000",
            "00:00:01.000 --> -1:00:02.000",
            "00:-1:00.000 --> 00:00:02.000",
            "00:00:01.000 --> 9223372036854775807:00:00.000",
            "00:00:01.000 --> 1000:00:00.000",
            "+1:00:01.000 --> 2:00:00.000",
            "00:00:01.-01 --> 00:00:02.000",
        ] {
            let vtt = format!("WEBVTT\n\n{timing}\nHi\n");
            let err = parse(TranscriptFormat::WebVtt, &vtt).unwrap_err();
            assert!(err.starts_with("line 3"), "{timing}: {err}");
        }
        let ok = parse(
            TranscriptFormat::WebVtt,
            "WEBVTT\n\n999:59:59.999 --> 999:59:59.999\nHi\n",
        )
        .unwrap();
        assert!(ok.duration_ms.unwrap() > 0);
    }
}
