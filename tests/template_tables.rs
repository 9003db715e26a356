//! The tables `template.yaml` deploys are the tables the code (and every test) creates: the key
//! schema lives in `shared/src/store/dynamodb/schema.rs`, and this test holds the template to it.

use std::collections::BTreeMap;

use jobcast::store::dynamodb::schema::{KeyPart, TableSpec, connections_table, jobs_table};
use serde_norway::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).expect("template.yaml"))
        .expect("template.yaml is YAML")
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected text, got {value:?}"))
        .to_owned()
}

type Key = Vec<(String, String)>;

fn key_schema(value: &Value) -> Key {
    value
        .as_sequence()
        .expect("a KeySchema list")
        .iter()
        .map(|part| (text(&part["AttributeName"]), text(&part["KeyType"])))
        .collect()
}

fn spec_key(parts: &[KeyPart]) -> Key {
    parts
        .iter()
        .map(|p| (p.name.to_owned(), p.role.as_str().to_owned()))
        .collect()
}

/// An index as both sides describe it.
#[derive(Debug, PartialEq)]
struct IndexShape {
    name: String,
    key: Key,
    projection: String,
    projected: Vec<String>,
}

fn template_indexes(properties: &Value) -> Vec<IndexShape> {
    let Some(list) = properties["GlobalSecondaryIndexes"].as_sequence() else {
        return Vec::new();
    };
    list.iter()
        .map(|index| IndexShape {
            name: text(&index["IndexName"]),
            key: key_schema(&index["KeySchema"]),
            projection: text(&index["Projection"]["ProjectionType"]),
            projected: index["Projection"]["NonKeyAttributes"]
                .as_sequence()
                .map(|names| names.iter().map(text).collect())
                .unwrap_or_default(),
        })
        .collect()
}

fn spec_indexes(spec: &TableSpec) -> Vec<IndexShape> {
    spec.indexes
        .iter()
        .map(|index| IndexShape {
            name: index.name.to_owned(),
            key: spec_key(&index.key),
            projection: "INCLUDE".to_owned(),
            projected: index.projected.iter().map(|a| a.to_string()).collect(),
        })
        .collect()
}

/// Checks one table resource against its spec, naming what differs.
fn check(logical_id: &str, spec: &TableSpec) {
    let template = template();
    let resource = &template["Resources"][logical_id];
    assert_eq!(
        resource["Type"],
        Value::from("AWS::DynamoDB::Table"),
        "{logical_id}"
    );
    let properties = &resource["Properties"];
    assert_eq!(
        text(&properties["BillingMode"]),
        "PAY_PER_REQUEST",
        "{logical_id}: on-demand billing"
    );
    assert_eq!(
        key_schema(&properties["KeySchema"]),
        spec_key(&spec.key),
        "{logical_id}: KeySchema"
    );

    let declared: BTreeMap<String, String> = properties["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| (text(&a["AttributeName"]), text(&a["AttributeType"])))
        .collect();
    let expected: BTreeMap<String, String> = spec
        .key
        .iter()
        .chain(spec.indexes.iter().flat_map(|i| i.key.iter()))
        .map(|part| (part.name.to_owned(), part.kind.as_str().to_owned()))
        .collect();
    assert_eq!(declared, expected, "{logical_id}: AttributeDefinitions");
    assert_eq!(
        template_indexes(properties),
        spec_indexes(spec),
        "{logical_id}: GlobalSecondaryIndexes"
    );

    let ttl = &properties["TimeToLiveSpecification"];
    assert_eq!(
        text(&ttl["AttributeName"]),
        spec.ttl_attribute,
        "{logical_id}: TTL attribute"
    );
    assert_eq!(ttl["Enabled"], Value::from(true), "{logical_id}: TTL on");
}

#[test]
fn the_connections_table_matches_the_code() {
    check("ConnectionsTable", &connections_table());
}

#[test]
fn the_jobs_table_matches_the_code() {
    check("JobsTable", &jobs_table());
}
