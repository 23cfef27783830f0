//! Per-file series on the agent's `/metrics`, labelled with the file's path.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::tail::Tailed;
use crate::stats::Stats;

const LAG: &str = "file_lag_bytes";
const ROTATIONS: &str = "file_rotations_total";
const TRUNCATIONS: &str = "file_truncations_total";
const LINES: &str = "file_lines_total";
const LINES_TRUNCATED: &str = "file_lines_truncated_total";
const INVALID_UTF8: &str = "file_invalid_utf8_lines_total";

pub(super) struct FileMetrics {
    stats: Arc<Stats>,
    /// Paths with a lag series, to remove the series of files let go.
    lagging: Vec<String>,
}

impl FileMetrics {
    /// Counts a save of the positions that failed.
    pub(super) fn checkpoint_failed(&self) {
        Stats::incr(&self.stats.checkpoint_errors);
    }

    pub(super) fn new(stats: Arc<Stats>) -> Self {
        Self {
            stats,
            lagging: Vec::new(),
        }
    }

    pub(super) fn rotated(&self, tailed: &Tailed) {
        self.stats.series.add(
            ROTATIONS,
            "Times a tailed file was renamed or removed from its path",
            &[("path", &tailed.path_text)],
            1.0,
        );
    }

    pub(super) fn truncated(&self, tailed: &Tailed) {
        self.stats.series.add(
            TRUNCATIONS,
            "Times a tailed file was truncated (copytruncate) and read again from its start",
            &[("path", &tailed.path_text)],
            1.0,
        );
    }

    /// Publishes the file's line counters grown since the last call.
    pub(super) fn counted(&self, tailed: &mut Tailed) {
        let now = tailed.assembler.counts();
        let before = tailed.published;
        if now == before {
            return;
        }
        let path = [("path", tailed.path_text.as_str())];
        let series = &self.stats.series;
        series.add(
            LINES,
            "Lines read per tailed file",
            &path,
            (now.lines - before.lines) as f64,
        );
        series.add(
            LINES_TRUNCATED,
            "Lines cut at 256 KiB, and multi-line records cut at their caps, per tailed file",
            &path,
            (now.truncated - before.truncated) as f64,
        );
        series.add(
            INVALID_UTF8,
            "Lines that were not valid UTF-8 (bytes replaced), per tailed file",
            &path,
            (now.invalid_utf8 - before.invalid_utf8) as f64,
        );
        tailed.published = now;
    }

    /// Bytes not yet handed to the pipeline, per path.
    pub(super) fn lag<'a>(&mut self, files: impl Iterator<Item = &'a Tailed>) {
        let mut lag: BTreeMap<&str, u64> = BTreeMap::new();
        for tailed in files {
            let size = tailed.size().unwrap_or(tailed.read_offset);
            *lag.entry(tailed.path_text.as_str()).or_default() +=
                size.saturating_sub(tailed.committed);
        }
        for gone in self
            .lagging
            .iter()
            .filter(|p| !lag.contains_key(p.as_str()))
        {
            self.stats.series.remove(LAG, &[("path", gone)]);
        }
        for (path, bytes) in &lag {
            self.stats.series.set(
                LAG,
                "Bytes of a tailed file not yet handed to the queue",
                &[("path", path)],
                *bytes as f64,
            );
        }
        self.lagging = lag.keys().map(|p| (*p).to_owned()).collect();
    }
}
