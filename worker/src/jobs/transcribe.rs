//! Transcribes a session's audio. Audio within the provider's upload limit is sent as it is;
//! larger audio is decoded, reduced to 16 kHz mono and sent in chunks ([`tend_audio`]),
//! whose segments are shifted by each chunk's offset and merged in order. Each transcribed
//! chunk is kept until the transcript is stored, so a retried attempt pays only for the
//! chunks it lacks. On success the transcript is stored and the extraction job enqueued in
//! the same transaction.

use bytes::Bytes;
use tend_shared::{
    db::{self, chunks::ChunkRow, jobs::JobRow, sessions::SessionRow, usage::UsageRow},
    jobs::{JobError, JobOrigin, JobTx},
    sessions::{Segment, Stage, media::audio_extension, transcript::Transcript},
};

use tend_audio::{self as audio, AudioError, ChunkFile};

use super::{begin_session_stage, record_usage, session_attempt_failed};
use crate::{
    env::JobEnv,
    job::{Job, JobCtx},
    provider::TranscriptionAnswer,
};
use tend_shared::jobs::kinds::extract::ExtractNotes;
use tend_shared::jobs::kinds::transcribe::TranscribeSession;

impl Job for TranscribeSession {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        run(ctx.env, ctx.job, self).await
    }

    async fn on_retry(&self, ctx: &JobCtx<'_>, error: &str) {
        session_attempt_failed(ctx.env, ctx.job, &self.session_id, error).await;
    }

    async fn on_dead(&self, ctx: &JobCtx<'_>, tx: &mut JobTx, error: &str) -> sqlx::Result<()> {
        super::session_stage_dead(tx, ctx.job, &self.session_id, Stage::Transcription, error).await
    }
}

/// Runs the transcription stage of one session.
async fn run(env: &JobEnv, job: &JobRow, payload: &TranscribeSession) -> Result<(), JobError> {
    let session_id = payload.session_id.to_string();
    let db_err = |e: sqlx::Error| JobError::transient("database", e);
    let Some(session) = begin_session_stage(env, job, &session_id, Stage::Transcription).await?
    else {
        return Ok(());
    };
    let key = session
        .object_key
        .clone()
        .ok_or_else(|| JobError::Permanent("the session has no stored audio".into()))?;
    let extension = audio_extension(&session.media_type);
    let limit = env.provider.settings.transcription_max_upload_bytes;
    let transcript = if session.size_bytes as u64 <= limit {
        // Small enough to send as it is: straight from the store, no scratch file.
        let audio =
            env.store.read(&key).await.map_err(|e| {
                JobError::Transient(format!("reading the audio from the store: {e:#}"))
            })?;
        let answer = env
            .provider
            .transcribe(audio, &format!("session.{extension}"))
            .await?;
        let duration_ms = answer_duration_ms(&answer, 0);
        record_usage(
            env,
            job,
            Some(&session.id),
            transcription_usage(env, duration_ms),
        )
        .await;
        let mut transcript = Transcript::from_segments(segments_of(answer, 0, duration_ms));
        transcript.duration_ms = transcript.duration_ms.max(Some(duration_ms));
        transcript
    } else {
        transcribe_in_chunks(env, job, &session, &key, extension).await?
    };

    let segments_json = serde_json::to_string(&transcript.segments)
        .map_err(|e| JobError::permanent("encoding segments", e))?;
    let mut tx = JobTx::begin(&env.relay).await.map_err(db_err)?;
    let next = tx
        .enqueue(
            &ExtractNotes {
                session_id: payload.session_id,
            },
            &JobOrigin::follow_up(job),
        )
        .await
        .map_err(db_err)?;
    let stored = db::sessions::finish_transcription(
        &mut tx,
        &session_id,
        &transcript.text,
        &segments_json,
        transcript.duration_ms,
        &next.id,
    )
    .await
    .map_err(db_err)?;
    if !stored {
        // Deleted, cancelled or failed while we worked: keep nothing. A cancelled session
        // loses the chunks this attempt saved after the cancellation cleared them (a failed
        // one keeps them for its retry).
        drop(tx);
        let current = db::sessions::find(&env.db, &session_id)
            .await
            .map_err(db_err)?;
        if current.is_some_and(|s| s.status() == tend_shared::sessions::SessionStatus::Cancelled) {
            let mut conn = env.db.acquire().await.map_err(db_err)?;
            db::chunks::clear_chunks(&mut conn, &session_id)
                .await
                .map_err(db_err)?;
        }
        tracing::info!("session changed during transcription; result dropped");
        return Ok(());
    }
    db::chunks::clear_chunks(&mut tx, &session_id)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    tracing::info!(
        segments = transcript.segments.len(),
        duration_ms = transcript.duration_ms,
        "transcript stored; extraction queued"
    );
    Ok(())
}

/// Decodes the recording into chunks within the provider's limit (in a scratch directory),
/// transcribes them in order and merges their segments.
async fn transcribe_in_chunks(
    env: &JobEnv,
    job: &JobRow,
    session: &SessionRow,
    key: &str,
    extension: &str,
) -> Result<Transcript, JobError> {
    // Under DATA_DIR, not /tmp: a long recording and its chunks can be a gigabyte, and /tmp
    // is often a small tmpfs in containers.
    let tmp_root = env.settings.data_dir.join("tmp");
    let workdir = tokio::fs::create_dir_all(&tmp_root)
        .await
        .and_then(|()| {
            tempfile::Builder::new()
                .prefix("transcribe-")
                .tempdir_in(&tmp_root)
        })
        .map_err(|e| JobError::transient("temporary directory", e))?;
    let source = workdir.path().join(format!("source.{extension}"));
    env.store
        .download(key, &source)
        .await
        .map_err(|e| JobError::Transient(format!("reading the audio from the store: {e:#}")))?;

    let limit = env.provider.settings.transcription_max_upload_bytes;
    let chunk_secs = env.provider.settings.transcription_chunk_secs;
    let out_dir = workdir.path().to_owned();
    let ext = extension.to_owned();
    let split = tokio::task::spawn_blocking(move || {
        audio::split_for_upload(&source, &ext, &out_dir, limit, chunk_secs)
    })
    .await
    .map_err(|e| JobError::transient("audio decoding", e))?
    .map_err(|e| match e {
        AudioError::Undecodable(_) => JobError::Permanent(format!(
            "transcription: the audio is over the provider's {limit}-byte upload limit and {e}"
        )),
        AudioError::Io(_) => JobError::transient("transcription", e),
    })?;
    tracing::info!(
        chunks = split.chunks.len(),
        duration_ms = split.duration_ms,
        "audio cut into chunks"
    );
    let total = split.chunks.len() as i64;
    note_progress(env, job, session, 0, total).await;
    let mut segments = Vec::new();
    for (index, chunk) in split.chunks.iter().enumerate() {
        segments.extend(transcribe_chunk(env, job, session, index as i64, chunk).await?);
        note_progress(env, job, session, index as i64 + 1, total).await;
    }
    let mut transcript = Transcript::from_segments(segments);
    transcript.duration_ms = Some(split.duration_ms);
    Ok(transcript)
}

/// Records and announces (live events) that `done` of `total` chunks are transcribed. Best
/// effort: progress is for watching, the chunks themselves are kept by [`transcribe_chunk`].
async fn note_progress(env: &JobEnv, job: &JobRow, session: &SessionRow, done: i64, total: i64) {
    match db::sessions::note_chunks(&env.db, &session.id, &job.id, done, total).await {
        Ok(()) => {
            let subject = tend_shared::events::Subject::Session(session.id.clone());
            env.events.publish_state(&env.db, &subject).await;
        }
        Err(err) => tracing::warn!(error = %err, "chunk progress not recorded"),
    }
}

/// One chunk's segments: kept from an earlier attempt if it cut the same chunk, else
/// transcribed now (and kept, so a later failure does not pay for this chunk again).
async fn transcribe_chunk(
    env: &JobEnv,
    job: &JobRow,
    session: &SessionRow,
    index: i64,
    chunk: &ChunkFile,
) -> Result<Vec<Segment>, JobError> {
    let kept = db::chunks::transcribed_chunk(&env.db, &session.id, index)
        .await
        .map_err(|e| JobError::transient("database", e))?;
    if let Some(kept) = kept
        && kept.offset_ms == chunk.offset_ms
        && kept.duration_ms == chunk.duration_ms
        && let Ok(segments) = serde_json::from_str::<Vec<Segment>>(&kept.segments)
    {
        tracing::info!(
            chunk = index,
            "chunk transcribed by an earlier attempt; reused"
        );
        return Ok(segments);
    }
    let audio = read(&chunk.path).await?;
    let name = chunk
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("chunk.wav")
        .to_owned();
    let answer = env.provider.transcribe(audio, &name).await?;
    record_usage(
        env,
        job,
        Some(&session.id),
        transcription_usage(env, chunk.duration_ms),
    )
    .await;
    let segments = segments_of(answer, chunk.offset_ms, chunk.duration_ms);
    let row = ChunkRow {
        offset_ms: chunk.offset_ms,
        duration_ms: chunk.duration_ms,
        segments: serde_json::to_string(&segments)
            .map_err(|e| JobError::permanent("encoding segments", e))?,
    };
    if let Err(err) = db::chunks::save_chunk(&env.db, &session.id, index, &row).await {
        tracing::warn!(error = %err, "could not keep a transcribed chunk");
    }
    Ok(segments)
}

async fn read(path: &std::path::Path) -> Result<Bytes, JobError> {
    tokio::fs::read(path)
        .await
        .map(Bytes::from)
        .map_err(|e| JobError::transient("reading audio", e))
}

/// The answer's audio length, or the chunk's when the server gives none.
fn answer_duration_ms(answer: &TranscriptionAnswer, fallback_ms: i64) -> i64 {
    answer
        .duration
        .map(|secs| (secs * 1000.0).round() as i64)
        .or_else(|| {
            answer
                .segments
                .as_ref()
                .and_then(|s| s.last())
                .map(|s| (s.end * 1000.0).round() as i64)
        })
        .unwrap_or(fallback_ms)
}

/// The answer's segments shifted to the recording's time line (one segment spanning the
/// chunk when the server gave only text).
fn segments_of(answer: TranscriptionAnswer, offset_ms: i64, duration_ms: i64) -> Vec<Segment> {
    match answer.segments {
        Some(segments) if !segments.is_empty() => segments
            .into_iter()
            .map(|s| Segment {
                start_ms: offset_ms + (s.start * 1000.0).round() as i64,
                end_ms: offset_ms + (s.end * 1000.0).round() as i64,
                text: s.text.trim().to_owned(),
            })
            .collect(),
        _ if answer.text.trim().is_empty() => Vec::new(),
        _ => vec![Segment {
            start_ms: offset_ms,
            end_ms: offset_ms + duration_ms,
            text: answer.text.trim().to_owned(),
        }],
    }
}

/// The usage row of one transcription request.
fn transcription_usage(env: &JobEnv, audio_ms: i64) -> UsageRow {
    UsageRow {
        stage: Stage::Transcription.as_str().into(),
        model: env.provider.settings.transcription_model.clone(),
        audio_ms,
        prompt_tokens: 0,
        completion_tokens: 0,
        cost_micro_usd: env.provider.audio_cost(audio_ms),
        created_at: db::now_ms(),
    }
}
