//! Read positions of tailed files, kept in `<data dir>/file-checkpoints.json`.
//!
//! The file is replaced atomically: written to a temporary file, synced, renamed over
//! the old one, and the directory synced, so a crash leaves either the old or the new
//! positions. A position is only ever saved once the records before it were handed to
//! the pipeline, so a restart may send the last records again but never skips any.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::tail::{FileId, Fingerprint};

pub const FILE_NAME: &str = "file-checkpoints.json";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot write file checkpoints to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where a file was left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub dev: u64,
    pub ino: u64,
    pub fingerprint: Fingerprint,
    pub offset: u64,
    /// Path when saved; for people reading the file.
    pub path: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Document {
    version: u32,
    files: Vec<Checkpoint>,
}

/// The saved positions, by file identity.
#[derive(Debug)]
pub struct Checkpoints {
    path: PathBuf,
    by_id: BTreeMap<FileId, Checkpoint>,
}

impl Checkpoints {
    /// Loads the positions saved in `data_dir`; a missing or unreadable file means none
    /// (an unreadable one is logged: its files are read from their start again).
    pub fn load(data_dir: &Path) -> Self {
        let path = data_dir.join(FILE_NAME);
        let by_id = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Document>(&bytes) {
                Ok(doc) => doc.files.into_iter().map(|c| ((c.dev, c.ino), c)).collect(),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable file checkpoints");
                    BTreeMap::new()
                }
            },
            Err(_) => BTreeMap::new(),
        };
        Self { path, by_id }
    }

    /// The saved position of the file `id`, if its start still matches.
    pub fn find(&self, id: FileId, file: &std::fs::File) -> Option<u64> {
        let saved = self.by_id.get(&id)?;
        saved.fingerprint.matches(file).then_some(saved.offset)
    }

    /// Replaces the saved positions with `files` and writes them out.
    pub fn save(&mut self, files: Vec<Checkpoint>) -> Result<(), CheckpointError> {
        self.by_id = files.into_iter().map(|c| ((c.dev, c.ino), c)).collect();
        let doc = Document {
            version: 1,
            files: self.by_id.values().cloned().collect(),
        };
        write_atomically(&self.path, &doc).map_err(|source| CheckpointError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

fn write_atomically(path: &Path, doc: &Document) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(doc).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Makes the rename itself durable.
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn round_trip_and_fingerprint_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("app.log");
        std::fs::write(&log, b"first line\nsecond line\n").expect("write");
        let file = std::fs::File::open(&log).expect("open");
        let meta = file.metadata().expect("meta");
        let id = (meta.dev(), meta.ino());
        let mut checkpoints = Checkpoints::load(dir.path());
        assert_eq!(checkpoints.find(id, &file), None);
        checkpoints
            .save(vec![Checkpoint {
                dev: id.0,
                ino: id.1,
                fingerprint: Fingerprint::of(&file).expect("fingerprint"),
                offset: 11,
                path: log.display().to_string(),
            }])
            .expect("save");
        let reloaded = Checkpoints::load(dir.path());
        assert_eq!(reloaded.find(id, &file), Some(11));

        // Same inode, different contents: a new file.
        std::fs::write(&log, b"other contents entirely\n").expect("rewrite");
        let file = std::fs::File::open(&log).expect("open");
        assert_eq!(reloaded.find(id, &file), None);
    }

    #[test]
    fn unreadable_checkpoints_mean_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").expect("write");
        let checkpoints = Checkpoints::load(dir.path());
        assert!(checkpoints.by_id.is_empty());
    }
}
