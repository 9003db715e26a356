//! A gateway that records posts instead of sending them: the handlers' tests read what each
//! connection would have received.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::sync::Mutex;

use bytes::Bytes;
use jobcast::gateway::{ConnectionGateway, PostError};
use jobcast::protocol::ConnectionId;
use serde_json::Value;

#[derive(Default)]
pub struct RecordingGateway {
    posts: Mutex<Vec<(ConnectionId, Value)>>,
}

impl RecordingGateway {
    /// Everything posted since the last call, in order.
    pub fn take(&self) -> Vec<(ConnectionId, Value)> {
        std::mem::take(&mut *self.posts.lock().unwrap())
    }

    /// The types of the frames posted since the last call.
    pub fn take_types(&self) -> Vec<String> {
        self.take()
            .into_iter()
            .map(|(_, frame)| frame["type"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

impl ConnectionGateway for RecordingGateway {
    async fn post_to_connection(
        &self,
        connection_id: &ConnectionId,
        payload: Bytes,
    ) -> Result<(), PostError> {
        let frame = serde_json::from_slice(&payload).expect("posts are JSON frames");
        self.posts
            .lock()
            .unwrap()
            .push((connection_id.clone(), frame));
        Ok(())
    }

    async fn delete_connection(&self, _connection_id: &ConnectionId) -> Result<(), PostError> {
        Ok(())
    }
}

pub fn read_json(path: &std::path::Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}
