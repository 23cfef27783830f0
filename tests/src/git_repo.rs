//! Real git repositories made by a test in a temp dir: commits with set authors, dates
//! and files, through the `git` binary, with the host's git configuration shut out.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A commit's author.
#[derive(Clone, Copy, Debug)]
pub struct Author {
    pub name: &'static str,
    pub email: &'static str,
}

pub struct GitRepo {
    pub dir: PathBuf,
}

/// `git` in `dir`, reading no global or system configuration.
pub fn git_command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C");
    cmd
}

/// Runs git in `dir` with `args`; its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = git_command(dir)
        .args(args)
        .output()
        .context("running git (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl GitRepo {
    /// A new repository in `dir` with branch `main`.
    pub fn init(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        git(dir, &["init", "-q", "-b", "main"])?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    pub fn git(&self, args: &[&str]) -> Result<String> {
        git(&self.dir, args)
    }

    /// Writes `files` (path, content), stages everything and commits as `author` at
    /// `unix_seconds` (author and committer date); the new commit's sha.
    pub fn commit(
        &self,
        author: Author,
        unix_seconds: i64,
        subject: &str,
        files: &[(&str, &str)],
    ) -> Result<String> {
        for (path, content) in files {
            let path = self.dir.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, content)?;
        }
        git(&self.dir, &["add", "-A"])?;
        let date = format!("@{unix_seconds} +0000");
        let out = git_command(&self.dir)
            .args(["commit", "-q", "--allow-empty", "-m", subject])
            .env("GIT_AUTHOR_NAME", author.name)
            .env("GIT_AUTHOR_EMAIL", author.email)
            .env("GIT_COMMITTER_NAME", author.name)
            .env("GIT_COMMITTER_EMAIL", author.email)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()?;
        if !out.status.success() {
            bail!(
                "git commit failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        self.git(&["rev-parse", "HEAD"])
    }
}
