//! Durable alert state: alerts, silences and the notification outbox, in one sled
//! database (`<data dir>/alerts`).
//!
//! - alerts: `service \0 environment \0 version \0 id` → Alert as JSON (service first,
//!   like the release store, so a service's state moves as one key range)
//! - silences: id → Silence as JSON
//! - outbox: entry id (u64 big-endian, increasing) → OutboxEntry as JSON
//! - outbox_counters: counter name → u64 big-endian

use std::path::Path;

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use crate::{decode_json, encode_json, from_tx, schema, StoreError, WriteGate};
use bellwether_model::alert::Alert;
use bellwether_model::notification::{Counter, NewEntry, OutboxCounters, OutboxEntry};
use bellwether_model::silence::Silence;

/// Durable outbox entries and counters. Methods block on IO.
pub trait OutboxStore: Send + Sync + 'static {
    /// Stores new pending entries durably; returns their ids.
    fn enqueue(&self, entries: Vec<NewEntry>, now_unix_ms: i64) -> Result<Vec<u64>, StoreError>;
    /// Every entry, pending and failed, oldest first.
    fn entries(&self) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Updates an entry, counting `counter` if given.
    fn save(&self, entry: &OutboxEntry, counter: Option<Counter>) -> Result<(), StoreError>;
    /// Removes a delivered entry and counts it.
    fn delivered(&self, id: u64) -> Result<(), StoreError>;
    fn remove(&self, id: u64) -> Result<(), StoreError>;
    fn counters(&self) -> Result<OutboxCounters, StoreError>;
}

/// Durable alerts and silences. Methods block on IO.
pub trait AlertStore: Send + Sync + 'static {
    fn alerts(&self) -> Result<Vec<Alert>, StoreError>;
    fn put_alert(&self, alert: &Alert) -> Result<(), StoreError>;
    fn remove_alert(&self, alert: &Alert) -> Result<(), StoreError>;
    fn silences(&self) -> Result<Vec<Silence>, StoreError>;
    fn put_silence(&self, silence: &Silence) -> Result<(), StoreError>;
    /// False when there was no such silence.
    fn remove_silence(&self, id: &str) -> Result<bool, StoreError>;
    /// A new unique number (for silence and notification ids).
    fn next_id(&self) -> Result<u64, StoreError>;
}

#[derive(Clone, Debug)]
pub struct SledAlertStore {
    db: sled::Db,
    alerts: sled::Tree,
    silences: sled::Tree,
    outbox: sled::Tree,
    counters: sled::Tree,
    /// Added to sled's id counter ([`schema::next_id`]).
    id_base: u64,
    gate: WriteGate,
}

impl SledAlertStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Sled(e.into()))?;
        Self::new(crate::open_sled(dir)?)
    }

    pub fn new(db: sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            alerts: db.open_tree("alerts")?,
            silences: db.open_tree("silences")?,
            outbox: db.open_tree("outbox")?,
            counters: db.open_tree("outbox_counters")?,
            id_base: schema::id_base(&db)?,
            db,
            gate: WriteGate::new(),
        })
    }

    /// Writes pass `gate` (the release store's, so that a backup holds both still).
    pub fn gated(mut self, gate: WriteGate) -> Self {
        self.gate = gate;
        self
    }

    /// The database, for a backup.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    fn new_id(&self) -> Result<u64, StoreError> {
        schema::next_id(&self.db, self.id_base)
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Stores (`Some`) or removes (`None`) outbox entry `id` and counts `counter`, both at
    /// once: whoever sees the entry's new state sees the count too.
    fn write_counted(
        &self,
        id: u64,
        value: Option<&[u8]>,
        counter: Option<Counter>,
    ) -> Result<(), StoreError> {
        (&self.outbox, &self.counters)
            .transaction(|(outbox, counters)| {
                match value {
                    Some(value) => outbox.insert(&id.to_be_bytes(), value)?,
                    None => outbox.remove(&id.to_be_bytes())?,
                };
                if let Some(counter) = counter {
                    let old = counter_value(counters.get(counter.as_str())?.as_deref());
                    counters.insert(counter.as_str(), &old.saturating_add(1).to_be_bytes()[..])?;
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(from_tx)
    }

    fn bump(&self, counter: Counter, by: u64) -> Result<(), StoreError> {
        self.counters.update_and_fetch(counter.as_str(), |old| {
            Some(counter_value(old).saturating_add(by).to_be_bytes().to_vec())
        })?;
        Ok(())
    }
}

/// A stored counter's value; 0 when unset (or not 8 bytes).
fn counter_value(raw: Option<&[u8]>) -> u64 {
    raw.and_then(|raw| <[u8; 8]>::try_from(raw).ok())
        .map_or(0, u64::from_be_bytes)
}

fn alert_key(alert: &Alert) -> Vec<u8> {
    let r = &alert.release;
    [
        r.service.as_bytes(),
        r.environment.as_bytes(),
        r.version.as_bytes(),
        alert.id.as_bytes(),
    ]
    .join(&0u8)
}

impl AlertStore for SledAlertStore {
    fn alerts(&self) -> Result<Vec<Alert>, StoreError> {
        self.alerts
            .iter()
            .values()
            .map(|raw| decode_json("alert", &raw?))
            .collect()
    }

    fn put_alert(&self, alert: &Alert) -> Result<(), StoreError> {
        let _pass = self.gate.pass();
        self.alerts
            .insert(alert_key(alert), encode_json("alert", alert)?)?;
        self.db.flush()?;
        Ok(())
    }

    fn remove_alert(&self, alert: &Alert) -> Result<(), StoreError> {
        let _pass = self.gate.pass();
        self.alerts.remove(alert_key(alert))?;
        Ok(())
    }

    fn silences(&self) -> Result<Vec<Silence>, StoreError> {
        self.silences
            .iter()
            .values()
            .map(|raw| decode_json("silence", &raw?))
            .collect()
    }

    fn put_silence(&self, silence: &Silence) -> Result<(), StoreError> {
        let _pass = self.gate.pass();
        self.silences
            .insert(silence.id.as_bytes(), encode_json("silence", silence)?)?;
        self.db.flush()?;
        Ok(())
    }

    fn remove_silence(&self, id: &str) -> Result<bool, StoreError> {
        let _pass = self.gate.pass();
        let removed = self.silences.remove(id.as_bytes())?.is_some();
        self.db.flush()?;
        Ok(removed)
    }

    fn next_id(&self) -> Result<u64, StoreError> {
        self.new_id()
    }
}

impl OutboxStore for SledAlertStore {
    fn enqueue(&self, entries: Vec<NewEntry>, now_unix_ms: i64) -> Result<Vec<u64>, StoreError> {
        let _pass = self.gate.pass();
        let mut ids = Vec::with_capacity(entries.len());
        let mut batch = sled::Batch::default();
        for new in entries {
            // Ids are monotonic, so key order is creation order.
            let id = self.new_id()?;
            let entry = OutboxEntry::new(id, new, now_unix_ms);
            batch.insert(&id.to_be_bytes(), encode_json("outbox entry", &entry)?);
            ids.push(id);
        }
        self.outbox.apply_batch(batch)?;
        self.bump(Counter::Enqueued, ids.len() as u64)?;
        // Written first, durably: only then may delivery start.
        self.db.flush()?;
        Ok(ids)
    }

    fn entries(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox
            .iter()
            .values()
            .map(|raw| decode_json("outbox entry", &raw?))
            .collect()
    }

    fn save(&self, entry: &OutboxEntry, counter: Option<Counter>) -> Result<(), StoreError> {
        let _pass = self.gate.pass();
        let value = encode_json("outbox entry", entry)?;
        self.write_counted(entry.id, Some(&value), counter)?;
        self.db.flush()?;
        Ok(())
    }

    fn delivered(&self, id: u64) -> Result<(), StoreError> {
        let _pass = self.gate.pass();
        self.write_counted(id, None, Some(Counter::Delivered))?;
        self.db.flush()?;
        Ok(())
    }

    fn counters(&self) -> Result<OutboxCounters, StoreError> {
        let get = |counter: Counter| -> Result<u64, StoreError> {
            Ok(counter_value(
                self.counters.get(counter.as_str())?.as_deref(),
            ))
        };
        Ok(OutboxCounters {
            enqueued: get(Counter::Enqueued)?,
            delivered: get(Counter::Delivered)?,
            retries: get(Counter::Retries)?,
            given_up: get(Counter::GivenUp)?,
            rejected: get(Counter::Rejected)?,
        })
    }

    fn remove(&self, id: u64) -> Result<(), StoreError> {
        let _pass = self.gate.pass();
        self.outbox.remove(id.to_be_bytes())?;
        Ok(())
    }
}
