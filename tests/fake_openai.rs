//! A fake OpenAI-compatible server for the tests and benchmarks: it speaks the wire format of
//! `POST /v1/audio/transcriptions` (multipart) and `POST /v1/chat/completions` (JSON), checks
//! what the client sends (key, model, multipart fields, JSON schema), records every request,
//! and answers as scripted: normally, slowly, with an error status (and `Retry-After`), with
//! a broken body, or with notes that do not fit the schema.

use std::{
    collections::VecDeque,
    io::Cursor,
    sync::{Arc, Mutex},
    time::Duration,
};

use poem::{
    EndpointExt, Response, Route, Server, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    post,
    web::{Data, Json, Multipart},
};
use serde_json::{Value, json};

/// The API key the fake accepts.
pub const API_KEY: &str = "sk-test-fake-key";
/// The models the fake expects (what the tests configure).
pub const TRANSCRIPTION_MODEL: &str = "whisper-1";
/// See [`TRANSCRIPTION_MODEL`].
pub const CHAT_MODEL: &str = "gpt-4o-mini";
/// Length of each segment the fake returns.
pub const SEGMENT_SECS: f64 = 30.0;

/// How the next request to an endpoint is answered.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A proper answer.
    Ok,
    /// An error status, with `Retry-After` seconds if given.
    Status(u16, Option<u64>),
    /// `200` with a body that is not JSON at all.
    BrokenBody,
    /// A chat answer whose content does not fit the notes schema.
    InvalidNotes,
    /// A proper answer after a delay.
    Slow(Duration),
    /// `200` with this message content (any JSON the test builds).
    Content(String),
}

/// One transcription request as received.
#[derive(Debug, Clone)]
pub struct TranscriptionCall {
    /// The uploaded file's name.
    pub file_name: String,
    /// Its size.
    pub size: usize,
    /// Its duration, for WAV files.
    pub wav_seconds: Option<f64>,
    /// The multipart text fields.
    pub fields: Vec<(String, String)>,
    /// When it arrived.
    pub received_at: std::time::Instant,
}

#[derive(Default)]
struct State {
    transcription_script: VecDeque<Reply>,
    chat_script: VecDeque<Reply>,
    transcriptions: Vec<TranscriptionCall>,
    chats: Vec<Value>,
    violations: Vec<String>,
    /// Answers without a key, as a local server does.
    keyless: bool,
    /// Requests allowed in any 60 seconds, as a provider's rate limit ([`FakeOpenAi::limit_per_minute`]).
    per_minute: Option<usize>,
    /// When the requests it let through under that limit arrived.
    let_through: VecDeque<std::time::Instant>,
    /// When it answered 429 for the limit.
    limited: Vec<std::time::Instant>,
}

/// A running fake; stops when dropped.
pub struct FakeOpenAi {
    /// Base URL to put in `OPENAI_BASE_URL` (ends in `/v1`).
    pub url: String,
    state: Arc<Mutex<State>>,
    /// The largest file the fake accepts (413 above).
    pub max_upload_bytes: usize,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<State>>,
    max_upload_bytes: usize,
}

impl FakeOpenAi {
    /// Starts a fake with OpenAI's 25 MB upload limit.
    pub async fn start() -> Self {
        Self::start_with_limit(25 * 1024 * 1024).await
    }

    /// Starts a fake that answers 413 to files over `max_upload_bytes`.
    pub async fn start_with_limit(max_upload_bytes: usize) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind fake");
        let port = acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("tcp")
            .port();
        let app = Route::new()
            .at("/v1/audio/transcriptions", post(transcriptions))
            .at("/v1/chat/completions", post(chat))
            .data(Shared {
                state: state.clone(),
                max_upload_bytes,
            });
        let task = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        Self {
            url: format!("http://127.0.0.1:{port}/v1"),
            state,
            max_upload_bytes,
            task,
        }
    }

    /// The settings that point Tend at this fake.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("OPENAI_BASE_URL".into(), self.url.clone()),
            ("TRANSCRIPTION_MODEL".into(), TRANSCRIPTION_MODEL.into()),
            ("EXTRACTION_MODEL".into(), CHAT_MODEL.into()),
            // The fake answers as fast as it can: Tend's own limits (500 requests a minute by
            // default) stay out of the way unless a test sets them.
            (
                "PROVIDER_LIMITS".into(),
                format!("{CHAT_MODEL}=100000000,{TRANSCRIPTION_MODEL}=100000000"),
            ),
        ];
        if !self.state.lock().unwrap().keyless {
            env.push(("OPENAI_API_KEY".into(), API_KEY.into()));
        }
        env
    }

    /// From now on answers without a key, as a local OpenAI-compatible server does (and
    /// [`FakeOpenAi::env`] sets none).
    pub fn needs_no_key(&self) {
        self.state.lock().unwrap().keyless = true;
    }

    /// From now on lets at most `n` requests (of either kind) through in any 60 seconds and
    /// answers the rest `429` with `Retry-After`, as a provider's rate limit does.
    pub fn limit_per_minute(&self, n: usize) {
        self.state.lock().unwrap().per_minute = Some(n);
    }

    /// When each request the fake let through under its limit arrived.
    pub fn let_through(&self) -> Vec<std::time::Instant> {
        self.state
            .lock()
            .unwrap()
            .let_through
            .iter()
            .copied()
            .collect()
    }

    /// When each `429` for the limit was answered.
    pub fn limited(&self) -> Vec<std::time::Instant> {
        self.state.lock().unwrap().limited.clone()
    }

    /// Scripts the next transcription answers (then proper answers again).
    pub fn on_transcription(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state
            .lock()
            .unwrap()
            .transcription_script
            .extend(replies);
    }

    /// Scripts the next chat answers.
    pub fn on_chat(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().chat_script.extend(replies);
    }

    /// Every transcription request so far.
    pub fn transcriptions(&self) -> Vec<TranscriptionCall> {
        self.state.lock().unwrap().transcriptions.clone()
    }

    /// Every chat request body so far.
    pub fn chats(&self) -> Vec<Value> {
        self.state.lock().unwrap().chats.clone()
    }

    /// What the client sent wrong (empty when it spoke the API correctly).
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }
}

/// The notes the fake's model "writes".
pub fn sample_notes() -> Value {
    json!({
        "key_topics": ["sleep", "work stress", "breathing exercises"],
        "topic_summary": "The client described poor sleep linked to deadlines at work.",
        "strategies": ["box breathing", "a wind-down routine"],
        "action_items": ["keep a sleep diary", "try box breathing before bed", "book a follow-up"],
        "session_mood": "low",
        "mood_trajectory": "improving",
        "therapist_notes": "Engaged; insight into the link between stress and sleep.",
        "patient_summary": "You talked about your sleep and work. Try the breathing exercise each night.",
        "risk_flags": []
    })
}

fn error(status: u16, message: &str, retry_after: Option<u64>) -> Response {
    let mut resp = Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .body(
            json!({"error": {"message": message, "type": "fake_error", "param": null, "code": null}})
                .to_string(),
        );
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert("retry-after", secs.to_string().parse().unwrap());
    }
    resp
}

fn next(script: &mut VecDeque<Reply>) -> Reply {
    script.pop_front().unwrap_or(Reply::Ok)
}

/// Under a per-minute limit: `None` lets the request through (and counts it), `Some` is the
/// `429` to answer. Requests let through stay counted for a minute (a sliding window).
fn over_limit(state: &mut State) -> Option<Response> {
    let limit = state.per_minute?;
    let now = std::time::Instant::now();
    let minute = Duration::from_secs(60);
    let in_window = state
        .let_through
        .iter()
        .filter(|t| now.duration_since(**t) < minute)
        .count();
    if in_window < limit {
        state.let_through.push_back(now);
        return None;
    }
    state.limited.push(now);
    let oldest = state
        .let_through
        .iter()
        .find(|t| now.duration_since(**t) < minute)
        .copied()
        .unwrap_or(now);
    let wait = minute.saturating_sub(now.duration_since(oldest)).as_secs() + 1;
    Some(error(429, "Rate limit reached for requests", Some(wait)))
}

fn check_key(req: &poem::Request, state: &mut State) -> bool {
    let ok = state.keyless
        || req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {API_KEY}"));
    if !ok {
        state.violations.push("missing or wrong API key".into());
    }
    ok
}

#[handler]
async fn transcriptions(
    req: &poem::Request,
    shared: Data<&Shared>,
    mut form: Multipart,
) -> Response {
    let mut fields = Vec::new();
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let file_name = field.file_name().unwrap_or_default().to_owned();
            let bytes = field.bytes().await.unwrap_or_default();
            file = Some((file_name, bytes));
        } else {
            fields.push((name, field.text().await.unwrap_or_default()));
        }
    }
    let wav_seconds;
    let reply = {
        let mut state = shared.state.lock().unwrap();
        if !check_key(req, &mut state) {
            return error(401, "Incorrect API key provided.", None);
        }
        if let Some(limited) = over_limit(&mut state) {
            return limited;
        }
        let field = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        let mut problems = Vec::new();
        if field("model") != Some(TRANSCRIPTION_MODEL) {
            problems.push(format!("model is {:?}", field("model")));
        }
        if field("response_format") != Some("verbose_json") {
            problems.push(format!("response_format is {:?}", field("response_format")));
        }
        if field("timestamp_granularities[]") != Some("segment") {
            problems.push("segment timestamps were not asked for".to_owned());
        }
        match &file {
            None => problems.push("no file part".into()),
            Some((name, _)) if !name.contains('.') => {
                problems.push(format!("file name {name:?} has no extension"))
            }
            _ => {}
        }
        if !problems.is_empty() {
            state.violations.extend(problems.iter().cloned());
            return error(400, &problems.join("; "), None);
        }
        let (file_name, bytes) = file.as_ref().unwrap();
        wav_seconds = hound::WavReader::new(Cursor::new(bytes.as_slice()))
            .ok()
            .map(|r| r.duration() as f64 / r.spec().sample_rate as f64);
        state.transcriptions.push(TranscriptionCall {
            file_name: file_name.clone(),
            size: bytes.len(),
            wav_seconds,
            fields: fields.clone(),
            received_at: std::time::Instant::now(),
        });
        next(&mut state.transcription_script)
    };
    let (file_name, bytes) = file.unwrap();
    if bytes.len() > shared.max_upload_bytes {
        return error(
            413,
            &format!(
                "Maximum content size limit ({}) exceeded",
                shared.max_upload_bytes
            ),
            None,
        );
    }
    match reply {
        Reply::Status(code, after) => return error(code, "scripted failure", after),
        Reply::BrokenBody => {
            return Response::builder()
                .content_type("application/json")
                .body("{not json");
        }
        Reply::Slow(delay) => tokio::time::sleep(delay).await,
        Reply::Ok | Reply::InvalidNotes | Reply::Content(_) => {}
    }
    // WAV: its real length; anything else: as if it were 128 kbit/s.
    let duration = wav_seconds.unwrap_or(bytes.len() as f64 * 8.0 / 128_000.0);
    let mut segments = Vec::new();
    let mut start = 0.0;
    while start < duration {
        let end = (start + SEGMENT_SECS).min(duration);
        segments.push(json!({
            "id": segments.len(), "seek": 0, "start": start, "end": end,
            "text": format!(" {file_name} segment {}.", segments.len()),
            "tokens": [], "temperature": 0.0, "avg_logprob": -0.2,
            "compression_ratio": 1.2, "no_speech_prob": 0.01
        }));
        start = end;
    }
    let text = segments
        .iter()
        .map(|s| s["text"].as_str().unwrap().trim().to_owned())
        .collect::<Vec<_>>()
        .join(" ");
    poem::IntoResponse::into_response(Json(json!({
        "task": "transcribe", "language": "english", "duration": duration,
        "text": text, "segments": segments,
        "usage": {"type": "duration", "seconds": duration.ceil() as u64}
    })))
}

#[handler]
async fn chat(req: &poem::Request, shared: Data<&Shared>, body: Json<Value>) -> Response {
    let body = body.0;
    let reply = {
        let mut state = shared.state.lock().unwrap();
        if !check_key(req, &mut state) {
            return error(401, "Incorrect API key provided.", None);
        }
        if let Some(limited) = over_limit(&mut state) {
            return limited;
        }
        let mut problems = Vec::new();
        if body["model"] != CHAT_MODEL {
            problems.push(format!("model is {}", body["model"]));
        }
        if body["messages"].as_array().is_none_or(|m| m.is_empty()) {
            problems.push("no messages".into());
        }
        let format = &body["response_format"];
        if format["type"] != "json_schema" || format["json_schema"]["strict"] != true {
            problems.push("no strict json_schema response format".into());
        }
        let required: Vec<&str> = format["json_schema"]["schema"]["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let notes_schema = format["json_schema"]["name"] == "session_notes";
        for key in sample_notes()
            .as_object()
            .unwrap()
            .keys()
            .filter(|_| notes_schema)
        {
            if !required.contains(&key.as_str()) {
                problems.push(format!("the schema does not require {key}"));
            }
        }
        if !problems.is_empty() {
            state.violations.extend(problems.iter().cloned());
            return error(400, &problems.join("; "), None);
        }
        state.chats.push(body.clone());
        next(&mut state.chat_script)
    };
    let content = match reply {
        Reply::Status(code, after) => return error(code, "scripted failure", after),
        Reply::BrokenBody => {
            return Response::builder()
                .content_type("application/json")
                .body("{not json");
        }
        Reply::InvalidNotes => json!({"key_topics": ["only one"], "mood": "fine"}).to_string(),
        Reply::Slow(delay) => {
            tokio::time::sleep(delay).await;
            sample_notes().to_string()
        }
        Reply::Ok => sample_notes().to_string(),
        Reply::Content(content) => content,
    };
    let prompt_chars: usize = body["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| m["content"].as_str().map_or(0, str::len))
                .sum()
        })
        .unwrap_or(0);
    poem::IntoResponse::into_response(Json(json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
        "model": CHAT_MODEL,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content, "refusal": null}}],
        "usage": {"prompt_tokens": prompt_chars / 4 + 1, "completion_tokens": 150,
                  "total_tokens": prompt_chars / 4 + 151}
    })))
}

/// Test audio: a WAV of `secs` seconds (a tone, then silence, repeated).
pub fn wav(secs: f64, rate: u32, channels: u16) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut out = Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        let frames = (rate as f64 * secs) as usize;
        for i in 0..frames {
            let t = i as f64 / rate as f64;
            let v = if t % 2.0 < 1.5 {
                (t * 330.0 * std::f64::consts::TAU).sin() * 0.4
            } else {
                0.0
            };
            for _ in 0..channels {
                w.write_sample((v * i16::MAX as f64) as i16).unwrap();
            }
        }
        w.finalize().unwrap();
    }
    out.into_inner()
}

/// Test audio: an MP3 of silent MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz) of about
/// `secs` seconds, about 1 MB per minute, as a real recorder's file would be.
pub fn silent_mp3(secs: f64) -> Vec<u8> {
    // 1152 samples per frame at 44.1 kHz; 417 bytes per frame at 128 kbit/s (no padding).
    const FRAME: usize = 417;
    let frames = (secs * 44_100.0 / 1152.0).ceil() as usize;
    let mut out = Vec::with_capacity(frames * FRAME + 10);
    // An empty ID3v2 tag, as most recorders write one.
    out.extend_from_slice(b"ID3\x04\x00\x00\x00\x00\x00\x00");
    for _ in 0..frames {
        // Sync, MPEG-1, Layer III, no CRC; 128 kbit/s, 44.1 kHz, no padding; mono.
        out.extend_from_slice(&[0xFF, 0xFB, 0x90, 0xC4]);
        // Zeroed side information and main data decode as silence.
        out.extend(std::iter::repeat_n(0u8, FRAME - 4));
    }
    out
}
