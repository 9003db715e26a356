use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::Utc;
use tracing::Instrument;

use super::SendError;
use super::send::{NewJobEvent, Recorded};
use super::{ActionError, Jobcast, authorized_user, connection_of, error_reply, response};
use crate::gateway::ConnectionGateway;
use crate::protocol::{
    CancelJob, ClientMessage, ClientRequest, ConnectionId, CorrelationId, FrameError, JobCancelled,
    JobEvent, JobId, JobRef, JobStatusReport, ServerMessage, UserId,
};
use crate::store::{FrameVerdict, JobRecord, Store};

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
        match self.admit_frame(gateway, &connection_id).await {
            Admission::Admitted => {}
            Admission::Limited => return response(429, "rate limited"),
            Admission::Closed => return response(429, "closed for abuse"),
        }
        let parsed = match (request.is_base64_encoded, request.body.as_deref()) {
            (true, _) => Err(FrameError::Binary),
            (false, body) => ClientRequest::parse(body.unwrap_or_default()),
        };
        let request_frame = match parsed {
            Ok(frame) => frame,
            Err(err) => {
                tracing::info!(%connection_id, code = ?err.code(), error = %err, "frame refused");
                let reply = error_reply(&ActionError::Frame(err), None);
                self.reply(gateway, &connection_id, ServerMessage::Error(reply), None)
                    .await;
                self.keep_alive(&connection_id).await;
                return response(200, "refused");
            }
        };
        let ClientRequest {
            message,
            correlation_id,
        } = request_frame;
        let action = message.action();
        let span = tracing::info_span!(
            "action",
            %connection_id,
            action,
            job_id = message.job_id().map(JobId::as_str),
            correlation_id = correlation_id.as_ref().map(CorrelationId::as_str),
        );
        let answer = async {
            let caller = Caller {
                connection_id: connection_id.clone(),
                user: authorized_user(request),
                correlation_id: correlation_id.clone(),
            };
            match self.act(gateway, &caller, message).await {
                Ok(replies) => {
                    for reply in replies {
                        self.reply(gateway, &connection_id, reply, correlation_id.clone())
                            .await;
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
                    let reply = ServerMessage::Error(error_reply(&err, Some(action)));
                    self.reply(gateway, &connection_id, reply, correlation_id)
                        .await;
                    response(200, "refused")
                }
            }
        }
        .instrument(span)
        .await;
        self.keep_alive(&connection_id).await;
        answer
    }

    /// Takes a token from the connection's frame bucket (`FRAME_RATE_PER_SECOND`, burst
    /// `FRAME_BURST`). Without one the client is told `rate_limited`; after more than a
    /// burst's worth of refusals in a row (sustained abuse) the connection is closed. A store
    /// failure admits the frame: the limit protects the service, it must not take it down.
    async fn admit_frame<G: ConnectionGateway>(
        &self,
        gateway: &G,
        connection_id: &ConnectionId,
    ) -> Admission {
        let bucket = self.settings.frame_bucket();
        let now_ms = Utc::now().timestamp_millis();
        let verdict = match self
            .store
            .take_frame_token(connection_id, now_ms, bucket)
            .await
        {
            Ok(Some(verdict)) => verdict,
            // Not a known connection: the action itself will say so.
            Ok(None) => return Admission::Admitted,
            Err(err) => {
                tracing::warn!(%connection_id, error = %err, "could not take a frame token; admitted");
                return Admission::Admitted;
            }
        };
        match verdict {
            FrameVerdict::Admitted => Admission::Admitted,
            FrameVerdict::Refused { in_a_row } if in_a_row <= u64::from(bucket.burst) => {
                tracing::info!(%connection_id, in_a_row, "frame over the rate limit");
                let err = ActionError::RateLimited {
                    rate: self.settings.frame_rate,
                    burst: bucket.burst,
                };
                let reply = ServerMessage::Error(error_reply(&err, None));
                self.reply(gateway, connection_id, reply, None).await;
                Admission::Limited
            }
            FrameVerdict::Refused { in_a_row } => {
                tracing::warn!(%connection_id, in_a_row, "sustained frame abuse; closing the connection");
                if let Err(err) = gateway.delete_connection(connection_id).await {
                    tracing::warn!(%connection_id, error = %err, "could not close an abusive connection");
                }
                Admission::Closed
            }
        }
    }

    /// Any frame shows the connection is alive: extend its and its subscriptions' expiry, so
    /// a connection kept open past CONNECTION_TTL_SECONDS (API Gateway allows 2 h) keeps
    /// hearing its jobs. API Gateway closes connections idle for 10 minutes, so a live one
    /// always sends frames.
    async fn keep_alive(&self, connection_id: &ConnectionId) {
        let expires_at = self.expiry(Utc::now(), self.settings.connection_ttl);
        match self.store.touch_connection(connection_id, expires_at).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(%connection_id, "frame from a connection the store no longer has")
            }
            Err(err) => {
                tracing::warn!(%connection_id, error = %err, "could not extend the connection's expiry")
            }
        }
    }

    async fn act<G: ConnectionGateway>(
        &self,
        gateway: &G,
        caller: &Caller,
        message: ClientMessage,
    ) -> Result<Vec<ServerMessage>, ActionError> {
        match message {
            ClientMessage::Ping => Ok(vec![ServerMessage::Pong]),
            ClientMessage::Subscribe(subscribe) => {
                // Posts its own replies: they must precede the replayed events.
                self.subscribe(gateway, caller, subscribe).await?;
                Ok(Vec::new())
            }
            ClientMessage::Unsubscribe(JobRef { job_id }) => {
                self.store
                    .delete_subscription(&caller.connection_id, &job_id)
                    .await?;
                Ok(vec![ServerMessage::Unsubscribed(JobRef { job_id })])
            }
            ClientMessage::RequestStatus(JobRef { job_id }) => {
                let (_, job) = self.accessible_job(caller, &job_id).await?;
                Ok(vec![ServerMessage::JobStatus(status_report(job))])
            }
            ClientMessage::CancelJob(CancelJob { job_id, reason }) => {
                self.cancel(gateway, caller, job_id, reason).await
            }
        }
    }

    async fn cancel<G: ConnectionGateway>(
        &self,
        gateway: &G,
        caller: &Caller,
        job_id: JobId,
        reason: Option<String>,
    ) -> Result<Vec<ServerMessage>, ActionError> {
        self.accessible_job(caller, &job_id).await?;
        let new = NewJobEvent {
            event_id: None,
            event: JobEvent::JobCancelled(JobCancelled { reason }),
            correlation_id: caller.correlation_id.clone(),
            owner: None,
        };
        match self.record_and_deliver(gateway, &job_id, new).await {
            Ok(Recorded::Published { seq, delivery, .. }) => {
                tracing::info!(seq, delivered = delivery.delivered, "job cancelled");
            }
            Ok(Recorded::Finished(state)) => {
                return Err(ActionError::JobFinished { job_id, state });
            }
            Ok(Recorded::OwnedByAnother) => return Err(ActionError::JobNotAccessible(job_id)),
            Err(SendError::Store(err)) => return Err(err.into()),
            Err(SendError::PayloadTooLarge { size, limit }) => {
                return Err(FrameError::TooLarge { size, limit }.into());
            }
            Err(SendError::InvalidRequest(err)) => return Err(err.into()),
        }
        let job = self
            .store
            .get_job(&job_id)
            .await?
            .ok_or(ActionError::JobNotAccessible(job_id))?;
        Ok(vec![ServerMessage::JobStatus(status_report(job))])
    }

    /// The job, if it exists and the caller may see it: its owner, or anyone for a job without
    /// one. "No such job" and "not yours" are one error, so nobody can probe for others' jobs.
    pub(super) async fn accessible_job(
        &self,
        caller: &Caller,
        job_id: &JobId,
    ) -> Result<(UserId, JobRecord), ActionError> {
        let user_id = self.user_of(caller).await?;
        match self.store.get_job(job_id).await? {
            Some(job) if job.owner.as_ref().is_none_or(|owner| *owner == user_id) => {
                Ok((user_id, job))
            }
            Some(_) => {
                tracing::warn!(%user_id, "refused: the job belongs to another user");
                Err(ActionError::JobNotAccessible(job_id.clone()))
            }
            None => Err(ActionError::JobNotAccessible(job_id.clone())),
        }
    }

    /// The caller's user: from the authorizer context when one ran, else from the store.
    async fn user_of(&self, caller: &Caller) -> Result<UserId, ActionError> {
        if let Some(user) = &caller.user {
            return Ok(user.clone());
        }
        self.store
            .get_connection(&caller.connection_id)
            .await?
            .map(|connection| connection.user_id)
            .ok_or(ActionError::UnknownConnection)
    }
}

enum Admission {
    Admitted,
    Limited,
    Closed,
}

pub(super) struct Caller {
    pub connection_id: ConnectionId,
    pub user: Option<UserId>,
    pub correlation_id: Option<CorrelationId>,
}

pub(crate) fn status_report(job: JobRecord) -> JobStatusReport {
    JobStatusReport {
        job_id: job.job_id,
        status: job.state,
        stage: job.stage,
        progress: job.progress,
        message: job.message,
        last_seq: job.last_seq,
        cancel_requested: job.cancel_requested,
        updated_at: job.updated_at,
    }
}
