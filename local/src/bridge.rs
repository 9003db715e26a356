//! The Redis bridge in-process (`--redis-url`): the same bridge `jobcast bridge redis` runs,
//! forwarding straight to this emulator's sender.

use std::sync::{Arc, Weak};

use jobcast::protocol::SendOutcome;
use jobcast::store::Store;
use jobcast_bridge::message::Forward;
use jobcast_bridge::{Accepted, Destination, DestinationError};

use crate::App;

/// This emulator's sender, as a bridge destination. Weak: the emulator owns the bridge.
pub(crate) struct InProcess<S> {
    pub app: Weak<App<S>>,
}

impl<S: Store> Destination for InProcess<S> {
    async fn forward(&self, forward: &Forward) -> Result<Accepted, DestinationError> {
        let app: Arc<App<S>> = self
            .app
            .upgrade()
            .ok_or_else(|| DestinationError::Unavailable("the emulator has stopped".into()))?;
        match app
            .service
            .handle_send(&app.registry, forward.request.clone())
            .await
        {
            Ok(SendOutcome::Delivered { delivery, .. }) => Ok(Accepted {
                delivered: delivery.delivered,
                failed: delivery.failed,
                queued: false,
            }),
            Ok(SendOutcome::Ignored { reason, .. }) => Err(DestinationError::Refused(reason)),
            Ok(other) => Err(DestinationError::Refused(format!(
                "not a user message's outcome: {other:?}"
            ))),
            Err(err) if err.is_poison() => Err(DestinationError::Refused(err.to_string())),
            Err(err) => Err(DestinationError::Unavailable(err.to_string())),
        }
    }
}
