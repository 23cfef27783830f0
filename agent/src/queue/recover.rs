//! Opening the queue's database without ever refusing to start over damaged files.
//!
//! A database sled cannot open (corrupt log, unreadable configuration, a panic inside the
//! storage engine) is renamed to `queue.corrupt-<unix-seconds>` next to it and a fresh one
//! is created; the renamed copy is left for inspection. Entries that open fine but fail
//! their checksum are deleted one by one. Errors that say nothing about the files' content
//! (permissions, another agent holding the lock) stop start-up instead: moving a healthy
//! queue aside would hide its data.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{error, warn};

use super::{codec, Meta, QueueError, DIR_NAME};

pub(super) struct Opened {
    pub db: sled::Db,
    pub batches: sled::Tree,
    pub meta: sled::Tree,
    pub index: Vec<(u64, Meta)>,
    pub last_seq: Option<u64>,
    pub corrupt_entries: u64,
    pub reset: bool,
}

enum Failure {
    /// The files are damaged: move them aside.
    Damaged(String),
    /// The environment is wrong: report it.
    Fatal(sled::Error),
}

/// How long opening waits for the database's lock: a previous handle in this process
/// releases it when the storage engine's background flusher lets go.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Whether the error says another handle holds the database.
fn locked(failure: &Failure) -> bool {
    matches!(failure, Failure::Fatal(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock"))
}

fn try_open_waiting(path: &Path, cache_bytes: u64) -> Result<Opened, Failure> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match try_open(path, cache_bytes) {
            Err(failure) if locked(&failure) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

pub(super) fn open(path: &Path, data_dir: &Path, cache_bytes: u64) -> Result<Opened, QueueError> {
    match try_open_waiting(path, cache_bytes) {
        Ok(opened) => Ok(opened),
        Err(Failure::Fatal(source)) => Err(QueueError::Open {
            path: path.to_owned(),
            source,
        }),
        Err(Failure::Damaged(reason)) => {
            let aside = aside_path(data_dir);
            std::fs::rename(path, &aside).map_err(|source| QueueError::MoveAside {
                path: path.to_owned(),
                source,
            })?;
            error!(
                path = %path.display(),
                moved_to = %aside.display(),
                error = %reason,
                "queue storage is damaged, moved it aside and starting with an empty queue"
            );
            match try_open(path, cache_bytes) {
                Ok(opened) => Ok(Opened {
                    reset: true,
                    ..opened
                }),
                Err(Failure::Fatal(source)) => Err(QueueError::Open {
                    path: path.to_owned(),
                    source,
                }),
                Err(Failure::Damaged(reason)) => Err(QueueError::Open {
                    path: path.to_owned(),
                    source: sled::Error::Unsupported(reason),
                }),
            }
        }
    }
}

fn aside_path(data_dir: &Path) -> PathBuf {
    let seconds = super::now_unix_ms() / 1000;
    let base = data_dir.join(format!("{DIR_NAME}.corrupt-{seconds}"));
    if !base.exists() {
        return base;
    }
    (1..)
        .map(|n| data_dir.join(format!("{DIR_NAME}.corrupt-{seconds}-{n}")))
        .find(|p| !p.exists())
        .unwrap_or(base)
}

fn classify(error: sled::Error) -> Failure {
    match &error {
        sled::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData => {
                Failure::Damaged(error.to_string())
            }
            _ => Failure::Fatal(error),
        },
        _ => Failure::Damaged(error.to_string()),
    }
}

fn try_open(path: &Path, cache_bytes: u64) -> Result<Opened, Failure> {
    // The storage engine may panic on files it cannot make sense of; that is damage too,
    // and must not become a crash loop.
    let attempt = std::panic::catch_unwind(|| -> Result<Opened, sled::Error> {
        // The page cache is the storage engine's main use of memory (1 GiB by default);
        // queued batches are read once, in order, so a small one costs little.
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()?;
        let batches = db.open_tree("batches")?;
        let meta = db.open_tree("meta")?;
        Ok(Opened {
            db,
            batches,
            meta,
            index: Vec::new(),
            last_seq: None,
            corrupt_entries: 0,
            reset: false,
        })
    });
    let mut opened = match attempt {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) => return Err(classify(error)),
        Err(_) => return Err(Failure::Damaged("storage engine panicked".to_owned())),
    };
    scan(&mut opened).map_err(classify)?;
    Ok(opened)
}

/// Builds the index, deleting entries that fail their checksum.
fn scan(opened: &mut Opened) -> Result<(), sled::Error> {
    let mut damaged = Vec::new();
    for item in opened.batches.iter() {
        let (key, value) = item?;
        let seq = <[u8; 8]>::try_from(key.as_ref()).map(u64::from_be_bytes);
        if let Ok(seq) = seq {
            opened.last_seq = Some(opened.last_seq.map_or(seq, |last| last.max(seq)));
        }
        match (seq, codec::header(&value)) {
            (Ok(seq), Ok(header)) => opened.index.push((
                seq,
                Meta {
                    bytes: value.len() as u64,
                    records: u64::from(header.records),
                    enqueued_unix_ms: header.enqueued_unix_ms,
                },
            )),
            (_, Err(error)) => {
                warn!(key = ?key.as_ref(), error = %error, "deleting damaged queue entry");
                damaged.push(key);
            }
            (Err(_), _) => {
                warn!(key = ?key.as_ref(), "deleting queue entry with a malformed key");
                damaged.push(key);
            }
        }
    }
    opened.corrupt_entries = damaged.len() as u64;
    for key in damaged {
        opened.batches.remove(key)?;
    }
    if opened.corrupt_entries > 0 {
        opened.db.flush()?;
    }
    Ok(())
}
