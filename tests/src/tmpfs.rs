//! A size-limited file system for full-disk tests: a `tmpfs` mounted over a temporary
//! directory (root only), filled on purpose with a ballast file and emptied again.
//!
//! Without the right to mount, the tests that need one are skipped with a loud message,
//! unless `BELLWETHER_REQUIRE_TOOLS=1` (set by `.ci/run`, which runs as root) makes that
//! a failure.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::browser::tools_required;

/// A mounted `tmpfs`; unmounted on drop.
pub struct Tmpfs {
    dir: tempfile::TempDir,
    ballast: PathBuf,
}

impl Tmpfs {
    /// Mounts a `tmpfs` of `size` (as `mount -o size=` takes it, e.g. `24m`); `None`
    /// (after saying so) when mounting is not allowed here and may be skipped.
    pub fn mount(size: &str) -> Result<Option<Self>> {
        let dir = tempfile::tempdir()?;
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        let refused = match output {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            Err(e) => Some(format!("cannot run mount: {e}")),
        };
        if let Some(why) = refused {
            if tools_required() {
                bail!("a tmpfs is required (BELLWETHER_REQUIRE_TOOLS=1; run as root): {why}");
            }
            eprintln!(
                "\n!!!!!!!! SKIPPED: cannot mount a tmpfs ({why}); run as root to test a full disk !!!!!!!!\n"
            );
            return Ok(None);
        }
        let ballast = dir.path().join("ballast");
        Ok(Some(Self { dir, ballast }))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes free on it now.
    pub fn free_bytes(&self) -> Result<u64> {
        let stat = nix::sys::statvfs::statvfs(self.path()).context("statvfs")?;
        Ok(stat.blocks_available() * stat.fragment_size())
    }

    /// Grows the ballast file until at most `free` bytes are left free (never fewer than
    /// `free` minus 64 KiB).
    pub fn fill_leaving(&self, free: u64) -> Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.ballast)
            .context("ballast file")?;
        let chunk = vec![0xa5u8; 64 * 1024];
        loop {
            let now = self.free_bytes()?;
            if now <= free {
                return Ok(());
            }
            let n = usize::try_from((now - free).min(chunk.len() as u64))?;
            file.write_all(&chunk[..n]).context("growing the ballast")?;
            file.sync_data()?;
        }
    }

    /// Deletes the ballast: the space is back.
    pub fn empty_ballast(&self) -> Result<()> {
        std::fs::remove_file(&self.ballast).context("removing the ballast")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process of the test may still have a file open there.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
