//! `PROVIDER_LIMITS`: requests and tokens per minute for each provider model, shared by every
//! worker replica (see [`crate::throttle`]).

use anyhow::{Context, bail};

/// One model's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLimit {
    /// The model's name, as the provider calls it (`gpt-4o-mini`).
    pub model: String,
    /// Requests per minute.
    pub requests_per_minute: u64,
    /// Tokens per minute (prompt and completion), when the provider counts them.
    pub tokens_per_minute: Option<u64>,
}

/// The limits of every model: built in, with `PROVIDER_LIMITS` on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLimits(Vec<ModelLimit>);

/// OpenAI's published usage tier 1 (the tier of a new paying account): a model not listed
/// gets [`UNLISTED_RPM`] and no token limit.
const TIER_1: [(&str, u64, Option<u64>); 7] = [
    ("gpt-4o-mini", 500, Some(200_000)),
    ("gpt-4o", 500, Some(30_000)),
    ("gpt-4.1-mini", 500, Some(200_000)),
    ("gpt-4.1", 500, Some(30_000)),
    ("whisper-1", 500, None),
    ("gpt-4o-transcribe", 500, Some(10_000)),
    ("gpt-4o-mini-transcribe", 500, Some(50_000)),
];

/// Requests per minute of a model neither built in nor configured.
const UNLISTED_RPM: u64 = 500;

impl ModelLimits {
    /// The built-in table, overridden model by model by `PROVIDER_LIMITS`: a comma-separated
    /// list of `model=requests` or `model=requests/tokens` per minute, e.g.
    /// `gpt-4o-mini=5000/2000000,whisper-1=100`.
    pub fn parse(setting: Option<&str>) -> anyhow::Result<Self> {
        let mut limits: Vec<ModelLimit> = TIER_1
            .iter()
            .map(|(model, rpm, tpm)| ModelLimit {
                model: (*model).into(),
                requests_per_minute: *rpm,
                tokens_per_minute: *tpm,
            })
            .collect();
        for entry in setting
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let limit = parse_entry(entry).with_context(|| {
                format!("PROVIDER_LIMITS: {entry:?} is not model=requests[/tokens] per minute")
            })?;
            limits.retain(|l| l.model != limit.model);
            limits.push(limit);
        }
        Ok(Self(limits))
    }

    /// The limits of `model`.
    pub fn of(&self, model: &str) -> ModelLimit {
        self.0
            .iter()
            .find(|l| l.model == model)
            .cloned()
            .unwrap_or_else(|| ModelLimit {
                model: model.into(),
                requests_per_minute: UNLISTED_RPM,
                tokens_per_minute: None,
            })
    }
}

fn parse_entry(entry: &str) -> anyhow::Result<ModelLimit> {
    let (model, figures) = entry.split_once('=').context("no '='")?;
    let (requests, tokens) = match figures.split_once('/') {
        Some((r, t)) => (r, Some(t)),
        None => (figures, None),
    };
    let requests: u64 = requests.trim().parse().context("requests")?;
    let tokens: Option<u64> = tokens
        .map(|t| t.trim().parse())
        .transpose()
        .context("tokens")?;
    if model.trim().is_empty() || requests == 0 || tokens == Some(0) {
        bail!("a model name and limits above zero");
    }
    Ok(ModelLimit {
        model: model.trim().into(),
        requests_per_minute: requests,
        tokens_per_minute: tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_overrides_the_tier_table_model_by_model() {
        let limits = ModelLimits::parse(Some("gpt-4o-mini=60/1000, my-local=5")).unwrap();
        assert_eq!(limits.of("gpt-4o-mini").requests_per_minute, 60);
        assert_eq!(limits.of("gpt-4o-mini").tokens_per_minute, Some(1000));
        assert_eq!(limits.of("my-local").tokens_per_minute, None);
        assert_eq!(limits.of("whisper-1").requests_per_minute, 500);
        assert_eq!(limits.of("unknown").requests_per_minute, UNLISTED_RPM);
        for bad in ["gpt-4o-mini", "x=0", "x=1/0", "=5", "x=five"] {
            assert!(ModelLimits::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
