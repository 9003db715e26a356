//! The two tables' names: settings read them whichever store runs, so they live apart from
//! the DynamoDB adapter (and its SDK types), which is a feature.

/// The names of the two tables.
#[derive(Debug, Clone)]
pub struct TableNames {
    /// Connections and their subscriptions.
    pub connections: String,
    /// Job heads and their logged events.
    pub jobs: String,
}

impl Default for TableNames {
    /// jobcast-local's names; in AWS, `CONNECTIONS_TABLE_NAME` and `JOBS_TABLE_NAME` (read by
    /// [`crate::settings`]) name the stack's tables.
    fn default() -> Self {
        Self {
            connections: "jobcast-connections".into(),
            jobs: "jobcast-jobs".into(),
        }
    }
}
