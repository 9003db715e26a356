//! The tables `template.yaml` deploys are the tables the code (and every test) creates: the key
//! schema lives in `shared/src/store/dynamodb/schema.rs`, and this test holds the template to it.

use std::collections::BTreeMap;

use jobcast::store::dynamodb::schema::{TableSpec, connections_table, jobs_table};
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

fn key_schema(value: &Value) -> Vec<(String, String)> {
    value
        .as_sequence()
        .expect("a KeySchema list")
        .iter()
        .map(|part| (text(&part["AttributeName"]), text(&part["KeyType"])))
        .collect()
}

fn spec_key(parts: &[jobcast::store::dynamodb::schema::KeyPart]) -> Vec<(String, String)> {
    parts
        .iter()
        .map(|p| (p.name.to_owned(), p.role.as_str().to_owned()))
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
    let mut expected = BTreeMap::new();
    for part in spec
        .key
        .iter()
        .chain(spec.indexes.iter().flat_map(|i| i.key.iter()))
    {
        expected.insert(part.name.to_owned(), part.kind.as_str().to_owned());
    }
    assert_eq!(declared, expected, "{logical_id}: AttributeDefinitions");

    let indexes: Vec<(String, Vec<(String, String)>, String, Vec<String>)> =
        properties["GlobalSecondaryIndexes"]
            .as_sequence()
            .map(|list| {
                list.iter()
                    .map(|index| {
                        let projection = &index["Projection"];
                        let non_key = projection["NonKeyAttributes"]
                            .as_sequence()
                            .map(|names| names.iter().map(text).collect())
                            .unwrap_or_default();
                        (
                            text(&index["IndexName"]),
                            key_schema(&index["KeySchema"]),
                            text(&projection["ProjectionType"]),
                            non_key,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
    let expected_indexes: Vec<_> = spec
        .indexes
        .iter()
        .map(|i| {
            (
                i.name.to_owned(),
                spec_key(&i.key),
                "INCLUDE".to_owned(),
                i.projected.iter().map(|a| a.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(
        indexes, expected_indexes,
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
