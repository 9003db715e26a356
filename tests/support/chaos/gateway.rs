//! API Gateway, simulated for the chaos check.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use jobcast::gateway::{ConnectionGateway, PostError};
use jobcast::protocol::ConnectionId;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::Schedule;

/// API Gateway, simulated: each connection is a client's inbox; posts fail as the schedule says.
pub(super) struct ChaosGateway {
    pub(super) inboxes: Mutex<HashMap<ConnectionId, UnboundedSender<Value>>>,
    pub(super) rng: Mutex<StdRng>,
    pub(super) schedule: Schedule,
}

impl ChaosGateway {
    pub(super) fn open(&self, id: &ConnectionId) -> UnboundedReceiver<Value> {
        let (sender, receiver) = unbounded_channel();
        self.inboxes.lock().unwrap().insert(id.clone(), sender);
        receiver
    }

    pub(super) fn close(&self, id: &ConnectionId) {
        self.inboxes.lock().unwrap().remove(id);
    }

    fn roll(&self) -> f64 {
        self.rng.lock().unwrap().random()
    }
}

impl ConnectionGateway for ChaosGateway {
    async fn post_to_connection(&self, id: &ConnectionId, payload: Bytes) -> Result<(), PostError> {
        let Some(inbox) = self.inboxes.lock().unwrap().get(id).cloned() else {
            return Err(PostError::Gone);
        };
        let s = &self.schedule;
        let roll = self.roll();
        if roll < s.throttle_rate {
            return Err(PostError::Throttled);
        }
        if roll < s.throttle_rate + s.error_rate {
            return Err(PostError::ServerError { status: 500 });
        }
        let frame: Value = serde_json::from_slice(&payload).expect("frames are JSON");
        if inbox.send(frame).is_err() {
            return Err(PostError::Gone);
        }
        if roll < s.throttle_rate + s.error_rate + s.after_delivery_rate {
            return Err(PostError::ServerError { status: 500 });
        }
        Ok(())
    }

    async fn delete_connection(&self, id: &ConnectionId) -> Result<(), PostError> {
        self.close(id);
        Ok(())
    }
}
