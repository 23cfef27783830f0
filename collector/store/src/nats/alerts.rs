//! [`AlertStore`] and [`OutboxStore`] over two buckets, shared by every node:
//!
//! - `<prefix>_alerts`: `a.<service>.<environment>.<version>.<id>` → Alert as JSON
//!   (service first, as in sled), `s.<id>` → Silence as JSON.
//! - `<prefix>_outbox`: `e.<id, 20 digits>` → OutboxEntry as JSON (ids come from
//!   [`Nats::sequence`], so key order is creation order), `c.<counter>.<node>` → u64,
//!   each node's share of a counter.
//!
//! sled writes an entry and its counter in one transaction; here they are two keys, so
//! the counter is written first: whoever sees an entry gone or changed sees its count
//! too (a reader between the two writes may see a count one ahead of the entries).

use async_nats::jetstream::kv;
use bytes::Bytes;

use std::sync::Arc;

use super::{add, decode_u64, nats_error, token, values_under, Nats};
use crate::alerts::{AlertStore, OutboxStore};
use crate::{decode_json, encode_json, StoreError};
use bellwether_model::alert::Alert;
use bellwether_model::notification::{Counter, NewEntry, OutboxCounters, OutboxEntry};
use bellwether_model::silence::Silence;

/// Alerts, silences and the outbox shared by every node of a cluster.
#[derive(Clone)]
pub struct KvAlertStore {
    nats: Nats,
    alerts: kv::Store,
    outbox: kv::Store,
    /// One counter update at a time from this node (see the module doc of [`super`]).
    counting: Arc<tokio::sync::Mutex<()>>,
}

impl KvAlertStore {
    pub fn open(nats: &Nats) -> Result<Self, StoreError> {
        Ok(Self {
            alerts: nats.bucket("alerts")?,
            outbox: nats.bucket("outbox")?,
            nats: nats.clone(),
            counting: Arc::default(),
        })
    }

    fn put(
        &self,
        what: &'static str,
        bucket: &kv::Store,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        let bucket = bucket.clone();
        self.nats.run(what, async move {
            bucket
                .put(key, Bytes::from(value))
                .await
                .map(|_| ())
                .map_err(|e| nats_error(what, e))
        })
    }

    fn delete(
        &self,
        what: &'static str,
        bucket: &kv::Store,
        key: String,
    ) -> Result<(), StoreError> {
        let bucket = bucket.clone();
        self.nats.run(what, async move {
            bucket.delete(key).await.map_err(|e| nats_error(what, e))
        })
    }

    fn list<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        bucket: &kv::Store,
        prefix: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let bucket = bucket.clone();
        let raw = self
            .nats
            .run(what, async move { values_under(&bucket, prefix).await })?;
        raw.iter().map(|raw| decode_json(what, raw)).collect()
    }

    fn count(&self, counter: Counter, by: u64) -> Result<(), StoreError> {
        let bucket = self.outbox.clone();
        let key = counter_key(counter, self.nats.node());
        let counting = Arc::clone(&self.counting);
        self.nats.run("counting", async move {
            let _one_at_a_time = counting.lock().await;
            add(&bucket, &key, by).await.map(|_| ())
        })
    }
}

fn alert_key(alert: &Alert) -> String {
    let r = &alert.release;
    format!(
        "a.{}.{}.{}.{}",
        token(&r.service),
        token(&r.environment),
        token(&r.version),
        token(&alert.id)
    )
}

fn silence_key(id: &str) -> String {
    format!("s.{}", token(id))
}

fn entry_key(id: u64) -> String {
    format!("e.{id:020}")
}

fn counter_key(counter: Counter, node: &str) -> String {
    format!("c.{}.{}", counter.as_str(), token(node))
}

impl AlertStore for KvAlertStore {
    fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.list("listing alerts", &self.alerts, "a.")
    }

    fn put_alert(&self, alert: &Alert) -> Result<(), StoreError> {
        self.put(
            "storing an alert",
            &self.alerts,
            alert_key(alert),
            encode_json("alert", alert)?,
        )
    }

    fn remove_alert(&self, alert: &Alert) -> Result<(), StoreError> {
        self.delete("removing an alert", &self.alerts, alert_key(alert))
    }

    fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        self.list("listing silences", &self.alerts, "s.")
    }

    fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let value = encode_json("silence", silence)?;
        self.put(
            "storing a silence",
            &self.alerts,
            silence_key(&silence.id),
            value,
        )
    }

    fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        let bucket = self.alerts.clone();
        let key = silence_key(id);
        let existed = self.nats.run("reading a silence", async move {
            bucket
                .get(key)
                .await
                .map(|v| v.is_some())
                .map_err(|e| nats_error("reading a silence", e))
        })?;
        if existed {
            self.delete("removing a silence", &self.alerts, silence_key(id))?;
        }
        Ok(existed)
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        self.nats.sequence()
    }
}

impl OutboxStore for KvAlertStore {
    fn enqueue(&self, entries: Vec<NewEntry>, now_unix_ms: i64) -> Result<Vec<u64>, StoreError> {
        let mut stored = Vec::with_capacity(entries.len());
        for new in entries {
            let entry = OutboxEntry::new(self.nats.sequence()?, new, now_unix_ms);
            stored.push((entry.id, Bytes::from(encode_json("outbox entry", &entry)?)));
        }
        let ids: Vec<u64> = stored.iter().map(|(id, _)| *id).collect();
        let outbox = self.outbox.clone();
        self.nats.run("enqueueing notifications", async move {
            for (id, raw) in stored {
                outbox
                    .put(entry_key(id), raw)
                    .await
                    .map_err(|e| nats_error("storing an outbox entry", e))?;
            }
            Ok(())
        })?;
        self.count(Counter::Enqueued, ids.len() as u64)?;
        Ok(ids)
    }

    fn entries(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.list("listing the outbox", &self.outbox, "e.")
    }

    fn save(&self, entry: &OutboxEntry, counter: Option<Counter>) -> Result<(), StoreError> {
        if let Some(counter) = counter {
            self.count(counter, 1)?;
        }
        let value = encode_json("outbox entry", entry)?;
        self.put(
            "storing an outbox entry",
            &self.outbox,
            entry_key(entry.id),
            value,
        )
    }

    fn delivered(&self, id: u64) -> Result<(), StoreError> {
        self.count(Counter::Delivered, 1)?;
        self.remove(id)
    }

    fn remove(&self, id: u64) -> Result<(), StoreError> {
        self.delete("removing an outbox entry", &self.outbox, entry_key(id))
    }

    fn counters(&self) -> Result<OutboxCounters, StoreError> {
        let bucket = self.outbox.clone();
        let totals = self.nats.run("reading the outbox counters", async move {
            let mut totals = Vec::new();
            for counter in [
                Counter::Enqueued,
                Counter::Delivered,
                Counter::Retries,
                Counter::GivenUp,
                Counter::Rejected,
            ] {
                // Every node's share.
                let prefix = format!("c.{}.", counter.as_str());
                let shares = values_under(&bucket, &prefix).await?;
                totals.push(shares.iter().map(|raw| decode_u64(raw)).sum::<u64>());
            }
            Ok(totals)
        })?;
        Ok(OutboxCounters {
            enqueued: totals[0],
            delivered: totals[1],
            retries: totals[2],
            given_up: totals[3],
            rejected: totals[4],
        })
    }
}
