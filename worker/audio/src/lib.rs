//! Tend's audio preparation. Audio too large for the provider's upload limit is decoded
//! (symphonia), mixed down to mono, resampled to 16 kHz (rubato) and cut into 16-bit WAV
//! chunks (hound) that each fit the limit. Cuts fall in the quietest moment of the last seconds before the limit, so words are
//! rarely split; each chunk's offset is exact (counted in samples), so merged segment times
//! match the recording.
//!
//! Runs on the blocking pool. Samples stream from the decoder through the resampler into the
//! chunk's WAV file; only the last seconds of the chunk being filled stay in memory (where the
//! cut may fall), so memory stays well under a megabyte whatever the recording's length.

mod chunker;

use chunker::*;

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::{
    codecs::audio::AudioDecoderOptions,
    errors::Error as SymphoniaError,
    formats::{FormatOptions, TrackType, probe::Hint},
    io::MediaSourceStream,
    meta::MetadataOptions,
};

/// The sample rate chunks are sent at: what speech models work at internally.
pub const TARGET_RATE: u32 = 16_000;
const WAV_HEADER_BYTES: u64 = 44;
/// How far back from the size limit a cut may move to find a quiet moment.
const CUT_SEARCH_MS: usize = 5_000;
/// The window whose energy decides the quietest moment.
const CUT_WINDOW_MS: usize = 20;

/// One chunk, written as a WAV file.
#[derive(Debug, Clone)]
pub struct ChunkFile {
    /// The WAV file.
    pub path: PathBuf,
    /// Where the chunk starts in the recording.
    pub offset_ms: i64,
    /// Its length.
    pub duration_ms: i64,
}

/// A recording cut into chunks.
#[derive(Debug, Clone)]
pub struct Split {
    /// The chunks, in order.
    pub chunks: Vec<ChunkFile>,
    /// The recording's decoded length.
    pub duration_ms: i64,
}

/// Why audio could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file cannot be decoded (corrupt, or a codec the decoder lacks, e.g. Opus).
    #[error("the audio cannot be decoded for chunking: {0}")]
    Undecodable(String),
    /// Writing chunks failed.
    #[error("writing audio chunks failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Decodes `input` and writes chunks of at most `max_bytes` and `max_secs` into `out_dir`.
pub fn split_for_upload(
    input: &Path,
    extension: &str,
    out_dir: &Path,
    max_bytes: u64,
    max_secs: u32,
) -> Result<Split, AudioError> {
    let by_size = ((max_bytes.saturating_sub(WAV_HEADER_BYTES)) / 2) as usize;
    let by_time = max_secs as usize * TARGET_RATE as usize;
    let mut chunker = Chunker::new(out_dir, by_size.min(by_time));
    decode_mono(input, extension, |samples, rate| {
        chunker.push(samples, rate)
    })?;
    chunker.finish()
}

/// Decodes the default audio track and hands mono f32 samples (with their rate) to `sink`.
fn decode_mono(
    input: &Path,
    extension: &str,
    mut sink: impl FnMut(&[f32], u32) -> Result<(), AudioError>,
) -> Result<(), AudioError> {
    let undecodable = |e: SymphoniaError| AudioError::Undecodable(e.to_string());
    let file = File::open(input)?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(extension);
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(undecodable)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::Undecodable("no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioError::Undecodable("no audio codec parameters".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(undecodable)?;

    let mut interleaved: Vec<f32> = Vec::new();
    let mut mono: Vec<f32> = Vec::new();
    let mut decoded_any = false;
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(e) => return Err(undecodable(e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            // A damaged packet is skipped, as players do.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(e) => return Err(undecodable(e)),
        };
        let channels = buffer.spec().channels().count().max(1);
        let rate = buffer.spec().rate();
        interleaved.resize(buffer.samples_interleaved(), 0.0);
        buffer.copy_to_slice_interleaved(&mut interleaved);
        mono.clear();
        mono.extend(
            interleaved
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() / channels as f32),
        );
        decoded_any = true;
        sink(&mono, rate)?;
    }
    if !decoded_any {
        return Err(AudioError::Undecodable("no audio could be decoded".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_tone(path: &Path, rate: u32, channels: u16, secs: f32) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        let frames = (rate as f32 * secs) as usize;
        for i in 0..frames {
            // One second of tone, then half a second of silence, repeated.
            let t = i as f32 / rate as f32;
            let v = if t % 1.5 < 1.0 {
                (t * 440.0 * std::f32::consts::TAU).sin() * 0.5
            } else {
                0.0
            };
            for _ in 0..channels {
                w.write_sample((v * i16::MAX as f32) as i16).unwrap();
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn long_stereo_audio_is_cut_into_16khz_mono_chunks_with_exact_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.wav");
        write_tone(&input, 44_100, 2, 30.0);
        // 8 s chunks at most.
        let split = split_for_upload(&input, "wav", dir.path(), 8 * 32_000 + 44, 600).unwrap();
        assert!(split.chunks.len() >= 4, "{:?}", split.chunks);
        assert!(
            (split.duration_ms - 30_000).abs() < 50,
            "{}",
            split.duration_ms
        );
        let mut expected_offset = 0;
        for chunk in &split.chunks {
            assert_eq!(chunk.offset_ms, expected_offset);
            expected_offset += chunk.duration_ms;
            let reader = hound::WavReader::open(&chunk.path).unwrap();
            assert_eq!(reader.spec().sample_rate, TARGET_RATE);
            assert_eq!(reader.spec().channels, 1);
            assert!(std::fs::metadata(&chunk.path).unwrap().len() <= 8 * 32_000 + 44);
        }
    }

    #[test]
    fn garbage_is_undecodable() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.mp3");
        std::fs::write(&input, vec![0x42u8; 10_000]).unwrap();
        let err = split_for_upload(&input, "mp3", dir.path(), 1_000_000, 600).unwrap_err();
        assert!(matches!(err, AudioError::Undecodable(_)));
    }
}
