//! Reading and writing the lease log: a pull consumer from a stream sequence,
//! applying each message to the view, and publishing with the stream's acknowledgement.

use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::Notify;

use super::{lock, LeaseSettings, Message, Op, Shared, View};

/// Reads the whole lease stream in order into the view, for as long as the task lives.
///
/// A pull consumer (no acknowledgements, in memory, one replica) starts at the first
/// message not applied yet and is asked for batches that the server answers within
/// TTL/4. Every step has a deadline of its own, so a consumer that sat on a server that
/// died, a request that nobody answers, or a batch that stops half-way is replaced
/// within about TTL/2 by a fresh consumer from the first message not applied — never
/// by waiting out a client library's own reconnect and back-off. `restart` asks for a
/// fresh consumer at once (the ticker's view of a reader that stopped moving).
pub(super) async fn read(
    stream: stream::Stream,
    shared: Arc<Mutex<Shared>>,
    settings: LeaseSettings,
    restart: Arc<Notify>,
) {
    let wait = settings.ttl / 4;
    let mut failures = 0u32;
    loop {
        let start = lock(&shared).view.applied_seq + 1;
        let consumer = match tokio::time::timeout(
            2 * wait,
            consumer_from(&stream, &settings, start),
        )
        .await
        {
            Ok(Ok(consumer)) => consumer,
            outcome => {
                failures += 1;
                let error = match outcome {
                    Ok(Err(e)) => e,
                    _ => "no answer in time".to_owned(),
                };
                // Say it once a burst, not every attempt.
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(%error, attempts = failures, "lease stream unreadable; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(wait / 2) => {}
                    () = restart.notified() => {}
                }
                continue;
            }
        };
        failures = 0;
        let mut fresh = true;
        'batches: loop {
            let batch = async {
                consumer
                    .batch()
                    .max_messages(BATCH)
                    .expires(wait)
                    .messages()
                    .await
                    .map_err(|e| e.to_string())
            };
            let mut batch = tokio::select! {
                outcome = tokio::time::timeout(wait, batch) => match outcome {
                    Ok(Ok(batch)) => batch,
                    _ => break 'batches,
                },
                () = restart.notified() => break 'batches,
            };
            // The server ends every batch by TTL/4 (with messages or with its timeout):
            // one still open well after that has lost its consumer.
            let until = tokio::time::Instant::now() + 2 * wait;
            loop {
                let item = tokio::select! {
                    item = tokio::time::timeout_at(until, batch.next()) => item,
                    () = restart.notified() => break 'batches,
                };
                match item {
                    Ok(Some(Ok(message))) => {
                        let Ok(info) = message.info() else { continue };
                        let applied = lock(&shared).view.applied_seq;
                        // A gap inside one consumer's delivery means messages went missing
                        // on the way: read again from the first one not applied. Only a
                        // fresh consumer that starts past it proves them gone from the
                        // stream (then `apply` starts the view afresh).
                        if !fresh && applied > 0 && info.stream_sequence > applied + 1 {
                            break 'batches;
                        }
                        fresh = false;
                        apply(&shared, &settings, &message);
                    }
                    // The batch is done: ask for the next.
                    Ok(None) => break,
                    Ok(Some(Err(_))) | Err(_) => break 'batches,
                }
            }
        }
        // Let the server forget it (it would also after its inactivity threshold); a
        // server that is gone is not waited for.
        let name = consumer.cached_info().name.clone();
        let stream = stream.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(wait, stream.delete_consumer(&name)).await;
        });
    }
}

/// Most messages asked for in one batch.
const BATCH: usize = 512;

async fn consumer_from(
    stream: &stream::Stream,
    settings: &LeaseSettings,
    start: u64,
) -> Result<consumer::Consumer<consumer::pull::Config>, String> {
    stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: settings.ttl * 5,
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())
}

/// Applies one message of the stream to the view.
pub(super) fn apply(
    shared: &Mutex<Shared>,
    settings: &LeaseSettings,
    message: &jetstream::Message,
) {
    let Ok(info) = message.info() else { return };
    let at_ns = info.published.unix_timestamp_nanos();
    let seq = info.stream_sequence;
    let mut shared = lock(shared);
    if seq <= shared.view.applied_seq {
        return;
    }
    if shared.view.applied_seq > 0 && seq != shared.view.applied_seq + 1 {
        // Messages were missed (the retention cut them off while this node could not
        // read): the view may be wrong, so trust nothing until it has settled again.
        tracing::warn!(
            from = shared.view.applied_seq + 1,
            to = seq - 1,
            "lease messages missed; starting the view afresh"
        );
        shared.view = View::default();
        shared.deadlines.clear();
    }
    shared.view.applied_seq = seq;
    let Ok(body) = serde_json::from_slice::<Message>(&message.payload) else {
        tracing::warn!(subject = %message.subject, "lease message not understood; ignored");
        return;
    };
    let partition = message
        .subject
        .strip_prefix(&format!("{}.lease.", settings.prefix))
        .and_then(|p| p.parse::<u32>().ok());
    shared.view.apply(
        partition,
        &body.node,
        &body.api,
        &body.op,
        at_ns,
        settings.ttl,
    );
}

/// Publishes `op` and waits for the stream's acknowledgement; returns the message's
/// stream sequence.
pub(super) async fn publish(
    jetstream: &jetstream::Context,
    settings: &LeaseSettings,
    partition: Option<u32>,
    op: Op,
) -> Result<u64, String> {
    let subject = match partition {
        Some(p) => format!("{}.lease.{p}", settings.prefix),
        None => format!(
            "{}.node.{}",
            settings.prefix,
            hex::encode(settings.node.as_bytes())
        ),
    };
    let body = serde_json::to_vec(&Message {
        node: settings.node.clone(),
        api: settings.api.clone(),
        op,
    })
    .map_err(|e| e.to_string())?;
    let ack = tokio::time::timeout(settings.ttl / 4, async {
        jetstream
            .publish(subject, Bytes::from(body))
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| "no acknowledgement in time".to_owned())?;
    ack.map(|ack| ack.sequence)
}
