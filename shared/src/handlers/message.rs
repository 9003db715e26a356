//! `$default` and the action routes: every client frame is admitted, parsed, handed to its
//! action (one file each under `actions/`), and answered on the caller's own connection.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use tracing::Instrument;

use super::access::Caller;
use super::actions;
use super::admission::{Admission, admit_frame, keep_alive};
use super::apigw::{authorized_user, connection_of, response};
use super::errors::{ActionError, error_reply};
use super::reply::reply;
use super::service::Jobcast;
use crate::gateway::ConnectionGateway;
use crate::protocol::{
    ClientMessage, ClientRequest, CorrelationId, FrameError, JobId, ServerMessage,
};
use crate::store::Store;

impl<S: Store> Jobcast<S> {
    /// Every client frame (`$default` and the action routes): parse, act, reply on the
    /// caller's own connection. The HTTP answer is for API Gateway's logs; clients hear only
    /// what is posted to them.
    pub async fn handle_message<G: ConnectionGateway>(
        &self,
        gateway: &G,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        let Some(connection_id) = connection_of(request) else {
            return response(400, "missing connection id");
        };
        let (expires_at, stored_user) = match admit_frame(self, gateway, &connection_id).await {
            Admission::Admitted(expires_at, user_id) => (expires_at, user_id),
            Admission::Limited => return response(429, "rate limited"),
            Admission::Closed => return response(429, "closed for abuse"),
            Admission::Unknown => return response(410, "unknown connection"),
        };
        let parsed = match (request.is_base64_encoded, request.body.as_deref()) {
            (true, _) => Err(FrameError::Binary),
            (false, body) => ClientRequest::parse(body.unwrap_or_default()),
        };
        let ClientRequest {
            message,
            correlation_id,
        } = match parsed {
            Ok(frame) => frame,
            Err(err) => {
                tracing::info!(%connection_id, code = ?err.code(), error = %err, "frame refused");
                let refusal = ServerMessage::Error(error_reply(&ActionError::Frame(err), None));
                reply(self, gateway, &connection_id, refusal, None).await;
                keep_alive(self, &connection_id, expires_at).await;
                return response(200, "refused");
            }
        };
        let caller = Caller {
            connection_id,
            // The authorizer's word first; else the user the frame's own write read back.
            user: authorized_user(request).or(stored_user),
            correlation_id,
        };
        let span = tracing::info_span!(
            "action",
            connection_id = %caller.connection_id,
            action = message.action(),
            job_id = message.job_id().map(JobId::as_str),
            correlation_id = caller.correlation_id.as_ref().map(CorrelationId::as_str),
        );
        let answer = self
            .serve_action(gateway, &caller, message)
            .instrument(span)
            .await;
        keep_alive(self, &caller.connection_id, expires_at).await;
        answer
    }

    /// Runs one parsed action and posts its replies, or its error.
    pub(in crate::handlers) async fn serve_action<G: ConnectionGateway>(
        &self,
        gateway: &G,
        caller: &Caller,
        message: ClientMessage,
    ) -> ApiGatewayProxyResponse {
        let action = message.action();
        let result = match message {
            ClientMessage::Ping => actions::ping::run(),
            ClientMessage::Subscribe(request) => {
                actions::subscribe::run(self, gateway, caller, request).await
            }
            ClientMessage::Unsubscribe(request) => {
                actions::unsubscribe::run(self, caller, request).await
            }
            ClientMessage::RequestStatus(request) => {
                actions::request_status::run(self, caller, request).await
            }
            ClientMessage::CancelJob(request) => {
                actions::cancel_job::run(self, gateway, caller, request).await
            }
        };
        let connection_id = &caller.connection_id;
        match result {
            Ok(replies) => {
                for message in replies {
                    let correlation_id = caller.correlation_id.clone();
                    reply(self, gateway, connection_id, message, correlation_id).await;
                }
                tracing::info!("action served");
                response(200, "ok")
            }
            Err(err) => {
                match &err {
                    ActionError::Store(store_err) => {
                        tracing::error!(error = %store_err, "action failed")
                    }
                    other => tracing::info!(error = %other, "action refused"),
                }
                let refusal = ServerMessage::Error(error_reply(&err, Some(action)));
                let correlation_id = caller.correlation_id.clone();
                reply(self, gateway, connection_id, refusal, correlation_id).await;
                response(200, "refused")
            }
        }
    }
}
