//! DynamoDB reads per fan-out: what finding a job's subscribers costs jobcast (one Query a page
//! on the sparse `by_job` index), beside the baseline of AWS's WebSocket chat sample (a Scan of
//! the connections table, here with a filter on the job). Also the size of a connection item.
//!
//! Needs DynamoDB Local (or any DynamoDB) at JOBCAST_DYNAMODB_ENDPOINT; `bench/store-reads.sh`
//! starts one. Prints a Markdown table on stdout.

use std::collections::HashMap;

use anyhow::Context;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use chrono::{Duration, Utc};
use futures::StreamExt;
use jobcast::delivery::DeliverySettings;
use jobcast::protocol::{ConnectionId, JobId, UserId};
use jobcast::store::dynamodb::schema::TableNames;
use jobcast::store::{Connection, ConnectionStore, DynamoStore, PageRequest, Subscription};

/// Other jobs' subscriptions in the table, per subscriber of the measured job: a table serving
/// one job only would flatter the Scan.
const OTHER_JOBS_PER_SUBSCRIBER: usize = 3;

struct Reads {
    requests: u64,
    items_read: u64,
    items_returned: u64,
    capacity: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoint = std::env::var("JOBCAST_DYNAMODB_ENDPOINT")
        .context("set JOBCAST_DYNAMODB_ENDPOINT (bench/store-reads.sh does)")?;
    let sdk = jobcast::sdk::loader()
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "bench", "bench", None, None, "bench",
        ))
        .load()
        .await;
    let page_size = DeliverySettings::default().page_size;

    println!(
        "| subscribers | approach | requests | items read | items returned | read capacity units |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    // `--sizes 10,20` for the test command's small run.
    let mut sizes = vec![1_000usize, 5_000];
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--sizes", Some(list)) => {
                sizes = list.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            _ => anyhow::bail!("usage: store-reads [--sizes 1000,5000]"),
        }
    }
    let mut sized = None;
    for subscribers in sizes {
        let suffix: u64 = rand::random();
        let store = DynamoStore::new(
            &sdk,
            TableNames {
                connections: format!("bench-connections-{suffix:x}"),
                jobs: format!("bench-jobs-{suffix:x}"),
            },
        );
        store.ensure_tables().await?;
        let job = JobId::parse("measured-job")?;
        fill(&store, &job, subscribers).await?;
        if sized.is_none() {
            sized = Some(item_sizes(&store, &job).await?);
        }

        let before = store.read_stats();
        let mut found = 0;
        let mut request = PageRequest::first(page_size);
        loop {
            let page = store
                .connections_of(
                    &jobcast::store::Audience::Job(job.clone(), u64::MAX, None),
                    request,
                )
                .await?;
            found += page.items.len() as u64;
            match page.next {
                Some(after) => {
                    request = PageRequest {
                        after: Some(after),
                        limit: page_size,
                    }
                }
                None => break,
            }
        }
        let after = store.read_stats();
        anyhow::ensure!(
            found == subscribers as u64,
            "the Query found {found} of {subscribers}"
        );
        let jobcast = Reads {
            requests: after.queries - before.queries,
            items_read: after.items_scanned - before.items_scanned,
            items_returned: found,
            capacity: after.read_capacity_units - before.read_capacity_units,
        };
        let scan = scan_baseline(&store, &job).await?;
        anyhow::ensure!(
            scan.items_returned == subscribers as u64,
            "the Scan found {} of {subscribers}",
            scan.items_returned
        );
        for (name, reads) in [
            (
                format!("jobcast: Query by_job, pages of {page_size}"),
                &jobcast,
            ),
            (
                "baseline: Scan + filter (AWS chat sample)".to_owned(),
                &scan,
            ),
        ] {
            println!(
                "| {subscribers} | {name} | {} | {} | {} | {:.1} |",
                reads.requests, reads.items_read, reads.items_returned, reads.capacity
            );
        }
    }
    println!();
    println!("| item, as stored (read back from DynamoDB Local) | bytes |");
    println!("|---|---:|");
    for (item, bytes) in sized.unwrap_or_default() {
        println!("| {item} | {bytes} |");
    }
    Ok(())
}

/// `subscribers` connections on the measured job, each also subscribed to other jobs.
async fn fill(store: &DynamoStore, job: &JobId, subscribers: usize) -> anyhow::Result<()> {
    let expires_at = Utc::now() + Duration::hours(1);
    futures::stream::iter(0..subscribers)
        .map(|n| async move {
            let connection_id = ConnectionId::parse(format!("c{n:07}AAAAAAA="))?;
            let user_id = UserId::parse(format!("{n:08}-{UUID_LIKE}"))?;
            store
                .put_connection(&Connection {
                    connection_id: connection_id.clone(),
                    user_id: user_id.clone(),
                    connected_at: Utc::now(),
                    expires_at,
                })
                .await?;
            let jobs = std::iter::once(job.clone()).chain(
                (0..OTHER_JOBS_PER_SUBSCRIBER)
                    .map(|k| JobId::parse(format!("other-{}", (n + k) % 97)).expect("valid")),
            );
            for job_id in jobs {
                store
                    .put_subscription(&Subscription {
                        connection_id: connection_id.clone(),
                        job_id,
                        user_id: user_id.clone(),
                        expires_at,
                        live_after: 0,
                    })
                    .await?;
            }
            anyhow::Ok(())
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

async fn scan_baseline(store: &DynamoStore, job: &JobId) -> anyhow::Result<Reads> {
    let mut reads = Reads {
        requests: 0,
        items_read: 0,
        items_returned: 0,
        capacity: 0.0,
    };
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let output = store
            .client()
            .scan()
            .table_name(&store.tables().connections)
            .filter_expression("job_id = :job")
            .expression_attribute_values(":job", AttributeValue::S(job.to_string()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start)
            .send()
            .await?;
        reads.requests += 1;
        reads.items_read += u64::try_from(output.scanned_count()).unwrap_or(0);
        reads.items_returned += u64::try_from(output.count()).unwrap_or(0);
        reads.capacity += output
            .consumed_capacity()
            .and_then(|c| c.capacity_units())
            .unwrap_or(0.0);
        start = output.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(reads);
        }
    }
}

/// The size DynamoDB bills an item at: each attribute's name plus its value (strings and
/// binaries: their bytes; numbers: about one byte per two significant digits, plus one; sets and
/// lists: their members, lists and maps 3 bytes more; booleans and nulls: one byte).
fn item_bytes(item: &HashMap<String, AttributeValue>) -> usize {
    fn number(text: &str) -> usize {
        let digits = text
            .trim_start_matches('-')
            .replace('.', "")
            .trim_start_matches('0')
            .trim_end_matches('0')
            .len()
            .max(1);
        digits.div_ceil(2) + 1
    }
    fn size_of(value: &AttributeValue) -> usize {
        match value {
            AttributeValue::S(text) => text.len(),
            AttributeValue::N(text) => number(text),
            AttributeValue::B(blob) => blob.as_ref().len(),
            AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
            AttributeValue::Ns(numbers) => numbers.iter().map(|n| number(n)).sum(),
            AttributeValue::L(values) => 3 + values.iter().map(size_of).sum::<usize>(),
            AttributeValue::M(map) => {
                3 + map.iter().map(|(k, v)| k.len() + size_of(v)).sum::<usize>()
            }
            _ => 1,
        }
    }
    item.iter().map(|(name, v)| name.len() + size_of(v)).sum()
}

/// The items as the store writes them, read back: a connection (after a frame took a token, so
/// with its frame bucket), a subscription (with `live_after` and its recent-subscriber mark),
/// their index copies (100 bytes of index overhead each), and the job's head (naming up to 200
/// recent subscribers).
async fn item_sizes(store: &DynamoStore, job: &JobId) -> anyhow::Result<Vec<(String, usize)>> {
    use jobcast::store::FrameBucket;
    let connection_id = ConnectionId::parse("c0000000AAAAAAA=")?;
    let bucket = FrameBucket {
        interval_ms: 100,
        burst: 20,
    };
    store
        .take_frame_token(&connection_id, bucket.at(Utc::now().timestamp_millis()))
        .await?;
    let client = store.client();
    let tables = store.tables();
    let get = |table: String, key: [(&'static str, AttributeValue); 2]| {
        let request = client.get_item().table_name(table).set_key(Some(
            key.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ));
        async move {
            let item = request.send().await?.item.context("the item")?;
            anyhow::Ok(item_bytes(&item))
        }
    };
    let index_copy = |index: &'static str, key: &'static str, value: String| {
        let request = client
            .query()
            .table_name(&tables.connections)
            .index_name(index)
            .key_condition_expression("#key = :value")
            .expression_attribute_names("#key", key)
            .expression_attribute_values(":value", AttributeValue::S(value))
            .limit(1);
        async move {
            let output = request.send().await?;
            let item = output.items().first().context("an index item")?;
            anyhow::Ok(item_bytes(item) + 100)
        }
    };
    let s = |text: &str| AttributeValue::S(text.to_owned());
    let user = format!("{:08}-{UUID_LIKE}", 0);
    Ok(vec![
        (
            format!(
                "connection (16-char connection id, {}-char user id, frame bucket)",
                user.len()
            ),
            get(
                tables.connections.clone(),
                [
                    ("connection_id", s(connection_id.as_str())),
                    ("sk", s("connection")),
                ],
            )
            .await?,
        ),
        (
            "its copy in by_user".to_owned(),
            index_copy("by_user", "user_id", user.clone()).await?,
        ),
        (
            format!("subscription ({}-char job id)", job.as_str().len()),
            get(
                tables.connections.clone(),
                [
                    ("connection_id", s(connection_id.as_str())),
                    ("sk", s(&format!("job#{job}"))),
                ],
            )
            .await?,
        ),
        (
            "its copy in by_job".to_owned(),
            index_copy("by_job", "job_id", job.to_string()).await?,
        ),
        (
            "the job's head, naming the recent subscribers".to_owned(),
            get(
                tables.jobs.clone(),
                [
                    ("job_id", s(job.as_str())),
                    ("seq", AttributeValue::N("0".into())),
                ],
            )
            .await?,
        ),
    ])
}

/// The tail of a UUID-shaped user id (`{n:08}` in front makes it 36 characters, like a `sub`).
const UUID_LIKE: &str = "5a2e-4a8e-9d7b-0b9c1f3c9e21";
