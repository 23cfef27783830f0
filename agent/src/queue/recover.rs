//! Opening the queue's database without ever refusing to start over damaged files.
//!
//! A database sled cannot open (corrupt log, unreadable configuration, a panic inside the
//! storage engine) is renamed to `queue.corrupt-<unix-seconds>` next to it and a fresh one
//! is created; the renamed copy is left for inspection. The batches themselves live in the
//! segment files, which are untouched: what the lost database knew of deliveries is gone,
//! so they are all sent again (the collector ignores batch ids it already has). Errors that
//! say nothing about the files' content (permissions, another agent holding the lock) stop
//! start-up instead: moving a healthy queue aside would hide its data.
//!
//! Batches queued by earlier versions, stored in the database itself (tree `batches`), are
//! handed over for moving into segments; entries failing their checksum are dropped and
//! counted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{error, warn};

use super::{codec, QueueError, DIR_NAME};

pub(super) struct Opened {
    pub db: sled::Db,
    pub meta: sled::Tree,
    /// Sequence numbers delivered whose segment is not deleted yet.
    pub acked: sled::Tree,
    /// The segment files that exist, by first sequence number.
    pub segments: sled::Tree,
    /// Batches stored in the database by earlier versions: (sequence, entry).
    pub legacy_tree: sled::Tree,
    pub legacy: Vec<(u64, Vec<u8>)>,
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
    let seconds = crate::stats::now_unix_ms() / 1000;
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
        let legacy_tree = db.open_tree("batches")?;
        let meta = db.open_tree("meta")?;
        let acked = db.open_tree("acked")?;
        let segments = db.open_tree("segments")?;
        Ok(Opened {
            db,
            meta,
            acked,
            segments,
            legacy_tree,
            legacy: Vec::new(),
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

/// Reads the batches earlier versions stored in the database, dropping (and counting)
/// entries that fail their checksum.
fn scan(opened: &mut Opened) -> Result<(), sled::Error> {
    for item in opened.legacy_tree.iter() {
        let (key, value) = item?;
        let seq = <[u8; 8]>::try_from(key.as_ref()).map(u64::from_be_bytes);
        match (seq, codec::header(&value)) {
            (Ok(seq), Ok(_)) => opened.legacy.push((seq, value.to_vec())),
            (_, Err(error)) => {
                warn!(key = ?key.as_ref(), error = %error, "dropping damaged queue entry");
                opened.corrupt_entries += 1;
            }
            (Err(_), _) => {
                warn!(key = ?key.as_ref(), "dropping queue entry with a malformed key");
                opened.corrupt_entries += 1;
            }
        }
    }
    Ok(())
}
