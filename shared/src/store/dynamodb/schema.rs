//! The tables' key schema, declared once: the adapter, jobcast-local's table creation, the
//! tests and the check against `template.yaml` all read it from here.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

use crate::store::StoreError;
pub use crate::store::TableNames;

/// The connections table's partition key, and the sort key of both of its indexes.
pub const CONNECTION_ID: &str = "connection_id";
/// The connections table's sort key: `connection` for the connection item, `job#{job_id}` for
/// each of its subscriptions.
pub const SORT_KEY: &str = "sk";
/// The jobs table's partition key, and the partition key of the `by_job` index.
pub const JOB_ID: &str = "job_id";
/// The partition key of the `by_user` index (only connection items carry it).
pub const USER_ID: &str = "user_id";
/// The jobs table's sort key: 0 for the job's snapshot, 1, 2, … for its logged events.
pub const SEQ: &str = "seq";
/// The TTL attribute of both tables, in Unix seconds.
pub const EXPIRES_AT: &str = "expires_at";
/// A subscription's `live_after`, projected into `by_job` for fan-out.
pub const LIVE_AFTER: &str = "live_after";
/// A subscription's user, projected into `by_job` so fan-out serves only the job's owner.
pub const SUBSCRIBER: &str = "subscriber";
/// The connections table's index of subscriptions by job.
pub const BY_JOB_INDEX: &str = "by_job";
/// The connections table's index of connections by user.
pub const BY_USER_INDEX: &str = "by_user";

/// One attribute of a key: name, type, role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPart {
    /// The attribute's name.
    pub name: &'static str,
    /// Its DynamoDB type.
    pub kind: ScalarAttributeType,
    /// Partition (hash) or sort (range) key.
    pub role: KeyType,
}

/// An index: its name, its key, the non-key attributes it projects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// The index's name.
    pub name: &'static str,
    /// Its key attributes.
    pub key: Vec<KeyPart>,
    /// The non-key attributes it projects.
    pub projected: Vec<&'static str>,
}

/// A table as jobcast needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The table's key attributes.
    pub key: Vec<KeyPart>,
    /// Its global secondary indexes.
    pub indexes: Vec<IndexSpec>,
    /// The attribute DynamoDB's TTL deletes expired items by.
    pub ttl_attribute: &'static str,
}

fn part(name: &'static str, kind: ScalarAttributeType, role: KeyType) -> KeyPart {
    KeyPart { name, kind, role }
}

/// Connections and subscriptions share one partition per connection, so `$disconnect` finds
/// everything of a connection with one Query. Both indexes are sparse: only subscription items
/// carry `job_id`, only connection items carry `user_id`. They project only what fan-out
/// filters on: the expiry (to skip stale items), and on `by_job` the subscription's
/// `live_after` (to leave earlier events to its replay) and its `subscriber` (to serve only
/// the job's owner).
pub fn connections_table() -> TableSpec {
    use KeyType::{Hash, Range};
    use ScalarAttributeType::S;
    TableSpec {
        key: vec![part(CONNECTION_ID, S, Hash), part(SORT_KEY, S, Range)],
        indexes: vec![
            IndexSpec {
                name: BY_JOB_INDEX,
                key: vec![part(JOB_ID, S, Hash), part(CONNECTION_ID, S, Range)],
                projected: vec![EXPIRES_AT, LIVE_AFTER, SUBSCRIBER],
            },
            IndexSpec {
                name: BY_USER_INDEX,
                key: vec![part(USER_ID, S, Hash), part(CONNECTION_ID, S, Range)],
                projected: vec![EXPIRES_AT],
            },
        ],
        ttl_attribute: EXPIRES_AT,
    }
}

/// A job's snapshot sits at `seq = 0`; its events at `seq = 1, 2, …`, so "events since N" is
/// one Query on the key.
pub fn jobs_table() -> TableSpec {
    use KeyType::{Hash, Range};
    use ScalarAttributeType::{N, S};
    TableSpec {
        key: vec![part(JOB_ID, S, Hash), part(SEQ, N, Range)],
        indexes: vec![],
        ttl_attribute: EXPIRES_AT,
    }
}

fn key_schema(parts: &[KeyPart]) -> Vec<KeySchemaElement> {
    parts
        .iter()
        .map(|p| {
            KeySchemaElement::builder()
                .attribute_name(p.name)
                .key_type(p.role.clone())
                .build()
                .expect("name and type are set")
        })
        .collect()
}

/// Creates the table (on-demand billing, TTL on) unless it exists. For jobcast-local and the
/// tests; in AWS, `template.yaml` creates the same tables.
pub async fn ensure_table(client: &Client, name: &str, spec: &TableSpec) -> Result<(), StoreError> {
    match client.describe_table().table_name(name).send().await {
        Ok(_) => return Ok(()),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) => {}
        Err(err) => {
            return Err(StoreError::Unavailable(format!(
                "describing {name}: {err:?}"
            )));
        }
    }
    let mut attributes: Vec<&KeyPart> = spec.key.iter().collect();
    for index in &spec.indexes {
        for key in &index.key {
            if !attributes.iter().any(|a| a.name == key.name) {
                attributes.push(key);
            }
        }
    }
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(key_schema(&spec.key)));
    for attribute in attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(attribute.name)
                .attribute_type(attribute.kind.clone())
                .build()
                .expect("name and type are set"),
        );
    }
    for index in &spec.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .set_key_schema(Some(key_schema(&index.key)))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::Include)
                        .set_non_key_attributes(Some(
                            index.projected.iter().map(|a| a.to_string()).collect(),
                        ))
                        .build(),
                )
                .build()
                .expect("name and key are set"),
        );
    }
    request
        .send()
        .await
        .map_err(|e| StoreError::Unavailable(format!("creating {name}: {e:?}")))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(spec.ttl_attribute)
                .enabled(true)
                .build()
                .expect("name and flag are set"),
        )
        .send()
        .await
        .map_err(|e| StoreError::Unavailable(format!("enabling TTL on {name}: {e:?}")))?;
    Ok(())
}
