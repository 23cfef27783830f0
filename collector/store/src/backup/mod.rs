//! Backup archives of a data directory's sled databases, and their restore.
//!
//! # Format (version 1)
//!
//! ```text
//! "BWBACKUP"                 8 bytes, magic
//! format version             u32 big-endian (FORMAT_VERSION)
//! manifest length            u32 big-endian
//! manifest                   JSON (Manifest): databases, their trees with entry and
//!                            byte counts, next ids, the body's length and SHA-256
//! body                       per database, per tree, in manifest order, `entries`
//!                            records of [u32 key length][key][u32 value length][value]
//! ```
//!
//! # Consistency
//!
//! [`Source::snapshot`] closes the [`WriteGate`] every sled write of the collector passes,
//! reads every tree of every database into a spool file, and opens it again: the archive
//! is one point in time, so a batch id is in it exactly when the batch's counts are. Writes
//! wait meanwhile (none is refused); the spool is then streamed with the gate open.
//!
//! # Restore
//!
//! [`restore`] checks the target, builds the databases in a staging directory beside it,
//! checks the body's length and checksum at its end, and only then renames the staging
//! directory into place: a damaged or truncated archive leaves the target as it was.

mod restore;

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{schema, StoreError, WriteGate};

pub use restore::{restore, verify};

pub const MAGIC: &[u8; 8] = b"BWBACKUP";
/// The newest archive format this binary writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// A manifest longer than this is damage, not a manifest.
const MAX_MANIFEST: u32 = 64 << 20;

/// What an archive holds, written before its body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// The Bellwether that wrote it.
    pub bellwether_version: String,
    pub created_at_unix_ms: i64,
    pub databases: Vec<DatabaseManifest>,
    pub body_bytes: u64,
    /// Hex SHA-256 of the body.
    pub body_sha256: String,
}

/// One sled database of the data directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseManifest {
    /// Relative to the data directory; "" for the data directory itself.
    pub path: String,
    pub schema_version: u32,
    /// Larger than every id the database handed out; a restore continues from it.
    pub next_id: u64,
    pub trees: Vec<TreeManifest>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeManifest {
    pub name: String,
    pub entries: u64,
    /// Keys and values, without the length prefixes.
    pub bytes: u64,
}

impl Manifest {
    pub fn entries(&self) -> u64 {
        self.trees().map(|t| t.entries).sum()
    }

    /// Entries of the tree `name` of the database at `path`, if it is in the archive.
    pub fn tree_entries(&self, path: &str, name: &str) -> Option<u64> {
        self.databases
            .iter()
            .find(|d| d.path == path)?
            .trees
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.entries)
    }

    fn trees(&self) -> impl Iterator<Item = &TreeManifest> {
        self.databases.iter().flat_map(|d| &d.trees)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("not a Bellwether backup archive (it does not start with {MAGIC:?})")]
    NotAnArchive,
    #[error(
        "archive format version {found} is newer than {supported}, the newest this \
         bellwether reads: restore it with a newer bellwether"
    )]
    NewerFormat { found: u32, supported: u32 },
    #[error("damaged archive, nothing restored: {0}")]
    Damaged(String),
    #[error("truncated archive, nothing restored: {0}")]
    Truncated(String),
    #[error("{0} is not empty: pass --force to replace what it holds")]
    NotEmpty(String),
    #[error("{0} is in use (a collector holds its lock): stop it first")]
    InUse(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::Error> for BackupError {
    fn from(e: sled::Error) -> Self {
        BackupError::Store(StoreError::Sled(e))
    }
}

/// `what` failed with `source`.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Io { what, source }
}

/// The databases of one data directory and the gate their writes pass.
#[derive(Clone, Debug)]
pub struct Source {
    databases: Vec<(String, sled::Db)>,
    gate: WriteGate,
}

/// A point-in-time archive: its head (magic, version, manifest) in memory and its body
/// in an unnamed spool file, read from the start.
pub struct Snapshot {
    pub manifest: Manifest,
    pub head: Vec<u8>,
    pub body: File,
    /// How long the write gate was closed.
    pub paused: std::time::Duration,
}

impl Snapshot {
    /// The archive's length in bytes.
    pub fn archive_bytes(&self) -> u64 {
        self.head.len() as u64 + self.manifest.body_bytes
    }

    /// Writes the whole archive to `out`.
    pub fn write_to(mut self, out: &mut impl Write) -> Result<Manifest, BackupError> {
        out.write_all(&self.head).map_err(io("writing archive"))?;
        std::io::copy(&mut self.body, out).map_err(io("writing archive"))?;
        out.flush().map_err(io("writing archive"))?;
        Ok(self.manifest)
    }
}

impl Source {
    pub fn new(gate: WriteGate) -> Self {
        Self {
            databases: Vec::new(),
            gate,
        }
    }

    /// Adds the database at `path` (relative to the data directory, "" for itself).
    pub fn database(mut self, path: &str, db: sled::Db) -> Self {
        self.databases.push((path.to_owned(), db));
        self
    }

    /// Reads every tree of every database, with the gate closed, into `spool` (an
    /// empty file, best unnamed: `tempfile::tempfile_in`).
    pub fn snapshot(&self, spool: File) -> Result<Snapshot, BackupError> {
        let mut body = Hashing::new(BufWriter::with_capacity(1 << 20, spool));
        let mut databases = Vec::with_capacity(self.databases.len());
        let paused = {
            let _closed = self.gate.close();
            let closed_at = std::time::Instant::now();
            for (path, db) in &self.databases {
                databases.push(write_database(path, db, &mut body)?);
            }
            closed_at.elapsed()
        };
        let (body_bytes, body_sha256, spool) = body.finish()?;
        let mut spool = spool;
        spool
            .seek(SeekFrom::Start(0))
            .map_err(io("rewinding the backup spool"))?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            bellwether_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at_unix_ms: bellwether_model::time::now_unix_ms(),
            databases,
            body_bytes,
            body_sha256,
        };
        let json = serde_json::to_vec(&manifest)
            .map_err(|e| StoreError::Corrupt(format!("backup manifest: {e}")))?;
        let mut head = Vec::with_capacity(16 + json.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        head.extend_from_slice(&(json.len() as u32).to_be_bytes());
        head.extend_from_slice(&json);
        Ok(Snapshot {
            manifest,
            head,
            body: spool,
            paused,
        })
    }
}

/// Every tree of `db`, in name order, into `body`.
fn write_database<W: Write>(
    path: &str,
    db: &sled::Db,
    body: &mut Hashing<W>,
) -> Result<DatabaseManifest, BackupError> {
    let schema_version = schema::stamped_version(db)?.unwrap_or(schema::SCHEMA_VERSION);
    let next_id = schema::next_id(db, schema::id_base(db)?)?;
    let mut names = db.tree_names();
    names.sort();
    let mut trees = Vec::with_capacity(names.len());
    for raw_name in names {
        let name = String::from_utf8(raw_name.to_vec()).map_err(|_| {
            StoreError::Corrupt(format!("tree name {raw_name:?} in {path:?} is not UTF-8"))
        })?;
        let tree = db.open_tree(&raw_name)?;
        let (mut entries, mut bytes) = (0u64, 0u64);
        for entry in tree.iter() {
            let (key, value) = entry?;
            body.record(&key)?;
            body.record(&value)?;
            entries += 1;
            bytes += (key.len() + value.len()) as u64;
        }
        trees.push(TreeManifest {
            name,
            entries,
            bytes,
        });
    }
    Ok(DatabaseManifest {
        path: path.to_owned(),
        schema_version,
        next_id,
        trees,
    })
}

/// A writer that counts and hashes what passes.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// One length-prefixed field.
    fn record(&mut self, field: &[u8]) -> Result<(), BackupError> {
        let len = u32::try_from(field.len())
            .map_err(|_| StoreError::Corrupt(format!("a {} byte value", field.len())))?;
        self.write(&len.to_be_bytes())?;
        self.write(field)
    }

    fn write(&mut self, data: &[u8]) -> Result<(), BackupError> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.inner
            .write_all(data)
            .map_err(io("writing the backup spool"))
    }
}

impl Hashing<BufWriter<File>> {
    fn finish(self) -> Result<(u64, String, File), BackupError> {
        let file = self.inner.into_inner().map_err(|e| BackupError::Io {
            what: "writing the backup spool".into(),
            source: e.into_error(),
        })?;
        Ok((self.bytes, hex::encode(self.hasher.finalize()), file))
    }
}

/// Reads exactly `buf.len()` bytes; running out is truncation, described by `what`.
pub(crate) fn read_exact(
    reader: &mut impl Read,
    buf: &mut [u8],
    what: impl FnOnce() -> String,
) -> Result<(), BackupError> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Err(BackupError::Truncated(what()))
        }
        Err(e) => Err(io("reading the archive")(e)),
    }
}

/// Reads the magic, format version and manifest.
pub(crate) fn read_head(reader: &mut impl Read) -> Result<Manifest, BackupError> {
    let mut magic = [0u8; 8];
    match reader.read_exact(&mut magic) {
        Ok(()) if &magic == MAGIC => {}
        Ok(()) => return Err(BackupError::NotAnArchive),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(BackupError::NotAnArchive)
        }
        Err(e) => return Err(io("reading the archive")(e)),
    }
    let mut word = [0u8; 4];
    read_exact(reader, &mut word, || "it ends inside its header".into())?;
    let found = u32::from_be_bytes(word);
    if found > FORMAT_VERSION {
        return Err(BackupError::NewerFormat {
            found,
            supported: FORMAT_VERSION,
        });
    }
    if found == 0 {
        return Err(BackupError::Damaged("format version 0".into()));
    }
    read_exact(reader, &mut word, || "it ends inside its header".into())?;
    let len = u32::from_be_bytes(word);
    if len > MAX_MANIFEST {
        return Err(BackupError::Damaged(format!(
            "a manifest of {len} bytes (at most {MAX_MANIFEST})"
        )));
    }
    let mut json = vec![0u8; len as usize];
    read_exact(reader, &mut json, || {
        format!("it ends inside its {len} byte manifest")
    })?;
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| BackupError::Damaged(format!("unreadable manifest: {e}")))?;
    if manifest.format_version != found {
        return Err(BackupError::Damaged(format!(
            "the header says format {found}, the manifest {}",
            manifest.format_version
        )));
    }
    Ok(manifest)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
