//! The chunker: resampled samples streamed into WAV chunk files, each cut in the quietest
//! moment before the size limit, with its exact offset counted in samples.

use super::*;

/// The resampler from one source rate to 16 kHz, with its output block.
pub(super) struct ToTargetRate {
    pub(super) rate: u32,
    pub(super) fft: Fft<f32>,
    pub(super) block: Vec<f32>,
}

/// Resamples incoming audio to 16 kHz and cuts it into WAV files.
pub(super) struct Chunker<'a> {
    pub(super) out_dir: &'a Path,
    pub(super) max_samples: usize,
    pub(super) resampler: Option<ToTargetRate>,
    /// Source-rate samples waiting for a full resampler block.
    pub(super) pending: Vec<f32>,
    /// 16 kHz samples from the latest resampler run (kept to reuse its allocation).
    pub(super) resampled: Vec<f32>,
    /// Output samples of the resampler still to skip (its delay).
    pub(super) delay_left: usize,
    /// The WAV file of the chunk being filled, once it has samples on disk.
    pub(super) file: Option<WavFile>,
    /// Samples of the chunk being filled already in its file.
    pub(super) in_file: usize,
    /// The chunk's latest samples, not yet in its file: the cut may fall among them.
    pub(super) tail: Vec<i16>,
    /// Samples in earlier chunks.
    pub(super) written: usize,
    pub(super) chunks: Vec<ChunkFile>,
}

type WavFile = hound::WavWriter<std::io::BufWriter<File>>;

/// How many samples at the end of a full chunk the quiet cut searches.
pub(super) const CUT_SEARCH_SAMPLES: usize = CUT_SEARCH_MS * TARGET_RATE as usize / 1000;

impl<'a> Chunker<'a> {
    pub(super) fn new(out_dir: &'a Path, max_samples: usize) -> Self {
        Self {
            out_dir,
            max_samples: max_samples.max(TARGET_RATE as usize),
            resampler: None,
            pending: Vec::new(),
            resampled: Vec::new(),
            delay_left: 0,
            file: None,
            in_file: 0,
            tail: Vec::with_capacity(2 * CUT_SEARCH_SAMPLES),
            written: 0,
            chunks: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, samples: &[f32], rate: u32) -> Result<(), AudioError> {
        if rate == TARGET_RATE {
            return self.accept(samples);
        }
        match &self.resampler {
            Some(r) if r.rate == rate => {}
            Some(_) => {
                return Err(AudioError::Undecodable(
                    "the sample rate changes mid-recording".into(),
                ));
            }
            None => {
                let fft = Fft::<f32>::new(
                    rate as usize,
                    TARGET_RATE as usize,
                    1024,
                    1,
                    FixedSync::Input,
                )
                .map_err(|e| AudioError::Undecodable(e.to_string()))?;
                self.delay_left = fft.output_delay();
                let block = vec![0f32; fft.output_frames_max()];
                self.resampler = Some(ToTargetRate { rate, fft, block });
            }
        }
        self.pending.extend_from_slice(samples);
        self.drain_pending(false)
    }

    /// Runs the resampler over every full block of pending input (and, at the end, the rest).
    pub(super) fn drain_pending(&mut self, last: bool) -> Result<(), AudioError> {
        let Some(ToTargetRate { fft, block, .. }) = self.resampler.as_mut() else {
            return Ok(());
        };
        let mut used = 0;
        let mut resampled = std::mem::take(&mut self.resampled);
        resampled.clear();
        loop {
            let need = fft.input_frames_next();
            let available = self.pending.len() - used;
            let partial = if available >= need {
                None
            } else if last && available > 0 {
                Some(available)
            } else {
                break;
            };
            let frames_in = partial.unwrap_or(need);
            let input = InterleavedSlice::new(&self.pending[used..used + frames_in], 1, frames_in)
                .map_err(|e| AudioError::Undecodable(e.to_string()))?;
            let block_len = block.len();
            let mut output = InterleavedSlice::new_mut(block, 1, block_len)
                .map_err(|e| AudioError::Undecodable(e.to_string()))?;
            let indexing = rubato::Indexing {
                input_offset: 0,
                output_offset: 0,
                partial_len: partial,
                active_channels_mask: None,
            };
            let (_, produced) = fft
                .process_into_buffer(&input, &mut output, Some(&indexing))
                .map_err(|e| AudioError::Undecodable(e.to_string()))?;
            used += frames_in;
            resampled.extend_from_slice(&block[..produced]);
            if partial.is_some() {
                break;
            }
        }
        self.pending.drain(..used);
        let skip = self.delay_left.min(resampled.len());
        self.delay_left -= skip;
        let accepted = self.accept(&resampled[skip..]);
        self.resampled = resampled;
        accepted
    }

    pub(super) fn accept(&mut self, samples: &[f32]) -> Result<(), AudioError> {
        for &s in samples {
            self.tail
                .push((s.clamp(-1.0, 1.0) * i16::MAX as f32) as i16);
            let chunk_len = self.in_file + self.tail.len();
            if chunk_len >= self.max_samples {
                // The quietest moment of the chunk's last seconds (at most half the chunk),
                // which the tail always holds.
                let search = CUT_SEARCH_SAMPLES.min(chunk_len / 2);
                let cut = quiet_cut(&self.tail, search);
                self.spill(cut)?;
                self.end_chunk()?;
            } else if self.tail.len() >= 2 * CUT_SEARCH_SAMPLES {
                // Only the last seconds can hold the cut: the rest goes to the file.
                self.spill(self.tail.len() - CUT_SEARCH_SAMPLES)?;
            }
        }
        Ok(())
    }

    /// Moves the first `count` tail samples into the chunk's file.
    pub(super) fn spill(&mut self, count: usize) -> Result<(), AudioError> {
        if count == 0 {
            return Ok(());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let path = self.chunk_path(self.chunks.len());
                let spec = hound::WavSpec {
                    channels: 1,
                    sample_rate: TARGET_RATE,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                self.file
                    .insert(hound::WavWriter::create(&path, spec).map_err(wav_error)?)
            }
        };
        for &s in &self.tail[..count] {
            file.write_sample(s).map_err(wav_error)?;
        }
        self.tail.drain(..count);
        self.in_file += count;
        Ok(())
    }

    /// Closes the chunk's file (what is in it makes the chunk) and starts the next one.
    pub(super) fn end_chunk(&mut self) -> Result<(), AudioError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        file.finalize().map_err(wav_error)?;
        self.chunks.push(ChunkFile {
            path: self.chunk_path(self.chunks.len()),
            offset_ms: samples_to_ms(self.written),
            duration_ms: samples_to_ms(self.in_file),
        });
        self.written += self.in_file;
        self.in_file = 0;
        Ok(())
    }

    pub(super) fn chunk_path(&self, index: usize) -> PathBuf {
        self.out_dir.join(format!("chunk-{index:04}.wav"))
    }

    pub(super) fn finish(mut self) -> Result<Split, AudioError> {
        if self.resampler.is_some() {
            self.drain_pending(true)?;
        }
        self.spill(self.tail.len())?;
        self.end_chunk()?;
        if self.chunks.is_empty() {
            return Err(AudioError::Undecodable("the recording is empty".into()));
        }
        Ok(Split {
            duration_ms: samples_to_ms(self.written),
            chunks: self.chunks,
        })
    }
}

pub(super) fn wav_error(e: hound::Error) -> AudioError {
    match e {
        hound::Error::IoError(e) => AudioError::Io(e),
        other => AudioError::Io(std::io::Error::other(other)),
    }
}

pub(super) fn samples_to_ms(samples: usize) -> i64 {
    (samples as i64 * 1000) / TARGET_RATE as i64
}

/// Where to end a full chunk whose latest samples are `samples`: the middle of the quietest
/// 20 ms window among the last `search` of them (an index into `samples`).
pub(super) fn quiet_cut(samples: &[i16], search: usize) -> usize {
    let window = CUT_WINDOW_MS * TARGET_RATE as usize / 1000;
    let from = samples.len() - search.min(samples.len());
    let mut best = (u64::MAX, samples.len());
    let mut start = from;
    while start + window <= samples.len() {
        let energy: u64 = samples[start..start + window]
            .iter()
            .map(|&s| (s as i64 * s as i64) as u64)
            .sum();
        if energy < best.0 {
            best = (energy, start + window / 2);
        }
        start += window;
    }
    best.1.max(1)
}
