//! `draft_mission`: the chat model drafts a training plan from a mission questionnaire, in a
//! strict JSON schema ([`Plan::json_schema`]). The first try runs at temperature 0.7; an
//! answer that misses the schema or breaks the questionnaire ([`Plan::check`]: hours, days,
//! dates, power) is asked again once at temperature 0 with what was wrong; a second misfit
//! fails the draft with the reason. The requester is mailed when the draft is ready or has
//! failed. Prompts and answers hold health and schedule details: never logged.

use chrono::{NaiveDate, Utc};
use serde_json::{Value, json};
use tend_shared::{
    db::{
        self,
        jobs::JobRow,
        missions::{DraftRow, DraftUsage},
        usage::UsageRow,
    },
    jobs::{JobError, JobTx},
    missions::{Plan, Questionnaire},
};
use uuid::Uuid;

use super::record_usage;
use crate::{
    env::JobEnv,
    job::{Job, JobCtx},
    provider::ChatAnswer,
};
use tend_shared::jobs::kinds::draft_mission::DraftMission;
use tend_shared::jobs::kinds::email::{EmailTemplate, SendEmail};

/// The provider-usage stage of these calls.
const STAGE: &str = "mission_draft";

const SYSTEM_PROMPT: &str = "You are an experienced cycling coach. From the client's \
questionnaire you write a structured training plan that leads to their event. Rules you must \
keep: one entry in `weeks` for every week from the week of today to the week of the event, in \
order, each with `week_start` its Monday (YYYY-MM-DD); sessions only on the client's training \
days, never before today and never after the event date; each full week's total duration \
within the client's weekly hours (the first and last week may be shorter, never longer); \
each session 15 to 600 minutes; target power ranges in watts between 40 % and 150 % of the \
client's FTP, low not above high; taper before the event. Fit the plan to the mission type, \
riding style and constraints. Answer with JSON only.";

impl Job for DraftMission {
    async fn run(&self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let env = ctx.env;
        let id = self.draft_id.to_string();
        let db_err = |e: sqlx::Error| JobError::transient("database", e);
        if !db::missions::begin_generating(&env.db, &id)
            .await
            .map_err(db_err)?
        {
            tracing::info!("draft deleted or finished already; nothing to do");
            return Ok(());
        }
        let draft = db::missions::find_draft(&env.db, &id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| JobError::Permanent("the draft was deleted".into()))?;
        let questionnaire: Questionnaire = serde_json::from_str(&draft.questionnaire)
            .map_err(|e| JobError::permanent("reading the questionnaire", e))?;
        let today = Utc::now().date_naive();
        let mut drafter = Drafter {
            env,
            job: ctx.job,
            usage: DraftUsage {
                model: env.provider.settings.extraction_model.clone(),
                ..DraftUsage::default()
            },
        };
        let plan = drafter.draft(&questionnaire, today).await?;
        let usage = drafter.usage;
        let plan_json = serde_json::to_string(&plan)
            .map_err(|e| JobError::permanent("encoding the plan", e))?;
        let mut tx = JobTx::begin(&env.relay).await.map_err(db_err)?;
        if !db::missions::finish_draft(&mut tx, &id, &plan_json, &usage)
            .await
            .map_err(db_err)?
        {
            tracing::info!("draft changed while generating; result dropped");
            return Ok(());
        }
        notify(&mut tx, &draft, EmailTemplate::MissionDraftReady).await?;
        tx.commit().await.map_err(db_err)?;
        tracing::info!(
            weeks = plan.weeks.len(),
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            "mission draft ready"
        );
        Ok(())
    }

    async fn on_retry(&self, ctx: &JobCtx<'_>, error: &str) {
        let id = self.draft_id.to_string();
        if let Err(err) = db::missions::fail_draft(&ctx.env.db, &id, error, false).await {
            tracing::warn!(error = %err, "could not record the failure on the draft");
        }
    }

    async fn on_dead(&self, ctx: &JobCtx<'_>, tx: &mut JobTx, error: &str) -> sqlx::Result<()> {
        let id = self.draft_id.to_string();
        if db::missions::fail_draft(&mut **tx, &id, error, true).await?
            && let Some(draft) = db::missions::find_draft(&ctx.env.db, &id).await?
        {
            notify(tx, &draft, EmailTemplate::MissionDraftFailed)
                .await
                .map_err(|e| sqlx::Error::Protocol(format!("queueing the notice: {e}")))?;
        }
        Ok(())
    }
}

/// Mails the requester about the draft.
async fn notify(tx: &mut JobTx, draft: &DraftRow, template: EmailTemplate) -> Result<(), JobError> {
    let user_id = Uuid::parse_str(&draft.requested_by)
        .map_err(|e| JobError::permanent("the requester's id", e))?;
    let subject_id =
        Uuid::parse_str(&draft.id).map_err(|e| JobError::permanent("the draft's id", e))?;
    tx.enqueue(
        &SendEmail {
            user_id,
            template,
            subject_id: Some(subject_id),
        },
        &tend_shared::jobs::JobOrigin {
            created_by: Some(draft.requested_by.clone()),
            tenant: Some(draft.practitioner_id.clone()),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| JobError::transient("queueing the notice", e))?;
    Ok(())
}

struct Drafter<'a> {
    env: &'a JobEnv,
    job: &'a JobRow,
    /// What the calls so far cost.
    usage: DraftUsage,
}

impl Drafter<'_> {
    async fn draft(&mut self, q: &Questionnaire, today: NaiveDate) -> Result<Plan, JobError> {
        let weeks: Vec<String> = q.plan_weeks(today).iter().map(|d| d.to_string()).collect();
        let (low, high) = q.power_bounds();
        let facts = json!({
            "today": today.to_string(),
            "weeks": weeks,
            "training_days": q.training_days().iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            "target_power_bounds_w": [low, high],
            "questionnaire": q,
        });
        let mut conversation = vec![
            json!({"role": "system", "content": SYSTEM_PROMPT}),
            json!({"role": "user", "content": facts.to_string()}),
        ];
        let first = self.call(&conversation, 0.7).await?;
        let reason = match check(&first, q, today) {
            Ok(plan) => return Ok(plan),
            Err(reason) => reason,
        };
        // The reason names fields and rules, never the answer's text.
        tracing::warn!("the model's plan did not fit; asking again at temperature 0");
        conversation.push(json!({"role": "assistant", "content": first.content}));
        conversation.push(json!({"role": "user", "content": format!(
            "Your plan breaks the rules: {reason}. Answer again with only a JSON object that \
             matches the schema and keeps every rule."
        )}));
        let second = self.call(&conversation, 0.0).await?;
        check(&second, q, today).map_err(|reason| {
            JobError::Permanent(format!(
                "the model's plan did not fit the questionnaire, twice: {reason}"
            ))
        })
    }

    async fn call(&mut self, messages: &[Value], temperature: f64) -> Result<ChatAnswer, JobError> {
        let provider = &self.env.provider;
        let model = provider.settings.extraction_model.clone();
        let request = json!({
            "model": model,
            "temperature": temperature,
            "messages": messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "training_mission", "strict": true, "schema": Plan::json_schema()}
            }
        });
        let answer = provider.chat_for(STAGE, request).await?;
        let cost = provider.token_cost(answer.prompt_tokens, answer.completion_tokens);
        self.usage.prompt_tokens += answer.prompt_tokens;
        self.usage.completion_tokens += answer.completion_tokens;
        self.usage.cost_micro_usd += cost;
        let row = UsageRow {
            stage: STAGE.into(),
            model,
            audio_ms: 0,
            prompt_tokens: answer.prompt_tokens,
            completion_tokens: answer.completion_tokens,
            cost_micro_usd: cost,
            created_at: db::now_ms(),
        };
        record_usage(self.env, self.job, None, row).await;
        Ok(answer)
    }
}

fn check(answer: &ChatAnswer, q: &Questionnaire, today: NaiveDate) -> Result<Plan, String> {
    if answer.refusal.is_some() {
        return Err("the model refused to answer".into());
    }
    if answer.finish_reason.as_deref() == Some("length") {
        return Err("the answer was cut off at the length limit".into());
    }
    Plan::from_model_answer(&answer.content, q, today)
}
