//! Reading an archive back: [`verify`] checks one, [`restore`] rebuilds a data directory
//! from one, in a staging directory renamed into place only once the whole body checked.

use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{io, read_exact, read_head, BackupError, Manifest};
use crate::{schema, StoreError};

/// Entries written to sled per batch while restoring.
const BATCH: usize = 4096;

/// Reads a whole archive and checks its manifest, lengths and checksum; writes nothing.
pub fn verify(reader: impl Read) -> Result<Manifest, BackupError> {
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let manifest = read_head(&mut reader)?;
    check_manifest(&manifest)?;
    read_body(&mut reader, &manifest, &mut Discard)?;
    Ok(manifest)
}

/// Rebuilds the data directory `target` from an archive. `target` must be missing or
/// empty unless `force`, which replaces what it holds (never while a collector runs on
/// it). On any error the target is left as it was.
pub fn restore(reader: impl Read, target: &Path, force: bool) -> Result<Manifest, BackupError> {
    let replacing = check_target(target, force)?;
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let manifest = read_head(&mut reader)?;
    check_manifest(&manifest)?;
    let (parent, name) = split(target)?;
    std::fs::create_dir_all(&parent).map_err(io(format!("creating {}", parent.display())))?;
    let staging = parent.join(format!(".{name}.restore-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(format!("removing {}", staging.display())))?;
    }
    let imported = import(&mut reader, &manifest, &staging);
    if let Err(e) = imported {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    swap_in(&staging, target, replacing, &parent, &name)?;
    Ok(manifest)
}

/// Whether `target` holds something to replace; refuses what must not be replaced.
fn check_target(target: &Path, force: bool) -> Result<bool, BackupError> {
    let shown = target.display().to_string();
    let mut entries = match std::fs::read_dir(target) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(format!("reading {shown}"))(e)),
    };
    if entries.next().is_none() {
        return Ok(false);
    }
    if !force {
        return Err(BackupError::NotEmpty(shown));
    }
    if target.join("db").is_file() {
        match sled::Config::new().path(target).open() {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                return Err(BackupError::InUse(shown))
            }
            // A damaged directory is still replaced: that is what --force is for.
            _ => {}
        }
    }
    Ok(true)
}

/// The parent directory (`.` for a bare name) and the file name of `target`.
fn split(target: &Path) -> Result<(PathBuf, String), BackupError> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| BackupError::Io {
            what: format!("restoring into {}", target.display()),
            source: std::io::Error::other("the data directory needs a name"),
        })?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

/// Refuses a manifest naming databases outside the data directory or of a newer schema.
fn check_manifest(manifest: &Manifest) -> Result<(), BackupError> {
    for db in &manifest.databases {
        let inside = Path::new(&db.path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(BackupError::Damaged(format!(
                "database path {:?} leaves the data directory",
                db.path
            )));
        }
        if db.schema_version > schema::SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                dir: format!("the archive's database {:?}", db.path),
                found: db.schema_version,
                supported: schema::SCHEMA_VERSION,
            }
            .into());
        }
    }
    Ok(())
}

/// Where [`read_body`] puts what it reads.
trait Sink {
    /// The records that follow belong to tree `name` of database `db`; None: the end.
    fn tree(&mut self, at: Option<(usize, &str)>) -> Result<(), BackupError>;
    fn entry(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), BackupError>;
}

/// Checks only.
struct Discard;

impl Sink for Discard {
    fn tree(&mut self, _: Option<(usize, &str)>) -> Result<(), BackupError> {
        Ok(())
    }

    fn entry(&mut self, _: Vec<u8>, _: Vec<u8>) -> Result<(), BackupError> {
        Ok(())
    }
}

/// Writes the records into the databases under `staging`, in batches.
struct Importer<'a> {
    manifest: &'a Manifest,
    staging: &'a Path,
    open: Option<(usize, sled::Db)>,
    tree: Option<sled::Tree>,
    batch: sled::Batch,
    pending: usize,
}

impl Importer<'_> {
    fn write_batch(&mut self) -> Result<(), BackupError> {
        if let Some(tree) = &self.tree {
            tree.apply_batch(std::mem::take(&mut self.batch))?;
        }
        self.pending = 0;
        Ok(())
    }
}

impl Sink for Importer<'_> {
    fn tree(&mut self, at: Option<(usize, &str)>) -> Result<(), BackupError> {
        self.write_batch()?;
        let Some((db_index, name)) = at else {
            self.tree = None;
            if let Some((_, db)) = self.open.take() {
                db.flush()?;
            }
            return Ok(());
        };
        if self.open.as_ref().map(|(i, _)| *i) != Some(db_index) {
            if let Some((_, db)) = self.open.take() {
                db.flush()?;
            }
            let dir = self.staging.join(&self.manifest.databases[db_index].path);
            std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
            self.open = Some((db_index, crate::open_sled_unchecked(&dir)?));
        }
        if let Some((_, db)) = &self.open {
            self.tree = Some(db.open_tree(name)?);
        }
        Ok(())
    }

    fn entry(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<(), BackupError> {
        self.batch.insert(key, value);
        self.pending += 1;
        if self.pending == BATCH {
            self.write_batch()?;
        }
        Ok(())
    }
}

/// Builds every database of the archive under `staging`.
fn import(reader: &mut impl Read, manifest: &Manifest, staging: &Path) -> Result<(), BackupError> {
    let mut importer = Importer {
        manifest,
        staging,
        open: None,
        tree: None,
        batch: sled::Batch::default(),
        pending: 0,
    };
    read_body(reader, manifest, &mut importer)?;
    drop(importer);
    // Databases without trees still get their directory, and every one its next id.
    for db in &manifest.databases {
        let dir = staging.join(&db.path);
        std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let sled = crate::open_sled_unchecked(&dir)?;
        schema::set_id_base(&sled, db.next_id)?;
        sled.flush()?;
    }
    Ok(())
}

/// Reads the body record by record into `sink`, then checks that the body ends
/// where the manifest says and hashes to its checksum.
fn read_body(
    reader: &mut impl Read,
    manifest: &Manifest,
    sink: &mut impl Sink,
) -> Result<(), BackupError> {
    let mut body = Body {
        reader,
        hasher: Sha256::new(),
        remaining: manifest.body_bytes,
        total: manifest.body_bytes,
    };
    for (db_index, db) in manifest.databases.iter().enumerate() {
        for tree in &db.trees {
            sink.tree(Some((db_index, &tree.name)))?;
            let mut bytes = 0u64;
            for _ in 0..tree.entries {
                let key = body.field()?;
                let value = body.field()?;
                bytes += (key.len() + value.len()) as u64;
                sink.entry(key, value)?;
            }
            if bytes != tree.bytes {
                return Err(BackupError::Damaged(format!(
                    "tree {:?} holds {bytes} bytes, the manifest says {}",
                    tree.name, tree.bytes
                )));
            }
        }
    }
    sink.tree(None)?;
    if body.remaining > 0 {
        return Err(BackupError::Damaged(format!(
            "{} body bytes follow the last record the manifest lists",
            body.remaining
        )));
    }
    let mut extra = [0u8; 1];
    match body.reader.read(&mut extra) {
        Ok(0) => {}
        Ok(_) => {
            return Err(BackupError::Damaged(
                "bytes follow the end of the body".into(),
            ))
        }
        Err(e) => return Err(io("reading the archive")(e)),
    }
    let digest = hex::encode(body.hasher.finalize());
    if digest != manifest.body_sha256 {
        return Err(BackupError::Damaged(format!(
            "the body's SHA-256 is {digest}, the manifest says {}",
            manifest.body_sha256
        )));
    }
    Ok(())
}

/// The body as it is read: hashed, and never read past the length the manifest gives.
struct Body<'a, R> {
    reader: &'a mut R,
    hasher: Sha256,
    remaining: u64,
    total: u64,
}

impl<R: Read> Body<'_, R> {
    /// One length-prefixed field.
    fn field(&mut self) -> Result<Vec<u8>, BackupError> {
        let mut len = [0u8; 4];
        self.take(&mut len)?;
        let len = u32::from_be_bytes(len) as u64;
        if len > self.remaining {
            return Err(BackupError::Damaged(format!(
                "a record of {len} bytes where {} body bytes are left",
                self.remaining
            )));
        }
        let mut field = vec![0u8; len as usize];
        self.take(&mut field)?;
        Ok(field)
    }

    fn take(&mut self, buf: &mut [u8]) -> Result<(), BackupError> {
        if buf.len() as u64 > self.remaining {
            return Err(BackupError::Damaged(format!(
                "the records run past the {} body bytes the manifest gives",
                self.total
            )));
        }
        let read = self.total - self.remaining;
        let total = self.total;
        read_exact(self.reader, buf, || {
            format!("its body ends after about {read} of {total} bytes")
        })?;
        self.hasher.update(&buf[..]);
        self.remaining -= buf.len() as u64;
        Ok(())
    }
}

/// Renames the checked `staging` directory to `target`, moving what `target` held aside
/// first and deleting it after.
fn swap_in(
    staging: &Path,
    target: &Path,
    replacing: bool,
    parent: &Path,
    name: &str,
) -> Result<(), BackupError> {
    let shown = target.display().to_string();
    let aside = parent.join(format!(".{name}.replaced-{}", std::process::id()));
    if replacing {
        std::fs::rename(target, &aside).map_err(io(format!("moving {shown} aside")))?;
    } else if target.exists() {
        std::fs::remove_dir(target).map_err(io(format!("replacing empty {shown}")))?;
    }
    if let Err(e) = std::fs::rename(staging, target) {
        if replacing {
            let _ = std::fs::rename(&aside, target);
        }
        let _ = std::fs::remove_dir_all(staging);
        return Err(io(format!("renaming the restored directory to {shown}"))(e));
    }
    if let Ok(dir) = std::fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    if replacing {
        std::fs::remove_dir_all(&aside)
            .map_err(io(format!("removing the replaced {}", aside.display())))?;
    }
    Ok(())
}
