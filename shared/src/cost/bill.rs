//! A month of traffic priced: jobcast at its measured ceilings, the seed design, a hosted
//! service. Every price is a list price with its source and the day it was read, in
//! [`Prices::LIST_2026_11_26`]; every assumption about the traffic is a field of
//! [`Assumptions`], printed with the bill.

use super::{Operation, StoreCost};

/// Minutes in a month (730 hours, as AWS's calculator uses).
const MINUTES_PER_MONTH: f64 = 730.0 * 60.0;

/// What the month carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Connections open at any time, all month.
    pub connections: f64,
    /// Jobs each connection follows.
    pub subscriptions_per_connection: f64,
    /// Events sent by pipelines in the month.
    pub events: f64,
    /// Subscribers of each event's job.
    pub subscribers_per_event: f64,
}

/// How the traffic behaves, where the bill needs more than [`Traffic`] says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assumptions {
    /// Hours a connection lasts before it reconnects and resubscribes (API Gateway closes
    /// every connection after 2 hours).
    pub connection_hours: f64,
    /// Minutes between a client's keep-alive pings (`web/jobcast.js`: 5).
    pub ping_minutes: f64,
    /// `CONNECTION_TTL_SECONDS`, in minutes: a frame that finds less than half of it left
    /// extends the connection and its subscriptions.
    pub connection_ttl_minutes: f64,
    /// Events each resubscribe replays.
    pub replayed_per_resubscribe: f64,
    /// Lambda memory, MB.
    pub lambda_memory_mb: f64,
    /// Billed milliseconds of a client-facing invocation (authorizer, connect, default,
    /// disconnect).
    pub handler_ms: f64,
    /// A post's round trip to API Gateway, ms.
    pub post_ms: f64,
    /// Posts jobcast's sender keeps in flight (grows to `SEND_CONCURRENCY`, 512).
    pub posts_in_flight: f64,
}

impl Default for Assumptions {
    fn default() -> Self {
        Self {
            connection_hours: 2.0,
            ping_minutes: 5.0,
            connection_ttl_minutes: 60.0,
            replayed_per_resubscribe: 0.0,
            lambda_memory_mb: 128.0,
            handler_ms: 10.0,
            post_ms: 20.0,
            posts_in_flight: 256.0,
        }
    }
}

/// List prices, in US dollars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// API Gateway WebSocket: per million messages (each up to 32 KB; first billion a month).
    pub messages_per_million: f64,
    /// API Gateway WebSocket: per million connection minutes.
    pub connection_minutes_per_million: f64,
    /// Lambda on arm64: per GB-second.
    pub lambda_gb_second: f64,
    /// Lambda: per million requests.
    pub lambda_requests_per_million: f64,
    /// DynamoDB on demand: per million write request units.
    pub writes_per_million: f64,
    /// DynamoDB on demand: per million read request units.
    pub reads_per_million: f64,
    /// The hosted service: its plan's monthly base price.
    pub hosted_base: f64,
    /// The hosted service: per million messages (each event published counts once, and once
    /// more for every subscriber it reaches).
    pub hosted_messages_per_million: f64,
    /// The hosted service: per thousand peak connections.
    pub hosted_per_thousand_connections: f64,
}

impl Prices {
    /// us-east-1 list prices and Ably's published rates, as read on 2026-11-26: API Gateway
    /// WebSocket APIs ($1.00 per million messages, $0.25 per million connection minutes),
    /// Lambda arm64 ($0.0000133334 per GB-s, $0.20 per million requests), DynamoDB on demand
    /// ($0.625 per million write and $0.125 per million read request units); Ably's Standard
    /// package ($29 a month) with its overage rates ($2.50 per million messages, $20 per
    /// thousand peak connections).
    pub const LIST_2026_11_26: Prices = Prices {
        messages_per_million: 1.00,
        connection_minutes_per_million: 0.25,
        lambda_gb_second: 0.000_013_333_4,
        lambda_requests_per_million: 0.20,
        writes_per_million: 0.625,
        reads_per_million: 0.125,
        hosted_base: 29.0,
        hosted_messages_per_million: 2.50,
        hosted_per_thousand_connections: 20.0,
    };
}

/// One line of a bill.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// What is paid for.
    pub item: &'static str,
    /// How much of it, in the unit `item` names.
    pub quantity: f64,
    /// Dollars a month.
    pub dollars: f64,
}

/// A month's bill.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bill {
    /// Its lines.
    pub lines: Vec<Line>,
}

impl Bill {
    /// The month's total, dollars.
    pub fn total(&self) -> f64 {
        self.lines.iter().map(|line| line.dollars).sum()
    }

    fn add(&mut self, item: &'static str, quantity: f64, dollars: f64) {
        self.lines.push(Line {
            item,
            quantity,
            dollars,
        });
    }
}

/// How often each thing happens in the month.
struct Month {
    connection_minutes: f64,
    connects: f64,
    extensions: f64,
    subscribes: f64,
    pings: f64,
    events: f64,
    posts: f64,
}

impl Month {
    fn of(traffic: &Traffic, assumptions: &Assumptions) -> Self {
        let connection_minutes = traffic.connections * MINUTES_PER_MONTH;
        let connects = connection_minutes / (assumptions.connection_hours * 60.0);
        // Each connection is extended every half TTL of its life, the first at half a TTL.
        let half_ttl = assumptions.connection_ttl_minutes / 2.0;
        let per_connection = ((assumptions.connection_hours * 60.0) / half_ttl - 1.0)
            .ceil()
            .max(0.0);
        Self {
            connection_minutes,
            connects,
            extensions: connects * per_connection,
            subscribes: connects * traffic.subscriptions_per_connection,
            pings: connection_minutes / assumptions.ping_minutes,
            events: traffic.events,
            posts: traffic.events * traffic.subscribers_per_event,
        }
    }
}

fn gb_seconds(assumptions: &Assumptions, invocations: f64, ms: f64) -> f64 {
    invocations * ms.ceil() / 1000.0 * assumptions.lambda_memory_mb / 1024.0
}

/// API Gateway's and Lambda's lines, shared by jobcast and the seed design (same front door).
fn front_door(bill: &mut Bill, month: &Month, prices: &Prices, messages: f64) {
    bill.add(
        "API Gateway messages",
        messages,
        messages / 1e6 * prices.messages_per_million,
    );
    bill.add(
        "API Gateway connection minutes",
        month.connection_minutes,
        month.connection_minutes / 1e6 * prices.connection_minutes_per_million,
    );
}

fn lambda(bill: &mut Bill, prices: &Prices, invocations: f64, gb_seconds: f64) {
    bill.add(
        "Lambda requests",
        invocations,
        invocations / 1e6 * prices.lambda_requests_per_million,
    );
    bill.add(
        "Lambda GB-seconds (arm64)",
        gb_seconds,
        gb_seconds * prices.lambda_gb_second,
    );
}

fn dynamodb(bill: &mut Bill, prices: &Prices, store: StoreCost) {
    bill.add(
        "DynamoDB write request units",
        store.write_units,
        store.write_units / 1e6 * prices.writes_per_million,
    );
    bill.add(
        "DynamoDB read request units",
        store.read_units,
        store.read_units / 1e6 * prices.reads_per_million,
    );
}

fn sum(costs: &[StoreCost]) -> StoreCost {
    costs.iter().fold(StoreCost::default(), |total, cost| {
        StoreCost::new(
            total.calls + cost.calls,
            total.read_units + cost.read_units,
            total.write_units + cost.write_units,
        )
    })
}

/// jobcast's month: every operation at its ceiling ([`Operation::ceiling`]); every event from a
/// cold sender (the warm cache only lowers it).
pub fn bill(traffic: &Traffic, assumptions: &Assumptions, prices: &Prices) -> Bill {
    let month = Month::of(traffic, assumptions);
    let subscriptions = traffic.subscriptions_per_connection.round() as usize;
    let subscribers = traffic.subscribers_per_event.round() as usize;
    let resubscribe = if assumptions.replayed_per_resubscribe > 0.0 {
        Operation::SubscribeWithReplay {
            events: assumptions.replayed_per_resubscribe.round() as usize,
        }
    } else {
        Operation::Subscribe
    };
    let store = sum(&[
        Operation::Connect.ceiling().times(month.connects),
        resubscribe.ceiling().times(month.subscribes),
        Operation::Frame { subscriptions }
            .ceiling()
            .times(month.pings),
        Operation::Extend { subscriptions }
            .ceiling()
            .times(month.extensions),
        Operation::Event {
            subscribers,
            warm: false,
            recent: 0,
        }
        .ceiling()
        .times(month.events),
        Operation::Disconnect { subscriptions }
            .ceiling()
            .times(month.connects),
    ]);
    let mut bill = Bill::default();
    // In: a subscribe, a ping. Out: `subscribed` and `job_status` (or the replay), a pong, the
    // events.
    let messages = month.subscribes * (1.0 + 2.0 + assumptions.replayed_per_resubscribe)
        + month.pings * 2.0
        + month.posts;
    front_door(&mut bill, &month, prices, messages);
    // The authorizer and connect on each connect, disconnect, default on each frame.
    let handler_calls = month.connects * 3.0 + month.subscribes + month.pings;
    // The sender: one invocation per event; its posts overlap, `posts_in_flight` at a time.
    let sender_ms = assumptions.handler_ms
        + traffic.subscribers_per_event * assumptions.post_ms / assumptions.posts_in_flight;
    let gb = gb_seconds(assumptions, handler_calls, assumptions.handler_ms)
        + gb_seconds(assumptions, month.events, sender_ms);
    lambda(&mut bill, prices, handler_calls + month.events, gb);
    dynamodb(&mut bill, prices, store);
    bill
}

/// The seed design: one item per connection, holding its subscriptions; each event Scans the
/// whole connections table and posts to one subscriber after another. Frames touch nothing.
pub fn seed_bill(traffic: &Traffic, assumptions: &Assumptions, prices: &Prices) -> Bill {
    let month = Month::of(traffic, assumptions);
    // About 100 bytes of connection and 40 per job it follows; a Scan reads 4 KB per read
    // unit, eventually consistent at half a unit.
    let table_bytes = traffic.connections * (100.0 + 40.0 * traffic.subscriptions_per_connection);
    let scan_units = (table_bytes / 4096.0).ceil() * 0.5;
    let item_write_units = ((100.0 + 40.0 * traffic.subscriptions_per_connection) / 1024.0).ceil();
    let store = sum(&[
        // Connect: the item. Subscribe: the item rewritten. Disconnect: its deletion.
        StoreCost::new(1.0, 0.0, 1.0).times(month.connects * 2.0),
        StoreCost::new(1.0, 0.0, item_write_units).times(month.subscribes),
        StoreCost::new(1.0, scan_units, 0.0).times(month.events),
    ]);
    let mut bill = Bill::default();
    let messages = month.subscribes * 2.0 + month.pings * 2.0 + month.posts;
    front_door(&mut bill, &month, prices, messages);
    let handler_calls = month.connects * 3.0 + month.subscribes + month.pings;
    let sender_ms = assumptions.handler_ms + traffic.subscribers_per_event * assumptions.post_ms;
    let gb = gb_seconds(assumptions, handler_calls, assumptions.handler_ms)
        + gb_seconds(assumptions, month.events, sender_ms);
    lambda(&mut bill, prices, handler_calls + month.events, gb);
    dynamodb(&mut bill, prices, store);
    bill
}

/// A hosted service (Ably, at its published rates) carrying the same events to the same
/// connections: messages are each event published once and received by each subscriber;
/// connections are billed at their peak. Channel minutes are left out, which flatters it.
pub fn hosted_bill(traffic: &Traffic, prices: &Prices) -> Bill {
    let messages = traffic.events * (1.0 + traffic.subscribers_per_event);
    let mut bill = Bill::default();
    bill.add("Hosted: Standard package", 1.0, prices.hosted_base);
    bill.add(
        "Hosted: messages",
        messages,
        messages / 1e6 * prices.hosted_messages_per_million,
    );
    bill.add(
        "Hosted: peak connections",
        traffic.connections,
        traffic.connections / 1000.0 * prices.hosted_per_thousand_connections,
    );
    bill
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic() -> Traffic {
        Traffic {
            connections: 10_000.0,
            subscriptions_per_connection: 50.0,
            events: 1_000_000.0,
            subscribers_per_event: 10.0,
        }
    }

    #[test]
    fn connection_minutes_are_the_connections_all_month() {
        let bill = bill(
            &traffic(),
            &Assumptions::default(),
            &Prices::LIST_2026_11_26,
        );
        let minutes = bill
            .lines
            .iter()
            .find(|line| line.item == "API Gateway connection minutes")
            .unwrap();
        assert_eq!(minutes.quantity, 10_000.0 * 43_800.0);
        assert!(
            (minutes.dollars - 109.5).abs() < 1e-9,
            "{}",
            minutes.dollars
        );
    }

    #[test]
    fn the_seed_design_pays_a_scan_per_event() {
        let ours = bill(
            &traffic(),
            &Assumptions::default(),
            &Prices::LIST_2026_11_26,
        );
        let seed = seed_bill(
            &traffic(),
            &Assumptions::default(),
            &Prices::LIST_2026_11_26,
        );
        let reads = |bill: &Bill| {
            bill.lines
                .iter()
                .find(|line| line.item == "DynamoDB read request units")
                .unwrap()
                .quantity
        };
        assert!(reads(&seed) > 10.0 * reads(&ours));
    }
}
