//! `subscribe_connection`: the `subscribe` a one-job socket (`?job_id=` on the connect URL)
//! never sends. `$connect` cannot run it itself: API Gateway opens the connection only once
//! `$connect` has answered, and a post before that finds it gone. So `$connect` hands it on
//! (an asynchronous invocation of the sender in AWS, a task in jobcast-local), and it waits
//! here, briefly, for the connection to open before it subscribes, exactly as a frame would.

use std::time::Duration;

use crate::gateway::ConnectionGateway;
use crate::handlers::access::Caller;
use crate::handlers::errors::SendError;
use crate::handlers::service::Jobcast;
use crate::protocol::{ClientMessage, SendOutcome, Subscribe, SubscribeConnection};
use crate::store::Store;

/// How long a connection may take to open after `$connect` answered.
const OPEN_WITHIN: Duration = Duration::from_secs(5);

/// Subscribes the connection once it is open; answers `connection_served` or
/// `connection_gone`.
pub(super) async fn run<S: Store, G: ConnectionGateway>(
    service: &Jobcast<S>,
    gateway: &G,
    request: SubscribeConnection,
) -> Result<SendOutcome, SendError> {
    let SubscribeConnection {
        connection_id,
        job_id,
        last_seq,
    } = request;
    if !opened(gateway, &connection_id).await {
        tracing::info!("the connection did not open; nothing to subscribe");
        return Ok(SendOutcome::ConnectionGone { connection_id });
    }
    // The caller's user comes from the store, where `$connect` recorded it: whoever sends
    // this request, the connection follows only what its own user may see.
    let caller = Caller {
        connection_id: connection_id.clone(),
        user: None,
        correlation_id: None,
    };
    let subscribe = ClientMessage::Subscribe(Subscribe {
        job_id: job_id.clone(),
        last_seq,
    });
    service.serve_action(gateway, &caller, subscribe).await;
    Ok(SendOutcome::ConnectionServed {
        connection_id,
        job_id,
    })
}

/// Whether the connection is open, asking again with growing pauses for [`OPEN_WITHIN`].
async fn opened<G: ConnectionGateway>(
    gateway: &G,
    connection_id: &crate::protocol::ConnectionId,
) -> bool {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        match gateway.connection_open(connection_id).await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %err, "could not ask whether the connection is open")
            }
        }
        if started.elapsed() + pause > OPEN_WITHIN {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}
