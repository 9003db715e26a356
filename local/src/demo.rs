//! The live demo: the page at `/`, the JS client it runs, and simulated pipelines that report
//! through the real sender, so a person is one click away from watching a job.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use http::{StatusCode, header};
use jobcast::protocol::{JobId, UserId};
use jobcast::store::Store;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::App;

const PAGE: &str = include_str!("../../web/demo.html");
const CLIENT: &str = include_str!("../../web/jobcast.js");

/// The pipeline's stages, in order; the steps are spread over them.
const STAGES: [&str; 3] = ["fetch", "parse", "summarise"];

pub(crate) fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /jobcast.js`: the browser client, as an ES module.
pub(crate) async fn client_module() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        CLIENT,
    )
        .into_response()
}

/// `POST /demo/jobs`: what the page's button asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DemoJobRequest {
    user_id: UserId,
    /// Fail at about 60 % instead of completing.
    #[serde(default)]
    fail: bool,
    #[serde(default = "default_steps")]
    steps: u32,
    #[serde(default = "default_interval_ms")]
    interval_ms: u64,
}

fn default_steps() -> u32 {
    20
}

fn default_interval_ms() -> u64 {
    400
}

/// Registers a job owned by the caller and starts its simulated pipeline.
pub(crate) async fn start_job<S: Store>(
    State(app): State<Arc<App<S>>>,
    body: axum::body::Bytes,
) -> Response {
    let request: DemoJobRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return refuse(&format!("invalid demo job request: {err}")),
    };
    if !(1..=500).contains(&request.steps) || !(5..=10_000).contains(&request.interval_ms) {
        return refuse("steps must be 1–500 and interval_ms 5–10000");
    }
    let Ok(running) = app.demo_jobs.clone().try_acquire_owned() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": "too many demo jobs running; try again when one ends"})),
        )
            .into_response();
    };
    let job_id =
        JobId::parse(format!("demo-{:08x}", rand::random::<u32>())).expect("a well-formed job id");
    let registration =
        json!({"action": "register_job", "job_id": job_id, "user_id": request.user_id});
    match app
        .service
        .handle_sender_invocation(&app.registry, registration)
        .await
    {
        Ok(answer) if answer["outcome"] == "registered" => {}
        Ok(answer) => return refuse(&format!("the job was not registered: {answer}")),
        Err(err) => {
            tracing::warn!(error = %err, "demo job registration failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": err.to_string()})),
            )
                .into_response();
        }
    }
    tracing::info!(%job_id, user_id = %request.user_id, steps = request.steps, "demo job started");
    let pipeline_job = job_id.clone();
    tokio::spawn(async move {
        run_pipeline(app, pipeline_job, request).await;
        drop(running);
    });
    (StatusCode::CREATED, Json(json!({"job_id": job_id}))).into_response()
}

fn refuse(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

/// A pipeline as a real one would be written: report progress, poll `is_cancelled` between
/// steps, finish with `job_complete` (or `job_failed`). Every call goes through the sender.
async fn run_pipeline<S: Store>(app: Arc<App<S>>, job_id: JobId, request: DemoJobRequest) {
    let send = |payload: Value| {
        let app = app.clone();
        async move {
            match app
                .service
                .handle_sender_invocation(&app.registry, payload)
                .await
            {
                Ok(answer) => answer,
                Err(err) => {
                    tracing::warn!(error = %err, "demo pipeline call failed");
                    Value::Null
                }
            }
        }
    };
    let steps = request.steps;
    let interval = Duration::from_millis(request.interval_ms);
    let fail_at = request.fail.then(|| (steps * 3 / 5).max(1));
    let per_stage = steps.div_ceil(STAGES.len() as u32).max(1);
    for step in 1..=steps {
        tokio::time::sleep(interval).await;
        let poll = send(json!({"action": "is_cancelled", "job_id": job_id})).await;
        if poll["cancelled"] == true {
            tracing::info!(%job_id, step, "demo pipeline stops: the job was cancelled");
            return;
        }
        let stage = STAGES[((step - 1) / per_stage) as usize];
        if fail_at == Some(step) {
            send(json!({"job_id": job_id, "event": {
                "type": "job_failed", "stage": stage,
                "error": {"code": "source_unreachable", "message": "The source stopped answering",
                          "suggested_action": "Try again in a few minutes"}}}))
            .await;
            return;
        }
        let remaining = u64::from(steps - step) * request.interval_ms / 1000;
        let answer = send(json!({"job_id": job_id, "event": {
            "type": "progress_update", "stage": stage,
            "progress": f64::from(step) * 100.0 / f64::from(steps + 1),
            "message": format!("step {step} of {steps}"),
            "estimated_seconds_remaining": remaining}}))
        .await;
        if answer["outcome"] == "rejected" {
            // Cancelled between the poll and this event: the sender refuses it and says so.
            tracing::info!(%job_id, step, "demo pipeline stops: {}", answer["message"]);
            return;
        }
        if step % per_stage == 0 || step == steps {
            send(json!({"job_id": job_id, "event": {
                "type": "stage_complete", "stage": stage, "results": {"steps": step}}}))
            .await;
        }
    }
    send(json!({"job_id": job_id, "event": {"type": "job_complete", "results": {"steps": steps}}}))
        .await;
}
