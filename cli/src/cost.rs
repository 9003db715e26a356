//! `jobcast cost`: a month of traffic priced at list prices, jobcast beside the seed design and
//! a hosted service. jobcast's store work is its measured ceilings (`jobcast::cost`).

use clap::Args;
use jobcast::cost::{Assumptions, Bill, Prices, Traffic, bill, hosted_bill, seed_bill};

/// The traffic of a month, and what the bill assumes of it.
#[derive(Debug, Args)]
pub struct CostArgs {
    /// Connections open at any time, all month.
    #[arg(long, value_parser = positive)]
    connections: f64,
    /// Jobs each connection follows.
    #[arg(long, value_parser = non_negative)]
    subscriptions_per_connection: f64,
    /// Events the pipelines send in the month.
    #[arg(long, value_parser = non_negative)]
    events: f64,
    /// Subscribers of each event's job.
    #[arg(long, value_parser = non_negative)]
    subscribers_per_event: f64,
    /// Minutes between a client's keep-alive pings.
    #[arg(long, default_value_t = 5.0, value_parser = positive)]
    ping_minutes: f64,
    /// Hours a connection lasts before it reconnects and resubscribes (API Gateway: at most 2).
    #[arg(long, default_value_t = 2.0, value_parser = positive)]
    connection_hours: f64,
    /// `CONNECTION_TTL_SECONDS` in minutes: connections are extended every half of it.
    #[arg(long, default_value_t = 60.0, value_parser = positive)]
    connection_ttl_minutes: f64,
    /// Billed milliseconds of a client-facing Lambda invocation.
    #[arg(long, default_value_t = 10.0, value_parser = positive)]
    handler_ms: f64,
    /// A post's round trip to API Gateway, milliseconds.
    #[arg(long, default_value_t = 20.0, value_parser = non_negative)]
    post_ms: f64,
}

fn number(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("{text:?} is not a finite number"))
    }
}

fn positive(text: &str) -> Result<f64, String> {
    number(text).and_then(|v| {
        if v > 0.0 {
            Ok(v)
        } else {
            Err("must be more than 0".into())
        }
    })
}

fn non_negative(text: &str) -> Result<f64, String> {
    number(text).and_then(|v| {
        if v >= 0.0 {
            Ok(v)
        } else {
            Err("must be 0 or more".into())
        }
    })
}

/// Prints the three bills, line by line, and their totals.
pub fn run(args: &CostArgs) {
    let traffic = Traffic {
        connections: args.connections,
        subscriptions_per_connection: args.subscriptions_per_connection,
        events: args.events,
        subscribers_per_event: args.subscribers_per_event,
    };
    let assumptions = Assumptions {
        connection_hours: args.connection_hours,
        connection_ttl_minutes: args.connection_ttl_minutes,
        ping_minutes: args.ping_minutes,
        handler_ms: args.handler_ms,
        post_ms: args.post_ms,
        ..Assumptions::default()
    };
    let prices = Prices::LIST_2026_11_26;
    println!(
        "A month (730 h) of {} connections following {} jobs each, {} events to {} subscribers each;",
        args.connections,
        args.subscriptions_per_connection,
        args.events,
        args.subscribers_per_event
    );
    println!(
        "a ping every {} min, a reconnect every {} h, a {} min connection TTL, {} MB Lambdas billed {} ms a frame, posts of {} ms.",
        assumptions.ping_minutes,
        assumptions.connection_hours,
        assumptions.connection_ttl_minutes,
        assumptions.lambda_memory_mb,
        assumptions.handler_ms,
        assumptions.post_ms
    );
    println!(
        "List prices read 2026-11-26 (us-east-1; Ably's published Standard package and overage rates).\n"
    );
    for (title, bill) in [
        (
            "jobcast (every operation at its measured ceiling)",
            bill(&traffic, &assumptions, &prices),
        ),
        (
            "the seed design (a Scan per event, one post after another)",
            seed_bill(&traffic, &assumptions, &prices),
        ),
        (
            "a hosted service (Ably, channel minutes left out)",
            hosted_bill(&traffic, &prices),
        ),
    ] {
        print_bill(title, &bill);
    }
}

fn print_bill(title: &str, bill: &Bill) {
    println!("{title}");
    for line in &bill.lines {
        println!(
            "  {:<34} {:>20.0}  ${:>12.2}",
            line.item, line.quantity, line.dollars
        );
    }
    println!(
        "  {:<34} {:>20}  ${:>12.2}\n",
        "total a month",
        "",
        bill.total()
    );
}
