//! The demo's HTTP side: the page, the client module, and refusals of bad demo-job requests.
//! (The page itself is driven in Chromium by web/test/demo.test.mjs.)

use jobcast_tests::*;
use serde_json::{Value, json};

#[tokio::test]
async fn the_page_and_its_client_are_served() {
    let emulator = start().await;
    let http = reqwest::Client::new();
    let page = http.get(emulator.http_url()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("Start a demo job"));
    assert!(html.contains(r#"import { JobcastClient } from "/jobcast.js""#));

    let module = http
        .get(format!("{}/jobcast.js", emulator.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(module.status(), 200);
    assert!(
        module.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        module
            .text()
            .await
            .unwrap()
            .contains("export class JobcastClient")
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_demo_job_runs_through_the_sender_and_bad_requests_are_refused() {
    let emulator = start().await;
    let post = |body: String| {
        let url = format!("{}/demo/jobs", emulator.http_url());
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    for (body, why) in [
        ("not json".to_owned(), "invalid demo job request"),
        (json!({}).to_string(), "user_id"),
        (
            json!({"user_id": "u", "steps": 0}).to_string(),
            "steps must be",
        ),
        (
            json!({"user_id": "u", "interval_ms": 1}).to_string(),
            "interval_ms",
        ),
        (
            json!({"user_id": "u", "extra": true}).to_string(),
            "unknown field",
        ),
        (json!({"user_id": "has space"}).to_string(), "user_id"),
    ] {
        let (status, answer) = post(body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(why),
            "{body}: {answer}"
        );
    }

    let (status, answer) =
        post(json!({"user_id": "dana", "steps": 3, "interval_ms": 5}).to_string()).await;
    assert_eq!(status, 201, "{answer}");
    let job_id = answer["job_id"].as_str().unwrap().to_owned();
    let mut client = Client::connect_as(&emulator, "dana").await;
    let subscribed = client
        .request(json!({"action": "subscribe", "job_id": job_id, "last_seq": 0}))
        .await;
    assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
    let mut seqs = Vec::new();
    loop {
        let frame = client.recv().await;
        seqs.push(frame["seq"].as_u64().unwrap());
        if frame["type"] == "job_complete" {
            break;
        }
    }
    // 3 progress updates, 3 stage completions, 1 completion.
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    emulator.shutdown().await;
}
