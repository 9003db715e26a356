//! `$connect`: records the connection with its user and expiry, after the REQUEST authorizer
//! (or, without authentication, `?user_id=`) has said who the user is — unless the user
//! already holds `MAX_CONNECTIONS_PER_USER` connections. Two connects racing at the limit may
//! both pass: the limit bounds a user's connections to about itself, not to the exact number.
//!
//! A one-job socket (`?job_id=X`, with `&last_seq=N` to resume) is refused here when its job
//! is not the user's to see, and otherwise comes back with the `subscribe` it never sends,
//! for whoever serves the connection to run once it is open (see
//! `sender/subscribe_connection.rs`).

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use chrono::Utc;

use super::access::{Caller, accessible_job};
use super::apigw::{authorized_user, connection_of, response};
use super::errors::ActionError;
use super::service::Jobcast;
use crate::auth::chosen_subprotocol;
use crate::protocol::{ConnectionId, JobId, Seq, SubscribeConnection, UserId};
use crate::settings::AuthMode;
use crate::store::{Audience, Connection, PageRequest, Store, StoreError};

/// The body of a `$connect` refused for the connection limit (API Gateway answers the
/// upgrade with the status; a client that reads the body finds the code).
const TOO_MANY_CONNECTIONS: &str = "too_many_connections";

/// What `$connect` answered, and what is to happen once the connection is open.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The answer for API Gateway: a non-2xx refuses the upgrade with that status.
    pub response: ApiGatewayProxyResponse,
    /// For a connection opened with `?job_id=`: the sender request that subscribes it, to be
    /// run once the connection is open (API Gateway opens it only after this answer).
    pub subscribe: Option<SubscribeConnection>,
}

/// The job a one-job socket asks for on its URL (`?job_id=X&last_seq=N`), if any.
fn job_on_url(
    request: &ApiGatewayWebsocketProxyRequest,
) -> Result<Option<(JobId, Option<Seq>)>, String> {
    let query = &request.query_string_parameters;
    let Some(raw) = query.first("job_id") else {
        return match query.first("last_seq") {
            Some(_) => Err("last_seq needs a job_id".to_owned()),
            None => Ok(None),
        };
    };
    let job_id = JobId::parse(raw).map_err(|err| format!("job_id: {err}"))?;
    let last_seq = match query.first("last_seq") {
        None => None,
        Some(raw) => Some(
            raw.parse::<Seq>()
                .map_err(|_| "last_seq must be a whole number".to_owned())?,
        ),
    };
    Ok(Some((job_id, last_seq)))
}

impl<S: Store> Jobcast<S> {
    /// How many live connections `user_id` holds, counted up to `most` (a page past it at
    /// the most): the connection limit, presence, and whether a user went offline.
    pub(in crate::handlers) async fn count_connections(
        &self,
        user_id: &UserId,
        most: usize,
    ) -> Result<usize, StoreError> {
        let audience = Audience::User(user_id.clone());
        let mut request = PageRequest::first((most + 1).min(100));
        let mut held = 0;
        loop {
            let page = self
                .store()
                .connections_of(&audience, request.clone())
                .await?;
            held += page.items.len();
            match page.next {
                Some(next) if held < most => request.after = Some(next),
                _ => return Ok(held),
            }
        }
    }

    /// How many live connections `user_id` holds, counted up to the limit. Without
    /// authentication users name themselves, so a per-user limit would limit nobody: 0.
    async fn connections_held(&self, user_id: &UserId) -> Result<usize, StoreError> {
        if self.settings().auth_mode != AuthMode::Authorizer {
            return Ok(0);
        }
        let limit = self.settings().max_connections_per_user;
        self.count_connections(user_id, limit).await
    }

    /// `$connect`: records the connection with its user and expiry. A non-2xx answer makes
    /// API Gateway refuse the WebSocket upgrade with that status. See
    /// [`Jobcast::handle_connect_with_follow_up`] for a server that runs one-job sockets.
    pub async fn handle_connect(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> ApiGatewayProxyResponse {
        self.handle_connect_with_follow_up(request).await.response
    }

    /// `$connect`, with the `subscribe` of a one-job socket to run once it is open.
    pub async fn handle_connect_with_follow_up(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> Connected {
        let answer = |response| Connected {
            response,
            subscribe: None,
        };
        let Some(connection_id) = connection_of(request) else {
            tracing::warn!("$connect without a valid connection id");
            return answer(response(400, "missing connection id"));
        };
        let job = match job_on_url(request) {
            Ok(job) => job,
            Err(reason) => {
                tracing::info!(%connection_id, reason, "$connect refused: a bad job on the URL");
                return answer(response(400, &reason));
            }
        };
        let response = self
            .record_connection(request, &connection_id, job.as_ref())
            .await;
        let subscribe = match job {
            Some((job_id, last_seq)) if (200..300).contains(&response.status_code) => {
                Some(SubscribeConnection {
                    connection_id,
                    job_id,
                    last_seq,
                })
            }
            _ => None,
        };
        Connected {
            response,
            subscribe,
        }
    }

    /// Checks the user, the limit and the job on the URL, and records the connection.
    async fn record_connection(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
        connection_id: &ConnectionId,
        job: Option<&(JobId, Option<Seq>)>,
    ) -> ApiGatewayProxyResponse {
        let user_id = match self.settings().auth_mode {
            AuthMode::Authorizer => match authorized_user(request) {
                Some(user_id) => user_id,
                None => {
                    tracing::warn!(%connection_id, "$connect without an authorizer principal");
                    return response(401, "unauthorized");
                }
            },
            AuthMode::None => match request.query_string_parameters.first("user_id") {
                None => UserId::anonymous(),
                Some(raw) => match UserId::parse(raw) {
                    Ok(user_id) => user_id,
                    Err(err) => return response(400, &err.to_string()),
                },
            },
        };
        match self.connections_held(&user_id).await {
            Ok(held) if held >= self.settings().max_connections_per_user => {
                tracing::warn!(%connection_id, %user_id, held, "$connect refused: too many connections");
                return response(429, TOO_MANY_CONNECTIONS);
            }
            Ok(_) => {}
            Err(err) => {
                // Fail closed: a store that cannot count cannot record the connection either.
                tracing::error!(%connection_id, error = %err, "could not count the user's connections");
                return response(503, "could not check the connection limit");
            }
        }
        if let Some((job_id, _)) = job {
            // Every check `subscribe` makes is made again when it runs; this one spares a
            // socket that could never follow its job the upgrade.
            let caller = Caller {
                connection_id: connection_id.clone(),
                user: Some(user_id.clone()),
                correlation_id: None,
            };
            match accessible_job(self, &caller, job_id).await {
                Ok(_) => {}
                Err(ActionError::Store(err)) => {
                    tracing::error!(%connection_id, error = %err, "could not read the job on the URL");
                    return response(503, "could not check the job");
                }
                Err(err) => {
                    tracing::info!(%connection_id, %user_id, error = %err, "$connect refused: the job on the URL");
                    return response(403, "forbidden");
                }
            }
        }
        let now = Utc::now();
        let connection = Connection {
            connection_id: connection_id.clone(),
            user_id: user_id.clone(),
            connected_at: now,
            expires_at: self.expiry(now, self.settings().connection_ttl),
        };
        match self.store().put_connection(&connection).await {
            Ok(()) => {
                tracing::info!(%connection_id, %user_id, "connected");
                let mut answer = response(200, "connected");
                // A client that offered subprotocols fails the handshake unless one is echoed.
                if let Some(protocol) = chosen_subprotocol(&request.headers) {
                    answer.headers.insert(
                        http::header::SEC_WEBSOCKET_PROTOCOL,
                        http::HeaderValue::from_static(protocol),
                    );
                }
                answer
            }
            Err(err) => {
                tracing::error!(%connection_id, error = %err, "could not record the connection");
                response(500, "could not record the connection")
            }
        }
    }
}
