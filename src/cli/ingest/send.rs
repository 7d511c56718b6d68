//! Sending batches: retries with backoff on 503/429 (Retry-After honoured) and on a lost
//! connection; a batch the server refuses as too large (413), too slow (408) or invalid (400/422)
//! is split in halves until the one bad document is found and reported.

use std::time::Duration;

use serde_json::{json, Value};

use super::read::Doc;
use crate::cli::client::{segment, Client, ClientError};

/// Tries of one batch on 503/429 and connection errors before giving up.
const MAX_TRIES: u32 = 8;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What happened to the documents of one batch.
#[derive(Debug, Default)]
pub struct Sent {
    pub documents: usize,
    pub passages: u64,
    pub tokens: u64,
    /// Documents the server refused: (id, why).
    pub refused: Vec<(String, String)>,
}

/// An error that stops the whole run (the server is gone, the key is wrong, no collection).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub ClientError);

pub fn send(client: &Client, collection: &str, docs: &[Doc]) -> Result<Sent, Fatal> {
    let mut sent = Sent::default();
    send_into(client, &format!("/collections/{}/documents", segment(collection)), docs, &mut sent)?;
    Ok(sent)
}

fn send_into(client: &Client, path: &str, docs: &[Doc], sent: &mut Sent) -> Result<(), Fatal> {
    if docs.is_empty() {
        return Ok(());
    }
    let body = json!({"documents": docs.iter().map(|d| json!({"id": d.id, "text": d.text, "metadata": d.metadata})).collect::<Vec<_>>()});
    let mut tries = 0;
    loop {
        tries += 1;
        let error = match client.post(path, &body) {
            Ok(answer) => {
                sent.documents += docs.len();
                sent.passages += sum(&answer["passages"]);
                sent.tokens += sum(&answer["tokens"]);
                return Ok(());
            }
            Err(error) => error,
        };
        match &error {
            ClientError::Http { status: 503 | 429, retry_after, .. } if tries < MAX_TRIES => {
                let wait = retry_after.map_or_else(|| backoff(tries), Duration::from_secs).max(backoff(tries)).min(MAX_BACKOFF);
                tracing::debug!(?wait, "server busy; retrying");
                std::thread::sleep(wait);
            }
            ClientError::Transport { .. } if tries < MAX_TRIES => std::thread::sleep(backoff(tries)),
            ClientError::Http { status: 408 | 413 | 400 | 422, message, .. } => {
                if docs.len() == 1 {
                    sent.refused.push((docs[0].id.clone(), message.clone()));
                    return Ok(());
                }
                let (left, right) = docs.split_at(docs.len() / 2);
                send_into(client, path, left, sent)?;
                return send_into(client, path, right, sent);
            }
            ClientError::Http { status, message, .. } if *status >= 500 && *status != 503 && tries < 3 => {
                tracing::warn!(status, %message, "server error; retrying the batch");
                std::thread::sleep(backoff(tries));
            }
            _ => return Err(Fatal(error)),
        }
    }
}

fn backoff(tries: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << tries.min(7))).min(MAX_BACKOFF)
}

fn sum(values: &Value) -> u64 {
    values.as_array().map_or(0, |a| a.iter().filter_map(Value::as_u64).sum())
}
