//! The on-disk schema version of each sled database, kept in its `meta` tree.
//!
//! - `meta/schema_version`: u32 big-endian, the layout of every tree of the database.
//!   Databases written before versions were stamped have no `meta` tree; their layout is
//!   version 1's, so opening one stamps it 1 and reads on.
//! - `meta/id_base`: u64 big-endian, added to sled's id generator ([`next_id`]). sled's
//!   counter lives outside the trees, so a restored database starts it again at 0; the
//!   restore writes the archived counter here and ids keep growing.
//!
//! A database stamped with a version newer than [`SCHEMA_VERSION`] is refused
//! ([`StoreError::NewerSchema`]): a newer Bellwether may have changed what the bytes mean,
//! and reading them anyway could turn counts into garbage without a word.

use std::path::Path;

use crate::StoreError;

/// The newest schema this binary reads and writes. Bump it with a migration in
/// [`check_and_stamp`] when a tree's layout changes.
pub const SCHEMA_VERSION: u32 = 1;

pub const META_TREE: &str = "meta";
const SCHEMA_KEY: &[u8] = b"schema_version";
const ID_BASE_KEY: &[u8] = b"id_base";

/// The schema version stamped in `db`; None for a database from before stamps.
pub fn stamped_version(db: &sled::Db) -> Result<Option<u32>, StoreError> {
    let meta = db.open_tree(META_TREE)?;
    match meta.get(SCHEMA_KEY)? {
        None => Ok(None),
        Some(raw) => <[u8; 4]>::try_from(raw.as_ref())
            .map(|b| Some(u32::from_be_bytes(b)))
            .map_err(|_| StoreError::Corrupt(format!("meta/schema_version: {} bytes", raw.len()))),
    }
}

/// Checks that this binary can read `db` (opened from `dir`) and stamps a database from
/// before versions with [`SCHEMA_VERSION`], durably.
pub fn check_and_stamp(db: &sled::Db, dir: &Path) -> Result<(), StoreError> {
    match stamped_version(db)? {
        Some(SCHEMA_VERSION) => Ok(()),
        Some(found) if found > SCHEMA_VERSION => Err(StoreError::NewerSchema {
            dir: dir.display().to_string(),
            found,
            supported: SCHEMA_VERSION,
        }),
        // Version 0 was never written; treat it like a database from before stamps.
        Some(_) | None => {
            let meta = db.open_tree(META_TREE)?;
            meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()[..])?;
            db.flush()?;
            Ok(())
        }
    }
}

/// Writes `version` as `db`'s schema version (restores, and tests that make a directory
/// of another version).
pub fn stamp(db: &sled::Db, version: u32) -> Result<(), StoreError> {
    db.open_tree(META_TREE)?
        .insert(SCHEMA_KEY, &version.to_be_bytes()[..])?;
    Ok(())
}

/// What [`next_id`] adds to sled's counter in `db`.
pub fn id_base(db: &sled::Db) -> Result<u64, StoreError> {
    let meta = db.open_tree(META_TREE)?;
    Ok(meta
        .get(ID_BASE_KEY)?
        .and_then(|raw| <[u8; 8]>::try_from(raw.as_ref()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// Sets [`id_base`] (a restore, to the archived database's next id).
pub fn set_id_base(db: &sled::Db, base: u64) -> Result<(), StoreError> {
    db.open_tree(META_TREE)?
        .insert(ID_BASE_KEY, &base.to_be_bytes()[..])?;
    Ok(())
}

/// A new id of `db`, larger than every id handed out before, restores included.
pub fn next_id(db: &sled::Db, base: u64) -> Result<u64, StoreError> {
    Ok(base.saturating_add(db.generate_id()?))
}
