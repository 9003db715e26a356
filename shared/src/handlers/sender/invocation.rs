//! The sender's entry points: any invocation (an SQS batch, recognised by its `Records`, or
//! a direct request), and a direct request alone.

use std::time::Instant;

use serde_json::Value;

use super::serve::serve;
use super::sqs::is_sqs_event;
use crate::gateway::ConnectionGateway;
use crate::handlers::errors::SendError;
use crate::handlers::service::Jobcast;
use crate::protocol::{FrameError, SendOutcome, SenderRequest};
use crate::store::Store;

impl<S: Store> Jobcast<S> {
    /// The sender's entry point for any invocation, with no deadline; see
    /// [`Jobcast::handle_sender_invocation_until`].
    pub async fn handle_sender_invocation<G: ConnectionGateway>(
        &self,
        gateway: &G,
        payload: Value,
    ) -> Result<Value, SendError> {
        self.handle_sender_invocation_until(gateway, payload, None)
            .await
    }

    /// The sender's entry point for any invocation: an SQS batch (recognised by its
    /// `Records`, and handled within `deadline`) or a direct send request. Answers what Lambda
    /// should return.
    pub async fn handle_sender_invocation_until<G: ConnectionGateway>(
        &self,
        gateway: &G,
        payload: Value,
        deadline: Option<Instant>,
    ) -> Result<Value, SendError> {
        if is_sqs_event(&payload) {
            let event = serde_json::from_value(payload).map_err(|err| {
                FrameError::invalid_field("Records", format!("is not an SQS event: {err}"))
            })?;
            // Boxed: the whole fan-out future nested in a binary's `main` overflows rustc's
            // layout query depth, and one allocation per invocation costs nothing.
            let (response, _) = Box::pin(self.handle_sqs_until(gateway, event, deadline)).await;
            return Ok(serde_json::to_value(response).expect("a batch response serializes"));
        }
        let outcome = Box::pin(self.handle_send(gateway, payload)).await?;
        Ok(serde_json::to_value(outcome).expect("a send outcome serializes"))
    }

    /// A direct request: parses it and serves it.
    pub async fn handle_send<G: ConnectionGateway>(
        &self,
        gateway: &G,
        input: Value,
    ) -> Result<SendOutcome, SendError> {
        let request = SenderRequest::from_value(input)?;
        serve(self, gateway, request).await
    }
}
