//! Reading and writing the lease log: an ordered consumer from a stream sequence,
//! applying each message to the view, and publishing with the stream's acknowledgement.

use std::sync::Mutex;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;

use super::{lock, LeaseSettings, Message, Op, Shared, View};

pub(super) type Messages =
    futures::stream::BoxStream<'static, Result<jetstream::Message, consumer::push::OrderedError>>;

/// An ordered consumer of the whole lease stream from stream sequence `start`.
pub(super) async fn read_from(
    stream: &stream::Stream,
    settings: &LeaseSettings,
    start: u64,
) -> Result<Messages, String> {
    let consumer = stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: format!("{}.{start}", jetstream_inbox(settings)),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(consumer
        .messages()
        .await
        .map_err(|e| e.to_string())?
        .boxed())
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

pub(super) fn jetstream_inbox(settings: &LeaseSettings) -> String {
    format!(
        "_INBOX.bellwether.leases.{}",
        hex::encode(settings.node.as_bytes())
    )
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
