//! Append-only segment files holding the queued batches.
//!
//! Each append writes its entries at the end of the current segment file and syncs it
//! before returning; entries are never rewritten. A segment is deleted once every entry
//! in it has been delivered (and it is no longer the one written to). Keeping batch bodies
//! out of the key-value store means each byte is written once, and reading a batch back
//! costs one positioned read: no page cache of its own, so the queue's memory does not grow
//! with its backlog.
//!
//! ```text
//! segment file  <first seq, 20 digits>.seg = frame*
//! frame         magic "BWF1" | seq u64 | len u32 | crc32 of the 16 bytes before u32
//!               | entry (len bytes, see codec: it carries its own checksum)
//! ```
//!
//! [`open`](Segments::open) reads every segment at start-up. An incomplete frame at the end
//! of the newest file is the trace of a crash during an append that never returned
//! (nothing was acknowledged for it): the file is cut back to its last whole frame.
//! Anything else that does not check out is damage: the scan looks for the next intact
//! frame and counts what it skipped.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::codec;

const FRAME_MAGIC: &[u8; 4] = b"BWF1";
const FRAME_HEADER: usize = 4 + 8 + 4 + 4;
const EXTENSION: &str = "seg";

/// Where an entry is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    /// The segment, named by the first sequence number written to it.
    pub segment: u64,
    /// Offset of the entry (after its frame header) in the segment file.
    pub offset: u64,
    pub len: u32,
}

/// An intact entry found by the start-up scan.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    pub seq: u64,
    pub loc: Loc,
    pub header: codec::Header,
}

/// What the start-up scan found.
#[derive(Debug, Default)]
pub(super) struct Scan {
    pub entries: Vec<Found>,
    /// Entries (or runs of bytes) that were damaged and skipped.
    pub damaged: u64,
}

#[derive(Debug)]
struct Segment {
    /// Entries not yet delivered.
    live: u64,
    last_seq: u64,
}

#[derive(Debug)]
struct Writer {
    first_seq: u64,
    file: File,
    len: u64,
}

/// The segment files of one queue.
#[derive(Debug)]
pub(super) struct Segments {
    dir: PathBuf,
    max_segment_bytes: u64,
    segments: BTreeMap<u64, Segment>,
    writer: Option<Writer>,
    /// A segment that stopped being written to with all its batches delivered.
    retired: Option<(u64, u64)>,
}

impl Segments {
    /// Opens the directory (creating it) and scans every segment in it. Appends go to a
    /// new segment: files written before are only read and deleted.
    pub fn open(dir: &Path, max_segment_bytes: u64) -> std::io::Result<(Self, Scan)> {
        std::fs::create_dir_all(dir)?;
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for item in std::fs::read_dir(dir)? {
            let path = item?.path();
            let first = path
                .extension()
                .filter(|ext| *ext == EXTENSION)
                .and_then(|_| path.file_stem()?.to_str()?.parse::<u64>().ok());
            match first {
                Some(first) => names.push((first, path)),
                None => {
                    warn!(path = %path.display(), "ignoring a file that is not a queue segment")
                }
            }
        }
        names.sort();
        let mut segments = Self {
            dir: dir.to_owned(),
            max_segment_bytes: max_segment_bytes.max(1),
            segments: BTreeMap::new(),
            writer: None,
            retired: None,
        };
        let mut scan = Scan::default();
        let newest = names.last().map(|(first, _)| *first);
        for (first, path) in names {
            let last = Some(first) == newest;
            let found = scan_file(first, &path, last, &mut scan.damaged)?;
            if found.is_empty() {
                std::fs::remove_file(&path)?;
                continue;
            }
            let last_seq = found.iter().map(|f| f.seq).max().unwrap_or(first);
            segments.segments.insert(
                first,
                Segment {
                    live: found.len() as u64,
                    last_seq,
                },
            );
            scan.entries.extend(found);
        }
        scan.entries.sort_by_key(|f| f.seq);
        Ok((segments, scan))
    }

    fn path(&self, first_seq: u64) -> PathBuf {
        self.dir.join(format!("{first_seq:020}.{EXTENSION}"))
    }

    /// Appends `(seq, entry)` pairs, in order, and syncs them to disk before returning.
    /// On failure the segment is cut back to where it was, so a later append does not
    /// follow a half-written frame.
    pub fn append(&mut self, entries: &[(u64, Vec<u8>)]) -> std::io::Result<Vec<Loc>> {
        let Some(&(first_seq, _)) = entries.first() else {
            return Ok(Vec::new());
        };
        if self
            .writer
            .as_ref()
            .is_none_or(|w| w.len >= self.max_segment_bytes)
        {
            if let Some(old) = self.writer.take() {
                self.retired = self
                    .segments
                    .get(&old.first_seq)
                    .filter(|s| s.live == 0)
                    .map(|s| (old.first_seq, s.last_seq));
            }
            let path = self.path(first_seq);
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)?;
            self.writer = Some(Writer {
                first_seq,
                file,
                len: 0,
            });
        }
        let Some(writer) = self.writer.as_mut() else {
            return Err(std::io::Error::other("no segment to write to"));
        };
        let total: usize = entries.iter().map(|(_, e)| FRAME_HEADER + e.len()).sum();
        let mut buf = Vec::with_capacity(total);
        let mut locs = Vec::with_capacity(entries.len());
        for (seq, entry) in entries {
            let len = u32::try_from(entry.len())
                .map_err(|_| std::io::Error::other("queue entry larger than 4 GiB"))?;
            let start = buf.len();
            buf.extend_from_slice(FRAME_MAGIC);
            buf.extend_from_slice(&seq.to_le_bytes());
            buf.extend_from_slice(&len.to_le_bytes());
            let crc = crc32fast::hash(&buf[start..]);
            buf.extend_from_slice(&crc.to_le_bytes());
            locs.push(Loc {
                segment: writer.first_seq,
                offset: writer.len + buf.len() as u64,
                len,
            });
            buf.extend_from_slice(entry);
        }
        let written = writer
            .file
            .write_all(&buf)
            .and_then(|()| writer.file.sync_data());
        if let Err(e) = written {
            if writer.file.set_len(writer.len).is_err() {
                // Cannot cut it back: start a fresh segment next time.
                self.writer = None;
            }
            return Err(e);
        }
        writer.len += buf.len() as u64;
        let segment = self.segments.entry(writer.first_seq).or_insert(Segment {
            live: 0,
            last_seq: first_seq,
        });
        segment.live += entries.len() as u64;
        segment.last_seq = entries.last().map_or(first_seq, |(seq, _)| *seq);
        Ok(locs)
    }

    /// Reads the entry at `loc`.
    pub fn read(&self, loc: Loc) -> std::io::Result<Vec<u8>> {
        let file = File::open(self.path(loc.segment))?;
        let mut buf = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset)?;
        Ok(buf)
    }

    /// Notes that one entry of `segment` is delivered (or dropped). When that was its last
    /// one and the segment is not being written to, returns the range of sequence numbers
    /// it held: it is to be [`delete`](Self::delete)d.
    pub fn release(&mut self, segment: u64) -> Option<(u64, u64)> {
        let entry = self.segments.get_mut(&segment)?;
        entry.live = entry.live.saturating_sub(1);
        let writing = self.writer.as_ref().is_some_and(|w| w.first_seq == segment);
        if entry.live > 0 || writing {
            return None;
        }
        Some((segment, entry.last_seq))
    }

    /// A segment [`append`](Self::append) stopped writing to whose batches were all
    /// delivered already: it is to be [`delete`](Self::delete)d.
    pub fn take_retired(&mut self) -> Option<(u64, u64)> {
        self.retired.take()
    }

    /// Deletes a segment [`release`](Self::release) gave up.
    pub fn delete(&mut self, segment: u64) -> std::io::Result<()> {
        self.segments.remove(&segment);
        match std::fs::remove_file(self.path(segment)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The segments that exist, by first sequence number.
    pub fn firsts(&self) -> impl Iterator<Item = u64> + '_ {
        self.segments.keys().copied()
    }

    /// Whether `seq` falls in a segment file that exists.
    pub fn holds(&self, seq: u64) -> bool {
        self.segments
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, s)| seq <= s.last_seq)
    }
}

/// Reads one segment file, cutting off an incomplete last frame and skipping damage.
///
/// Only the newest segment can have been cut short by a crash; an older one that ends
/// inside a frame has lost data, which is counted as damage.
fn scan_file(
    first: u64,
    path: &Path,
    newest: bool,
    damaged: &mut u64,
) -> std::io::Result<Vec<Found>> {
    let bytes = std::fs::read(path)?;
    let mut found = Vec::new();
    let mut at = 0usize;
    let mut good_end = 0usize;
    while at < bytes.len() {
        match frame_at(&bytes, at) {
            Frame::Entry { seq, len } => {
                let start = at + FRAME_HEADER;
                let entry = &bytes[start..start + len];
                match codec::header(entry) {
                    Ok(header) => found.push(Found {
                        seq,
                        loc: Loc {
                            segment: first,
                            offset: start as u64,
                            len: len as u32,
                        },
                        header,
                    }),
                    Err(error) => {
                        warn!(path = %path.display(), seq, error = %error, "queued batch is damaged, skipping it");
                        *damaged += 1;
                    }
                }
                at = start + len;
                good_end = at;
            }
            Frame::Incomplete => {
                if !newest {
                    *damaged += 1;
                }
                // A crash during the last append: nothing in it was acknowledged.
                warn!(path = %path.display(), offset = at, "cutting off an incomplete write at the end of a queue segment");
                let file = OpenOptions::new().write(true).open(path)?;
                file.set_len(good_end as u64)?;
                file.sync_all()?;
                break;
            }
            Frame::Bad => {
                *damaged += 1;
                let next = next_frame(&bytes, at + 1);
                warn!(
                    path = %path.display(),
                    offset = at,
                    skipped_bytes = next.unwrap_or(bytes.len()) - at,
                    "queue segment is damaged, skipping to the next intact batch"
                );
                match next {
                    Some(next) => at = next,
                    None => break,
                }
            }
        }
    }
    Ok(found)
}

enum Frame {
    Entry {
        seq: u64,
        len: usize,
    },
    /// The file ends inside this frame.
    Incomplete,
    Bad,
}

fn frame_at(bytes: &[u8], at: usize) -> Frame {
    let Some(header) = bytes.get(at..at + FRAME_HEADER) else {
        return if FRAME_MAGIC.starts_with(&bytes[at..bytes.len().min(at + 4)]) {
            Frame::Incomplete
        } else {
            Frame::Bad
        };
    };
    let crc = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    if &header[..4] != FRAME_MAGIC || crc32fast::hash(&header[..16]) != crc {
        return Frame::Bad;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&header[4..12]);
    let len = u32::from_le_bytes([header[12], header[13], header[14], header[15]]) as usize;
    if bytes.len() - at - FRAME_HEADER < len {
        return Frame::Incomplete;
    }
    Frame::Entry {
        seq: u64::from_le_bytes(seq),
        len,
    }
}

/// The next offset from `from` where an intact frame header starts.
fn next_frame(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + FRAME_HEADER <= bytes.len() {
        let offset = bytes[at..]
            .windows(FRAME_MAGIC.len())
            .position(|w| w == FRAME_MAGIC)?;
        at += offset;
        if matches!(frame_at(bytes, at), Frame::Entry { .. }) {
            return Some(at);
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests;
