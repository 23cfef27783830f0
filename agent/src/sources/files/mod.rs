//! Tails log files matching `--file` globs.
//!
//! One task owns every tailed file. Each round it reads what the files gained (at most
//! [`READ_BUDGET`] per file), turns complete lines into records through the file's own
//! [`LineAssembler`](crate::parse::LineAssembler) (multi-line joining included), and
//! hands them to the pipeline with [`PipelineSender::submit`]. While `submit` waits for
//! room, nothing is read: a full queue slows tailing down, it never drops lines.
//!
//! - Identity: a file is its (device, inode) plus a fingerprint of its first 1 KiB, so
//!   a renamed file is still the same file and a reused inode with other contents is not.
//! - Discovery: the globs are expanded again every [`FilesConfig::rescan_interval`];
//!   files that appear later are read from their start.
//! - Rotation by rename (or deletion): the old file is read to its end and let go once
//!   it stopped growing for [`FilesConfig::rotated_grace`]; the new file at the path is
//!   read from its start.
//! - copytruncate: a file that shrinks below the read position, or whose first bytes
//!   change, is read again from its start and counted as a truncation.
//! - Partial lines: a line without its newline waits for it (only its first 256 KiB are
//!   kept); the last line of a rotated file is taken as it is when the file is let go.
//! - Checkpoints ([`checkpoint`]): positions are saved to the data directory only after
//!   `submit` accepted the records before them, at most every
//!   [`FilesConfig::checkpoint_interval`] and at shutdown. A restart resumes there; a
//!   saved position past the end of the file starts it over. Files without a checkpoint
//!   start at the beginning (or at the end with `--file-start-at end`, for files present
//!   at start-up).

pub mod checkpoint;
pub mod discover;
mod metrics;
pub mod tail;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bellwether_proto::otlp::common::InstrumentationScope;
use bellwether_proto::otlp::logs::LogRecord;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::batch::EncodedLogs;
use crate::otlp::now_unix_nanos;
use crate::parse::MultilineConfig;
use crate::pipeline::{PipelineSender, SubmitError, Telemetry};
use crate::stats::{Source, Stats};
use checkpoint::{Checkpoint, Checkpoints};
use metrics::FileMetrics;
use tail::{FileId, Life, Tailed};

/// Instrumentation scope name of records read from files.
pub const SCOPE_NAME: &str = "bellwether.file";
/// Record attribute: the tailed file's path as matched by the glob.
pub const PATH_ATTR: &str = "log.file.path";

/// Most bytes read from one file in one round, so one busy file cannot starve the rest
/// and the records of one round stay bounded.
pub const READ_BUDGET: usize = 1024 * 1024;

/// Rounds handed to the pipeline and not yet queued, at most.
const MAX_SUBMITS_IN_FLIGHT: usize = 2;

/// How long the submits in flight at shutdown may still take.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Where to start a file that has no checkpoint and was there at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    #[default]
    Beginning,
    End,
}

impl FromStr for StartAt {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "beginning" => Ok(StartAt::Beginning),
            "end" => Ok(StartAt::End),
            other => Err(format!("expected `beginning` or `end`, got {other:?}")),
        }
    }
}

/// File tailing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesConfig {
    /// Glob patterns; tailing is off when empty.
    pub globs: Vec<String>,
    pub start_at: StartAt,
    /// How often the globs are expanded again to find new and rotated files.
    pub rescan_interval: Duration,
    /// How long an idle round sleeps before looking for new data.
    pub poll_interval: Duration,
    /// How long a renamed or deleted file must stay unchanged before it is let go.
    pub rotated_grace: Duration,
    /// Least time between two checkpoint writes.
    pub checkpoint_interval: Duration,
    pub multiline: MultilineConfig,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            globs: Vec::new(),
            start_at: StartAt::Beginning,
            rescan_interval: Duration::from_secs(1),
            poll_interval: Duration::from_millis(100),
            rotated_grace: Duration::from_secs(5),
            checkpoint_interval: Duration::from_secs(1),
            multiline: MultilineConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error(transparent)]
    Submit(#[from] SubmitError),
}

/// Spawns [`run`], logging how it ended.
pub fn spawn(
    config: FilesConfig,
    data_dir: PathBuf,
    pipeline: PipelineSender,
    stop: watch::Receiver<bool>,
    stats: Arc<Stats>,
) -> JoinHandle<()> {
    info!(globs = ?config.globs, start_at = ?config.start_at, "tailing files");
    tokio::spawn(async move {
        if let Err(e) = run(config, data_dir, pipeline, stop, stats).await {
            error!(error = %e, "file tailing stopped");
        }
    })
}

/// Tails until `stop` turns true, then hands over what was read and saves the positions.
///
/// Up to [`MAX_SUBMITS_IN_FLIGHT`] rounds are handed over at once, so reading and parsing
/// go on while earlier rounds are being queued; each round's positions are committed
/// only once it and every round before it were queued.
pub async fn run(
    config: FilesConfig,
    data_dir: PathBuf,
    pipeline: PipelineSender,
    mut stop: watch::Receiver<bool>,
    stats: Arc<Stats>,
) -> Result<(), FilesError> {
    let mut tailer = Tailer::new(config, &data_dir, stats);
    tailer.scan(true);
    let mut next_scan = Instant::now() + tailer.config.rescan_interval;
    let mut buf = vec![0u8; 64 * 1024];
    let mut in_flight = FuturesOrdered::new();
    loop {
        if *stop.borrow() {
            break;
        }
        if Instant::now() >= next_scan {
            tailer.scan(false);
            next_scan = Instant::now() + tailer.config.rescan_interval;
        }
        let mut read = 0;
        if in_flight.len() < MAX_SUBMITS_IN_FLIGHT {
            let (records, n) = tailer.read_round(&mut buf);
            read = n;
            let positions = tailer.positions();
            let pipeline = pipeline.clone();
            in_flight.push_back(async move { (submit(&pipeline, records).await, positions) });
        }
        // Commit what is already queued without waiting.
        while let Some(Some(done)) = in_flight.next().now_or_never() {
            tailer.submitted(done)?;
        }
        let waited = if in_flight.len() >= MAX_SUBMITS_IN_FLIGHT {
            tokio::select! {
                biased;
                done = in_flight.next() => done,
                () = crate::signalled(&mut stop) => None,
            }
        } else if read == 0 {
            tokio::select! {
                biased;
                done = in_flight.next(), if !in_flight.is_empty() => done,
                () = tokio::time::sleep(tailer.config.poll_interval) => None,
                () = crate::signalled(&mut stop) => None,
            }
        } else {
            tokio::task::yield_now().await;
            None
        };
        if let Some(done) = waited {
            tailer.submitted(done)?;
        }
    }
    // Submits about to complete still count; ones waiting for room in a full queue are
    // given up: their records are not the agent's, and the positions stay before them.
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while !in_flight.is_empty() {
        match tokio::time::timeout_at(deadline, in_flight.next()).await {
            Ok(Some(done)) => tailer.submitted(done)?,
            Ok(None) => break,
            Err(_) => return Ok(tailer.save_checkpoints(true)?),
        }
    }
    let records = tailer.flush_all();
    let positions = tailer.positions();
    let result = submit(&pipeline, records).await;
    tailer.submitted((result, positions))?;
    tailer.save_checkpoints(true)?;
    Ok(())
}

/// A round handed over, and the positions it makes safe.
type Submitted = (Result<(), SubmitError>, Vec<Position>);

/// Where every record of a file before `offset` has been read, as of one round.
struct Position {
    id: FileId,
    generation: u64,
    offset: u64,
}

async fn submit(pipeline: &PipelineSender, round: EncodedLogs) -> Result<(), SubmitError> {
    if round.is_empty() {
        return Ok(());
    }
    pipeline
        .submit(Source::File, Telemetry::EncodedLogs(vec![round]), None)
        .await
}

/// An empty round: records of the file source's scope, no resource (the pipeline adds
/// the agent's).
fn new_round() -> EncodedLogs {
    let scope = InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        ..InstrumentationScope::default()
    };
    EncodedLogs::new(None, Some(scope), 0)
}

/// Encodes `records` into `round`, each with the file's path attribute, and drops them.
fn encode_into(round: &mut EncodedLogs, records: &mut Vec<LogRecord>, path_field: &[u8]) {
    for record in records.drain(..) {
        round.push(&record, path_field);
    }
}

/// Every tailed file and the saved positions.
struct Tailer {
    config: FilesConfig,
    files: BTreeMap<FileId, Tailed>,
    checkpoints: Checkpoints,
    metrics: FileMetrics,
    /// Offsets changed since the last save.
    dirty: bool,
    last_save: Instant,
}

impl Tailer {
    fn new(config: FilesConfig, data_dir: &std::path::Path, stats: Arc<Stats>) -> Self {
        Self {
            config,
            files: BTreeMap::new(),
            checkpoints: Checkpoints::load(data_dir),
            metrics: FileMetrics::new(stats),
            dirty: false,
            last_save: Instant::now(),
        }
    }

    /// Finds new files, and files renamed or deleted from their path.
    fn scan(&mut self, first: bool) {
        let mut at_path: BTreeMap<PathBuf, FileId> = BTreeMap::new();
        for path in discover::matching_files(&self.config.globs) {
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let Ok(meta) = file.metadata() else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            at_path.insert(path.clone(), id);
            if self.files.contains_key(&id) {
                continue;
            }
            let offset = match self.checkpoints.find(id, &file) {
                Some(offset) => {
                    if offset > meta.len() {
                        info!(path = %path.display(), offset, size = meta.len(), "file shorter than its checkpoint, reading it from the start");
                    }
                    offset
                }
                None if first && self.config.start_at == StartAt::End => meta.len(),
                None => 0,
            };
            match Tailed::new(&path, file, offset, self.config.multiline.joiner) {
                Ok(tailed) => {
                    info!(path = %path.display(), offset = tailed.read_offset, "tailing file");
                    self.files.insert(id, tailed);
                    self.dirty = true;
                }
                Err(e) => warn!(path = %path.display(), error = %e, "cannot tail file"),
            }
        }
        let by_id: BTreeMap<FileId, &PathBuf> = at_path.iter().map(|(p, id)| (*id, p)).collect();
        for tailed in self.files.values_mut() {
            if at_path.get(&tailed.path) == Some(&tailed.id) {
                continue;
            }
            if tailed.life == Life::Active {
                info!(path = %tailed.path.display(), "file rotated or removed, reading it to its end");
                self.metrics.rotated(tailed);
            }
            match by_id.get(&tailed.id) {
                // Renamed to a path the globs match too: keep tailing it there.
                Some(path) => {
                    tailed.rename(path);
                    tailed.life = Life::Active;
                    self.dirty = true;
                }
                None => tailed.life = Life::Rotated,
            }
        }
    }

    /// Reads every file once, up to [`READ_BUDGET`] each; returns the records and the
    /// bytes read. Records are encoded as each `buf` full is read, so few are held
    /// decoded at once.
    fn read_round(&mut self, buf: &mut [u8]) -> (EncodedLogs, usize) {
        let now = now_unix_nanos();
        let mut round = new_round();
        let mut records = Vec::new();
        let mut total = 0;
        for tailed in self.files.values_mut() {
            match tailed.was_truncated() {
                Ok(true) => {
                    info!(path = %tailed.path.display(), "file truncated, reading it from the start");
                    if let Err(e) = tailed.restart(now, &mut records) {
                        warn!(path = %tailed.path.display(), error = %e, "cannot read file again");
                    }
                    self.metrics.truncated(tailed);
                    self.dirty = true;
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(path = %tailed.path.display(), error = %e, "cannot check file size")
                }
            }
            encode_into(&mut round, &mut records, &tailed.path_field);
            let mut read = 0;
            while read < READ_BUDGET {
                let want = buf.len().min(READ_BUDGET - read);
                match tailed.read(buf, want, now, &mut records) {
                    Ok(n) => {
                        read += n;
                        encode_into(&mut round, &mut records, &tailed.path_field);
                        if n < want {
                            break;
                        }
                    }
                    Err(e) => {
                        warn!(path = %tailed.path.display(), error = %e, "cannot read file");
                        break;
                    }
                }
            }
            total += read;
            let idle = tailed.last_line.elapsed() >= self.config.multiline.timeout;
            if idle && tailed.assembler.has_pending() {
                tailed.flush_open_record(now, &mut records);
            }
            let drained = tailed.last_growth.elapsed() >= self.config.rotated_grace;
            if tailed.life == Life::Rotated && drained {
                tailed.finish(now, &mut records);
            }
            encode_into(&mut round, &mut records, &tailed.path_field);
            self.metrics.counted(tailed);
        }
        (round, total)
    }

    /// Each file's safe position now, to commit once the records read so far are queued.
    fn positions(&self) -> Vec<Position> {
        self.files
            .values()
            .map(|t| Position {
                id: t.id,
                generation: t.generation,
                offset: t.safe_offset(),
            })
            .collect()
    }

    /// A round was handed over (in order): commits its positions and saves them when due.
    /// A failed save (a full disk) is logged, counted and tried again at the next round:
    /// the positions stay in memory, so reading goes on; only a restart before a save
    /// succeeds reads the lines since the last one again.
    fn submitted(&mut self, (result, positions): Submitted) -> Result<(), FilesError> {
        result?;
        self.commit(&positions);
        if let Err(e) = self.save_checkpoints(false) {
            self.metrics.checkpoint_failed();
            warn!(error = %e, "cannot save file positions, trying again at the next round");
        }
        Ok(())
    }

    /// Marks the records before `positions` as handed over, and lets go of rotated
    /// files that were read to their end. A position taken before a file was read again
    /// from its start is skipped.
    fn commit(&mut self, positions: &[Position]) {
        let grace = self.config.rotated_grace;
        for position in positions {
            let Some(tailed) = self.files.get_mut(&position.id) else {
                continue;
            };
            if tailed.generation == position.generation && tailed.committed != position.offset {
                tailed.committed = position.offset;
                self.dirty = true;
            }
        }
        let done: Vec<FileId> = self
            .files
            .values()
            .filter(|t| {
                t.life == Life::Rotated
                    && t.last_growth.elapsed() >= grace
                    && !t.assembler.has_pending()
                    && t.committed == t.read_offset
            })
            .map(|t| t.id)
            .collect();
        for id in done {
            if let Some(tailed) = self.files.remove(&id) {
                info!(path = %tailed.path.display(), "done with rotated file");
                self.dirty = true;
            }
        }
        self.metrics.lag(self.files.values());
    }

    /// Ends every open record (shutdown); partial lines stay for the next run.
    fn flush_all(&mut self) -> EncodedLogs {
        let now = now_unix_nanos();
        let mut round = new_round();
        let mut records = Vec::new();
        for tailed in self.files.values_mut() {
            tailed.flush_open_record(now, &mut records);
            encode_into(&mut round, &mut records, &tailed.path_field);
        }
        round
    }

    fn save_checkpoints(&mut self, force: bool) -> Result<(), checkpoint::CheckpointError> {
        let due = self.last_save.elapsed() >= self.config.checkpoint_interval;
        if !self.dirty || !(force || due) {
            return Ok(());
        }
        let entries = self
            .files
            .values()
            .map(|t| Checkpoint {
                dev: t.id.0,
                ino: t.id.1,
                fingerprint: t.fingerprint,
                offset: t.committed,
                path: t.path_text.clone(),
            })
            .collect();
        self.checkpoints.save(entries)?;
        self.dirty = false;
        self.last_save = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
