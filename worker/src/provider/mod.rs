//! The OpenAI-compatible provider: audio transcription and chat completions, through
//! async-openai, with every failure sorted into "retry later" or "give up now".
//!
//! async-openai's own retry layer is replaced by `StatusCheck`, a tower service that sends
//! each request once and turns an error status into a [`HttpFailure`] carrying the status and
//! `Retry-After`: retries belong to the job ledger (backoff, attempt limit, visibility), and
//! a 429's `Retry-After` must reach it. Response bodies are never logged (they hold patient
//! text); async-openai's own log lines are filtered out for the same reason (telemetry).

mod limits;
mod status;

use std::time::Duration;

use async_openai::{
    Client,
    config::OpenAIConfig,
    error::OpenAIError,
    types::audio::{
        AudioInput, AudioResponseFormat, CreateTranscriptionRequest, TimestampGranularity,
    },
};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use tend_shared::{config::ProviderSettings, jobs::JobError, throttle::Throttle};

pub use limits::ProviderLimits;
pub use status::HttpFailure;
use status::StatusCheck;

/// A client for the configured provider.
#[derive(Clone)]
pub struct Provider {
    client: Option<Client<OpenAIConfig>>,
    /// Models, limits and prices.
    pub settings: ProviderSettings,
    /// The rate limits every replica shares.
    limits: ProviderLimits,
}

/// One transcription answer, read leniently: servers that copy OpenAI's API do not all send
/// every field of `verbose_json`.
#[derive(Debug, Clone, Deserialize)]
pub struct TranscriptionAnswer {
    /// The whole text.
    pub text: String,
    /// The audio's length in seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Timed segments.
    #[serde(default)]
    pub segments: Option<Vec<TranscriptionSegment>>,
}

/// A timed segment of a transcription answer.
#[derive(Debug, Clone, Deserialize)]
pub struct TranscriptionSegment {
    /// Start in seconds from the start of the uploaded audio.
    pub start: f64,
    /// End in seconds.
    pub end: f64,
    /// What was said.
    pub text: String,
}

/// A chat completion answer: the first choice's text and the token counts.
#[derive(Debug, Clone)]
pub struct ChatAnswer {
    /// The message content (empty when the model refused).
    pub content: String,
    /// Why generation stopped (`stop`, `length`, ...).
    pub finish_reason: Option<String>,
    /// The model's refusal, if it refused.
    pub refusal: Option<String>,
    /// Prompt tokens billed.
    pub prompt_tokens: i64,
    /// Completion tokens billed.
    pub completion_tokens: i64,
}

#[derive(Deserialize)]
struct RawChat {
    choices: Vec<RawChoice>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize)]
struct RawChoice {
    message: RawMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: i64,
}

impl Provider {
    /// Builds the client (no key for OpenAI's own API: every call fails permanently, saying
    /// so), its calls limited through `throttle`.
    pub fn new(settings: &ProviderSettings, throttle: Throttle) -> anyhow::Result<Self> {
        let client = match settings.call_key() {
            Some(key) => {
                let http = reqwest::Client::builder()
                    .timeout(settings.request_timeout)
                    .connect_timeout(Duration::from_secs(10))
                    .build()?;
                let config = OpenAIConfig::new()
                    .with_api_base(settings.base_url.clone())
                    .with_api_key(key);
                Some(Client::with_config(config).with_http_service(StatusCheck::new(http)))
            }
            None => None,
        };
        Ok(Self {
            client,
            settings: settings.clone(),
            limits: ProviderLimits::new(throttle, settings.limits.clone()),
        })
    }

    fn client(&self) -> Result<&Client<OpenAIConfig>, JobError> {
        self.client.as_ref().ok_or_else(|| {
            JobError::Permanent(
                "OPENAI_API_KEY is not set: the provider cannot be called (set it and retry)"
                    .into(),
            )
        })
    }

    /// The estimated cost of transcribing `audio_ms`, in millionths of a dollar.
    pub fn audio_cost(&self, audio_ms: i64) -> i64 {
        let minutes = audio_ms as f64 / 60_000.0;
        (minutes * self.settings.price_audio_per_minute * 1e6).round() as i64
    }

    /// The estimated cost of a chat call, in millionths of a dollar.
    pub fn token_cost(&self, prompt_tokens: i64, completion_tokens: i64) -> i64 {
        (prompt_tokens as f64 * self.settings.price_prompt_per_mtok
            + completion_tokens as f64 * self.settings.price_completion_per_mtok)
            .round() as i64
    }

    /// Transcribes one audio file (at most the provider's upload limit).
    pub async fn transcribe(
        &self,
        audio: Bytes,
        file_name: &str,
    ) -> Result<TranscriptionAnswer, JobError> {
        let request = CreateTranscriptionRequest {
            file: AudioInput::from_bytes(file_name.to_owned(), audio),
            model: self.settings.transcription_model.clone(),
            response_format: Some(AudioResponseFormat::VerboseJson),
            timestamp_granularities: Some(vec![TimestampGranularity::Segment]),
            temperature: Some(0.0),
            ..Default::default()
        };
        let client = self.client()?;
        let model = self.settings.transcription_model.clone();
        self.limits.admit(&model, None).await?;
        let answer = client
            .audio()
            .transcription()
            .create_verbose_json_byot(request)
            .await;
        match answer {
            Ok(answer) => Ok(answer),
            Err(err) => Err(self.failed("transcription", &model, err).await),
        }
    }

    /// Sends one chat completion request (a JSON body in OpenAI's format).
    pub async fn chat(&self, request: Value) -> Result<ChatAnswer, JobError> {
        self.chat_for("extraction", request).await
    }

    /// One chat completion for `stage` (named in failure messages).
    pub async fn chat_for(&self, stage: &str, request: Value) -> Result<ChatAnswer, JobError> {
        let client = self.client()?;
        let model = request["model"]
            .as_str()
            .unwrap_or(&self.settings.extraction_model)
            .to_owned();
        let turn = self
            .limits
            .admit(&model, Some(estimated_tokens(&request)))
            .await?;
        let raw: RawChat = match client.chat().create_byot(request).await {
            Ok(raw) => raw,
            Err(err) => {
                // Nothing billed: the estimate goes back.
                if let Some(turn) = turn {
                    self.limits.settle(turn, 0).await;
                }
                return Err(self.failed(stage, &model, err).await);
            }
        };
        let usage = raw.usage.unwrap_or(RawUsage {
            prompt_tokens: 0,
            completion_tokens: 0,
        });
        if let Some(turn) = turn {
            let billed = usage.prompt_tokens + usage.completion_tokens;
            self.limits.settle(turn, billed.max(0) as u64).await;
        }
        let choice = raw.choices.into_iter().next().ok_or_else(|| {
            JobError::Transient(format!("{stage}: the provider answered without a choice"))
        })?;
        Ok(ChatAnswer {
            content: choice.message.content.unwrap_or_default(),
            finish_reason: choice.finish_reason,
            refusal: choice.message.refusal,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        })
    }
}

impl Provider {
    /// The job error for a failed call to `model`; a provider that asked us to wait pauses
    /// the model for every replica first.
    async fn failed(&self, stage: &str, model: &str, err: OpenAIError) -> JobError {
        if let Some(retry_after) = asked_to_wait(&err) {
            self.limits.pause(model, retry_after).await;
        }
        classify(stage, err)
    }
}

/// A chat request's tokens, before it is sent: about four bytes of JSON a token, plus the
/// most the answer may take (1,024 when the request does not say).
fn estimated_tokens(request: &Value) -> u64 {
    let prompt = request.to_string().len() as u64 / 4;
    let answer = request["max_completion_tokens"]
        .as_u64()
        .or_else(|| request["max_tokens"].as_u64())
        .unwrap_or(1024);
    prompt + answer
}

/// Whether the provider asked us to wait (a `429`, or a `503` with `Retry-After`), and how
/// long if it said.
fn asked_to_wait(err: &OpenAIError) -> Option<Option<Duration>> {
    let failure = match err {
        OpenAIError::Boxed(boxed) => boxed.downcast_ref::<HttpFailure>()?,
        _ => return None,
    };
    match failure.status {
        reqwest::StatusCode::TOO_MANY_REQUESTS => Some(failure.retry_after),
        reqwest::StatusCode::SERVICE_UNAVAILABLE if failure.retry_after.is_some() => {
            Some(failure.retry_after)
        }
        _ => None,
    }
}

/// Sorts a provider failure: 408/409/429/5xx, timeouts and broken connections are worth
/// retrying; other 4xx (bad request, bad key, unsupported audio) are not. Messages are ours
/// and name the status; the provider's own explanation is logged, never stored (it may quote
/// the request), and never the request or answer bodies.
fn classify(stage: &str, err: OpenAIError) -> JobError {
    match err {
        OpenAIError::Boxed(boxed) => match boxed.downcast::<HttpFailure>() {
            Ok(failure) => failure.into_job_error(stage),
            Err(other) => JobError::Transient(format!("{stage}: {other}")),
        },
        OpenAIError::Reqwest(e) if e.is_timeout() => {
            JobError::Transient(format!("{stage}: the provider did not answer in time"))
        }
        OpenAIError::Reqwest(e) => JobError::Transient(format!(
            "{stage}: could not reach the provider ({})",
            e.without_url()
        )),
        OpenAIError::ApiError(api) => {
            HttpFailure::new(api.status_code, None, api.api_error.message).into_job_error(stage)
        }
        // Not the parser's message: it quotes the answer it could not read.
        OpenAIError::JSONDeserialize(e, _body) => JobError::Transient(format!(
            "{stage}: the provider's answer was not the expected JSON (line {}, column {})",
            e.line(),
            e.column()
        )),
        OpenAIError::InvalidArgument(msg) => JobError::Permanent(format!("{stage}: {msg}")),
        other => JobError::Transient(format!("{stage}: {other}")),
    }
}
