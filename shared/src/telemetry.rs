//! Logging set-up: JSON lines in Lambda (CloudWatch parses them), readable text elsewhere.

use tracing_subscriber::EnvFilter;

use crate::settings::LogSettings;

/// Installs the global subscriber, as [`LogSettings`] say. Logs go to stderr (CloudWatch takes
/// both streams), leaving stdout to programs and metric lines.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = if settings.json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .without_time()
            .try_init()
    } else {
        builder.with_target(false).try_init()
    };
}
