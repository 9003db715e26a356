//! The cost table: DynamoDB requests, read and write units per operation, counted on the wire
//! between the store and DynamoDB Local by a counting tap (`jobcast_tests::costs`), beside the
//! ceiling each is held to (`jobcast::cost`, checked by `tests/costs.rs`).
//!
//! Needs DynamoDB Local at JOBCAST_DYNAMODB_ENDPOINT; `bench/costs.sh` starts one. Prints a
//! Markdown table on stdout. `--audiences 1,1000` sets the fan-out sizes.

use anyhow::{Context, Result, bail};

#[tokio::main]
async fn main() -> Result<()> {
    let endpoint = std::env::var("JOBCAST_DYNAMODB_ENDPOINT")
        .context("set JOBCAST_DYNAMODB_ENDPOINT (bench/costs.sh does)")?;
    let mut audiences = vec![1, 1_000, 10_000];
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next()) {
            ("--audiences", Some(list)) => {
                audiences = list.split(',').map(str::parse).collect::<Result<_, _>>()?
            }
            _ => bail!("usage: costs [--audiences 1,1000,10000]"),
        }
    }
    let measured = jobcast_tests::costs::measure(&endpoint, &audiences).await;
    println!(
        "| operation | DynamoDB requests | read units | write units | ceiling: requests / read / write | within |"
    );
    println!("|---|---|---:|---:|---:|---|");
    let mut over = false;
    for entry in &measured {
        let total = entry.tally.total();
        let ceiling = entry.operation.ceiling();
        let holds = ceiling.holds(&entry.tally.store_cost());
        over |= !holds;
        println!(
            "| {} | {} ({}) | {:.1} | {:.1} | {} / {:.1} / {:.1} | {} |",
            entry.operation,
            total.calls,
            entry.tally.calls_by_operation(),
            total.read_units,
            total.write_units,
            ceiling.calls,
            ceiling.read_units,
            ceiling.write_units,
            if holds { "yes" } else { "**no**" }
        );
    }
    if over {
        bail!("an operation went over its ceiling");
    }
    Ok(())
}
