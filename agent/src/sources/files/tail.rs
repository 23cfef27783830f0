//! One tailed file: its identity, the open handle, the read position and the position
//! up to which every record has been handed to the pipeline.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bellwether_proto::otlp::logs::LogRecord;
use bellwether_stacktrace::JoinerConfig;

use super::PATH_ATTR;
use crate::batch::attribute_field;
use crate::otlp::string_kv;
use crate::parse::{LineAssembler, LineCounts, MAX_LINE_BYTES};
use crate::sources::lines::LineSplitter;

/// Bytes of a file's start that tell it apart from another file on the same inode.
pub const FINGERPRINT_BYTES: usize = 1024;

/// (device, inode).
pub type FileId = (u64, u64);

/// A hash of a file's first bytes, and how many bytes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    pub len: u64,
    pub hash: u64,
}

impl Fingerprint {
    /// Of the first up to [`FINGERPRINT_BYTES`] of `file` (its position is kept).
    pub fn of(file: &File) -> std::io::Result<Self> {
        Self::of_prefix(file, FINGERPRINT_BYTES as u64)
    }

    /// Of the first up to `len` bytes of `file`.
    pub fn of_prefix(file: &File, len: u64) -> std::io::Result<Self> {
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(FINGERPRINT_BYTES)];
        let mut filled = 0;
        while filled < buf.len() {
            match std::os::unix::fs::FileExt::read_at(file, &mut buf[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Self {
            len: filled as u64,
            hash: fnv1a(&buf[..filled]),
        })
    }

    /// True when `file` starts with the bytes this fingerprint was taken of.
    pub fn matches(&self, file: &File) -> bool {
        Self::of_prefix(file, self.len).is_ok_and(|now| now == *self)
    }
}

/// FNV-1a, 64 bits: stable across builds, which a checkpoint needs.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What happened to the file behind the handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Still at its path.
    Active,
    /// Renamed away or deleted: read to its end, then let go.
    Rotated,
}

/// A file being tailed.
pub struct Tailed {
    pub id: FileId,
    pub path: PathBuf,
    /// `path` as a label value.
    pub path_text: String,
    /// `path` as the `log.file.path` attribute of a record, encoded.
    pub path_field: Vec<u8>,
    file: File,
    pub fingerprint: Fingerprint,
    /// Next byte to read.
    pub read_offset: u64,
    /// Every record before this offset has been handed to the pipeline.
    pub committed: u64,
    /// Unique to this handle and contents: renewed each time the file is read again from
    /// its start, so an offset taken before is known to belong to other contents.
    pub generation: u64,
    /// Where the record the joiner holds open starts.
    pending_start: Option<u64>,
    splitter: LineSplitter,
    pub assembler: LineAssembler,
    /// When the last line was taken (for the multi-line timeout).
    pub last_line: Instant,
    /// When bytes were last read.
    pub last_growth: Instant,
    pub life: Life,
    /// Counters already published to the stats.
    pub published: LineCounts,
}

impl Tailed {
    /// Tails `file`, opened at `path`, from `offset` (0 when past the end).
    pub fn new(
        path: &Path,
        mut file: File,
        offset: u64,
        joiner: JoinerConfig,
    ) -> std::io::Result<Self> {
        let meta = file.metadata()?;
        let offset = if offset > meta.len() { 0 } else { offset };
        file.seek(SeekFrom::Start(offset))?;
        let fingerprint = Fingerprint::of(&file)?;
        let now = Instant::now();
        let mut tailed = Self {
            id: (meta.dev(), meta.ino()),
            path: PathBuf::new(),
            path_text: String::new(),
            path_field: Vec::new(),
            file,
            fingerprint,
            read_offset: offset,
            committed: offset,
            generation: next_generation(),
            pending_start: None,
            splitter: LineSplitter::new(MAX_LINE_BYTES + 1),
            assembler: LineAssembler::new(joiner),
            last_line: now,
            last_growth: now,
            life: Life::Active,
            published: LineCounts::default(),
        };
        tailed.rename(path);
        Ok(tailed)
    }

    /// The file now lives at `path`; records read from now on carry it.
    pub fn rename(&mut self, path: &Path) {
        self.path = path.to_owned();
        self.path_text = path.to_string_lossy().into_owned();
        self.path_field = attribute_field(&string_kv(PATH_ATTR, self.path_text.clone()));
    }

    /// Current size of the open file.
    pub fn size(&self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// True when the file was cut below what was read (copytruncate), or its first bytes
    /// changed under the same inode. The caller then [`restart`](Self::restart)s it.
    pub fn was_truncated(&mut self) -> std::io::Result<bool> {
        let size = self.size()?;
        if size < self.read_offset {
            return Ok(true);
        }
        if self.fingerprint.len < FINGERPRINT_BYTES as u64 && size > self.fingerprint.len {
            // Grown since the fingerprint was taken: cover more of the start.
            let longer = Fingerprint::of(&self.file)?;
            let same_start = Fingerprint::of_prefix(&self.file, self.fingerprint.len)?;
            if same_start != self.fingerprint {
                return Ok(true);
            }
            self.fingerprint = longer;
            return Ok(false);
        }
        Ok(!self.fingerprint.matches(&self.file))
    }

    /// Reads again from the start of the file: what was still held open is emitted into
    /// `out` first.
    pub fn restart(&mut self, now: u64, out: &mut Vec<LogRecord>) -> std::io::Result<()> {
        self.finish(now, out);
        self.file.seek(SeekFrom::Start(0))?;
        self.read_offset = 0;
        self.committed = 0;
        self.generation = next_generation();
        self.fingerprint = Fingerprint::of(&self.file)?;
        Ok(())
    }

    /// Emits the partial last line and the open record (the file will not grow again,
    /// or its contents are being replaced). Afterwards everything read counts as handed
    /// over once `out` is.
    pub fn finish(&mut self, now: u64, out: &mut Vec<LogRecord>) {
        if let Some((line, overflowed)) = self.splitter.take_partial() {
            self.assembler.push(&line, overflowed, now, out);
        }
        self.assembler.flush(now, out);
        self.pending_start = None;
    }

    /// Reads at most `budget` bytes into `buf` and turns the complete lines into records
    /// in `out`. Returns the bytes read (0 at the end of the file).
    pub fn read(
        &mut self,
        buf: &mut [u8],
        budget: usize,
        now: u64,
        out: &mut Vec<LogRecord>,
    ) -> std::io::Result<usize> {
        let mut total = 0;
        while total < budget {
            let want = buf.len().min(budget - total);
            let n = match self.file.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            let chunk_start = self.read_offset;
            self.read_offset += n as u64;
            total += n;
            let mut last_end = None;
            let assembler = &mut self.assembler;
            let pending_start = &mut self.pending_start;
            self.splitter.feed(&buf[..n], |line, overflowed, end| {
                let line_start = chunk_start + end as u64 - line_len_on_disk(line, overflowed);
                let before = out.len();
                let was_pending = assembler.has_pending();
                assembler.push(line, overflowed, now, out);
                *pending_start = match (was_pending, assembler.has_pending()) {
                    (_, false) => None,
                    // A new record began with this line (the previous one was emitted,
                    // or nothing was open).
                    (false, true) => Some(line_start),
                    (true, true) if out.len() > before => Some(line_start),
                    (true, true) => *pending_start,
                };
                last_end = Some(chunk_start + end as u64);
            });
            if last_end.is_some() {
                self.last_line = Instant::now();
            }
            if n < want {
                break;
            }
        }
        if total > 0 {
            self.last_growth = Instant::now();
        }
        Ok(total)
    }

    /// The offset up to which the records emitted so far cover the file: the start of
    /// the record held open, else the start of the partial line.
    pub fn safe_offset(&self) -> u64 {
        self.pending_start
            .unwrap_or_else(|| self.read_offset - self.splitter.partial_bytes())
    }

    /// Flushes the open record after the multi-line timeout.
    pub fn flush_open_record(&mut self, now: u64, out: &mut Vec<LogRecord>) {
        self.assembler.flush(now, out);
        self.pending_start = None;
    }
}

/// Bytes a line took on disk, newline included. Over-long lines only report their
/// start; their real start is tracked by the splitter's partial count instead, so their
/// offsets matter only for records held open, which an over-long line never is.
fn line_len_on_disk(line: &[u8], overflowed: bool) -> u64 {
    if overflowed {
        0
    } else {
        line.len() as u64 + 1
    }
}
