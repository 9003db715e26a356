//! Serves one parsed sender request, in a span naming it, by handing it to its own file.

use tracing::Instrument;

use super::{presence, publish, query, register_job, subscribe_connection, user_message};
use crate::gateway::ConnectionGateway;
use crate::handlers::errors::SendError;
use crate::handlers::service::Jobcast;
use crate::protocol::{CorrelationId, SendOutcome, SenderRequest};
use crate::store::Store;

/// Publishes a job event, delivers a user message, registers a job or answers a question.
pub(super) async fn serve<S: Store, G: ConnectionGateway>(
    service: &Jobcast<S>,
    gateway: &G,
    request: SenderRequest,
) -> Result<SendOutcome, SendError> {
    match request {
        SenderRequest::Job(request) => {
            let span = tracing::info_span!(
                "send",
                job_id = %request.job_id,
                event_type = request.event.type_name(),
                correlation_id = request.correlation_id.as_ref().map(CorrelationId::as_str),
            );
            publish::run(service, gateway, request)
                .instrument(span)
                .await
        }
        SenderRequest::Register(request) => {
            let span = tracing::info_span!(
                "register",
                job_id = %request.job_id,
                correlation_id = request.correlation_id.as_ref().map(CorrelationId::as_str),
            );
            register_job::run(service, request).instrument(span).await
        }
        SenderRequest::Query(kind, request) => {
            let span = tracing::info_span!(
                "query",
                job_id = %request.job_id,
                correlation_id = request.correlation_id.as_ref().map(CorrelationId::as_str),
            );
            query::run(service, kind, request).instrument(span).await
        }
        SenderRequest::Presence(request) => {
            let span = tracing::info_span!(
                "presence",
                user_id = %request.user_id,
                correlation_id = request.correlation_id.as_ref().map(CorrelationId::as_str),
            );
            presence::run(service, request).instrument(span).await
        }
        SenderRequest::SubscribeConnection(request) => {
            let span = tracing::info_span!(
                "subscribe_connection",
                connection_id = %request.connection_id,
                job_id = %request.job_id,
            );
            subscribe_connection::run(service, gateway, request)
                .instrument(span)
                .await
        }
        SenderRequest::User(request) => {
            let span = tracing::info_span!(
                "send",
                user_id = %request.user_id,
                correlation_id = request.correlation_id.as_ref().map(CorrelationId::as_str),
            );
            user_message::run(service, gateway, request)
                .instrument(span)
                .await
        }
    }
}
