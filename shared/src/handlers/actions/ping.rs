//! `ping`: a keep-alive (API Gateway closes a connection idle for 10 minutes); the frame
//! itself extends the connection's expiry, the answer is `pong`.

use crate::protocol::ServerMessage;

/// Answers `pong`.
pub(in crate::handlers) fn run<E>() -> Result<Vec<ServerMessage>, E> {
    Ok(vec![ServerMessage::Pong])
}
