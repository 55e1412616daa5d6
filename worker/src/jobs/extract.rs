//! Extracts structured notes from a session's transcript with a chat model answering in a
//! JSON schema ([`Notes::json_schema`]). An answer that does not fit is retried once, at
//! temperature 0, with a message saying what was wrong; a second misfit fails the stage.
//! A transcript over `EXTRACTION_CONTEXT_TOKENS` is cut into parts at line boundaries, each
//! part extracted, and the partial notes combined by one more call: nothing is truncated.

use serde_json::{Value, json};
use tend_shared::{
    db::{self, jobs::JobRow, metrics::MetricsRow, sessions::SessionRow, usage::UsageRow},
    jobs::{JobError, JobTx},
    sessions::{Notes, Segment, Stage},
};

use super::{begin_session_stage, record_usage, session_attempt_failed};
use crate::{
    env::JobEnv,
    job::{Job, JobCtx},
    provider::ChatAnswer,
};
use tend_shared::jobs::kinds::extract::ExtractNotes;

impl Job for ExtractNotes {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        run(ctx.env, ctx.job, self).await
    }

    async fn on_retry(&self, ctx: &JobCtx<'_>, error: &str) {
        session_attempt_failed(ctx.env, ctx.job, &self.session_id, error).await;
    }

    async fn on_dead(&self, ctx: &JobCtx<'_>, tx: &mut JobTx, error: &str) -> sqlx::Result<()> {
        super::session_stage_dead(tx, ctx.job, &self.session_id, Stage::Extraction, error).await
    }
}

const SYSTEM_PROMPT: &str = "You are a clinical documentation assistant for a licensed \
practitioner (therapist or coach). You read the transcript of one session and write structured \
notes. Be factual and concise; use only what the transcript supports, never invent details. \
key_topics: 3 to 7 short labels. topic_summary: one paragraph on what was discussed. \
strategies: coping strategies or techniques discussed or practised. action_items: concrete \
next steps agreed. session_mood: the patient's overall mood. mood_trajectory: how it moved \
during the session. therapist_notes: clinical observations for the practitioner. \
patient_summary: a warm, plain-language summary addressed to the patient as 'you', without \
clinical jargon. risk_flags: any sign of risk to self or others, abuse or crisis, quoted \
briefly; an empty list when there is none. Answer with JSON only.";

const PART_PROMPT: &str = "The transcript is long and is given in parts. This message holds \
part {part} of {parts}. Write the notes for this part only.";

const COMBINE_PROMPT: &str = "You are given the notes written for consecutive parts of one \
session, as a JSON array in order. Combine them into the notes of the whole session: merge \
and deduplicate topics (3 to 7 in all), strategies and action items; describe the mood and \
its trajectory over the whole session; keep every risk flag.";

/// Tokens kept free for the instructions and the answer.
const RESERVED_TOKENS: usize = 3_000;

/// Runs the extraction stage of one session.
async fn run(env: &JobEnv, job: &JobRow, payload: &ExtractNotes) -> Result<(), JobError> {
    let session_id = payload.session_id.to_string();
    let db_err = |e: sqlx::Error| JobError::transient("database", e);
    let Some(session) = begin_session_stage(env, job, &session_id, Stage::Extraction).await? else {
        return Ok(());
    };
    let texts = db::sessions::texts(&env.db, &session_id)
        .await
        .map_err(db_err)?
        .ok_or_else(|| JobError::Permanent("the session was deleted".into()))?;
    let transcript = texts.transcript.unwrap_or_default();
    if transcript.trim().is_empty() {
        return Err(JobError::Permanent(
            "extraction: the transcript is empty (no speech was recognised)".into(),
        ));
    }
    let segments: Vec<Segment> = texts
        .segments
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let lines = transcript_lines(&transcript, &segments);

    let extractor = Extractor {
        env,
        job,
        session: &session,
    };
    let budget = (env.provider.settings.extraction_context_tokens as usize)
        .saturating_sub(RESERVED_TOKENS)
        .max(500);
    let parts = split_into_parts(&lines, budget);
    let notes = if parts.len() == 1 {
        extractor.extract(vec![user(&parts[0])]).await?
    } else {
        tracing::info!(parts = parts.len(), "long transcript extracted in parts");
        let mut partial = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let header = PART_PROMPT
                .replace("{part}", &(i + 1).to_string())
                .replace("{parts}", &parts.len().to_string());
            partial.push(extractor.extract(vec![system(&header), user(part)]).await?);
        }
        extractor.combine(partial, budget).await?
    };

    let notes_json =
        serde_json::to_string(&notes).map_err(|e| JobError::permanent("encoding notes", e))?;
    let metrics = MetricsRow {
        session_id: session.id.clone(),
        practitioner_id: session.practitioner_id.clone(),
        patient_id: session.patient_id.clone(),
        session_date: session.recorded_at.unwrap_or(session.created_at),
        duration_ms: session.duration_ms,
        mood_score: notes.session_mood.score(),
        mood_trajectory: notes.mood_trajectory.as_str().into(),
        topics: serde_json::to_string(&notes.key_topics).unwrap_or_else(|_| "[]".into()),
        strategy_count: notes.strategies.len() as i64,
        action_item_count: notes.action_items.len() as i64,
        risk_flag_count: notes.risk_flags.len() as i64,
    };
    let mut tx = env.db.begin().await.map_err(db_err)?;
    if !db::sessions::finish_extraction(&mut tx, &session_id, &notes_json)
        .await
        .map_err(db_err)?
    {
        tracing::info!("session changed during extraction; result dropped");
        return Ok(());
    }
    db::metrics::upsert(&mut tx, &metrics)
        .await
        .map_err(db_err)?;
    tx.commit().await.map_err(db_err)?;
    tracing::info!(
        topics = notes.key_topics.len(),
        risk_flags = notes.risk_flags.len(),
        "notes stored"
    );
    Ok(())
}

struct Extractor<'a> {
    env: &'a JobEnv,
    job: &'a JobRow,
    session: &'a SessionRow,
}

impl Extractor<'_> {
    /// One extraction: the instructions, then `messages`; one corrective retry.
    async fn extract(&self, messages: Vec<Value>) -> Result<Notes, JobError> {
        let mut conversation = vec![system(SYSTEM_PROMPT)];
        conversation.extend(messages);
        let first = self.call(&conversation, 0.2).await?;
        let reason = match check(&first) {
            Ok(notes) => return Ok(notes),
            Err(reason) => reason,
        };
        tracing::warn!(%reason, "the model's answer did not fit the schema; asking again");
        conversation.push(json!({"role": "assistant", "content": first.content}));
        conversation.push(user(&format!(
            "Your answer was not valid: {reason}. Answer again with only a JSON object that \
             matches the schema exactly."
        )));
        let second = self.call(&conversation, 0.0).await?;
        check(&second).map_err(|reason| {
            JobError::Permanent(format!(
                "extraction: the model's answer did not match the notes schema, twice ({reason})"
            ))
        })
    }

    /// Combines partial notes, in groups that fit the budget, until one remains.
    async fn combine(&self, mut partial: Vec<Notes>, budget: usize) -> Result<Notes, JobError> {
        while partial.len() > 1 {
            let mut groups: Vec<Vec<Notes>> = vec![Vec::new()];
            let mut used = 0;
            for notes in partial {
                let size = estimate_tokens(&serde_json::to_string(&notes).unwrap_or_default());
                let group = groups.last_mut().expect("never empty");
                if !group.is_empty() && (used + size > budget || group.len() >= 16) {
                    groups.push(Vec::new());
                    used = 0;
                }
                used += size;
                groups.last_mut().expect("never empty").push(notes);
            }
            let mut combined = Vec::with_capacity(groups.len());
            for group in groups {
                if group.len() == 1 {
                    combined.extend(group);
                    continue;
                }
                let input = serde_json::to_string(&group)
                    .map_err(|e| JobError::permanent("encoding partial notes", e))?;
                combined.push(
                    self.extract(vec![system(COMBINE_PROMPT), user(&input)])
                        .await?,
                );
            }
            partial = combined;
        }
        partial
            .pop()
            .ok_or_else(|| JobError::Permanent("extraction: nothing to combine".into()))
    }

    async fn call(&self, messages: &[Value], temperature: f64) -> Result<ChatAnswer, JobError> {
        let settings = &self.env.provider.settings;
        let request = json!({
            "model": settings.extraction_model,
            "temperature": temperature,
            "messages": messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "session_notes",
                    "strict": true,
                    "schema": Notes::json_schema(),
                }
            }
        });
        let answer = self.env.provider.chat(request).await?;
        let usage = UsageRow {
            stage: Stage::Extraction.as_str().into(),
            model: settings.extraction_model.clone(),
            audio_ms: 0,
            prompt_tokens: answer.prompt_tokens,
            completion_tokens: answer.completion_tokens,
            cost_micro_usd: self
                .env
                .provider
                .token_cost(answer.prompt_tokens, answer.completion_tokens),
            created_at: db::now_ms(),
        };
        record_usage(self.env, self.job, Some(&self.session.id), usage).await;
        Ok(answer)
    }
}

/// Checks an answer; the reason never quotes it (it is patient text).
fn check(answer: &ChatAnswer) -> Result<Notes, String> {
    if answer.refusal.is_some() {
        return Err("the model refused to answer".into());
    }
    if answer.finish_reason.as_deref() == Some("length") {
        return Err("the answer was cut off at the length limit".into());
    }
    Notes::from_model_answer(&answer.content)
}

fn system(content: &str) -> Value {
    json!({"role": "system", "content": content})
}

fn user(content: &str) -> Value {
    json!({"role": "user", "content": content})
}

/// The transcript as lines, with `[mm:ss]` times when segments exist.
fn transcript_lines(transcript: &str, segments: &[Segment]) -> Vec<String> {
    if segments.is_empty() {
        return transcript.lines().map(str::to_owned).collect();
    }
    segments
        .iter()
        .map(|s| {
            let secs = s.start_ms / 1000;
            format!("[{:02}:{:02}] {}", secs / 60, secs % 60, s.text)
        })
        .collect()
}

/// A rough token count: about four characters per token for English prose.
fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// Cuts lines into parts of at most `budget` tokens each, at line boundaries (a single line
/// longer than the budget is cut at character boundaries).
fn split_into_parts(lines: &[String], budget: usize) -> Vec<String> {
    let max_chars = budget * 4;
    let mut parts = Vec::new();
    let mut current = String::new();
    for line in lines {
        let pieces: Vec<String> = if line.chars().count() > max_chars {
            line.chars()
                .collect::<Vec<_>>()
                .chunks(max_chars)
                .map(|c| c.iter().collect())
                .collect()
        } else {
            vec![line.clone()]
        };
        for piece in pieces {
            if !current.is_empty()
                && current.chars().count() + piece.chars().count() + 1 > max_chars
            {
                parts.push(std::mem::take(&mut current));
            }
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(&piece);
        }
    }
    if !current.is_empty() || parts.is_empty() {
        parts.push(current);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_transcripts_are_cut_at_lines_without_losing_any() {
        let lines: Vec<String> = (0..100)
            .map(|i| format!("line {i:03} {}", "x".repeat(30)))
            .collect();
        let parts = split_into_parts(&lines, 100);
        assert!(parts.len() > 5);
        assert!(parts.iter().all(|p| p.chars().count() <= 400));
        assert_eq!(parts.join("\n"), lines.join("\n"));
        assert_eq!(split_into_parts(&lines[..2], 100).len(), 1);
    }

    #[test]
    fn segments_carry_their_time() {
        let segments = vec![Segment {
            start_ms: 125_000,
            end_ms: 126_000,
            text: "hello".into(),
        }];
        assert_eq!(transcript_lines("hello", &segments), vec!["[02:05] hello"]);
    }
}
