//! `bellwether backup` (a running collector's store into an archive file) and `bellwether
//! restore` (an archive into a data directory, with no collector running on it).
//!
//! Exit codes: 0 done; 1 the collector refused the backup (a cluster node, a missing
//! scope), or restore refused the archive (damaged, truncated, too new); 2 usage,
//! connection (an archive that arrived damaged included), file system, or a target
//! directory that is not empty (without `--force`) or in use.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;

use super::{ApiClient, ClientError, DEFAULT_URL};
use bellwether_store::backup::{self, BackupError, Manifest};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the archive. It is written to FILE.partial first, checked, and only
    /// then renamed to FILE.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Collector HTTP API base URL. Repeat the flag or separate URLs with commas to name
    /// several: when one cannot be reached the next is asked.
    #[arg(long, env = "BELLWETHER_URL", value_name = "URL", default_value = DEFAULT_URL)]
    pub url: Vec<String>,
    /// Bearer token with the admin scope, for a collector that requires one.
    #[arg(long, env = "BELLWETHER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The data directory to rebuild; it must be missing or empty unless --force.
    #[arg(long, env = "BELLWETHER_DATA_DIR", value_name = "DIR")]
    pub data_dir: PathBuf,
    /// Replace what DIR holds (refused while a collector runs on it).
    #[arg(long)]
    pub force: bool,
    /// The archive `bellwether backup` wrote.
    #[arg(value_name = "FILE")]
    pub archive: PathBuf,
}

pub async fn run_backup(args: BackupArgs) -> ExitCode {
    let started = Instant::now();
    match backup_to(&args).await {
        Ok(manifest) => {
            let bytes = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
            println!(
                "wrote {}: {bytes} bytes, {} entries, sha256 {} ({:.1}s)",
                args.out.display(),
                manifest.entries(),
                manifest.body_sha256,
                started.elapsed().as_secs_f64()
            );
            print!("{}", tree_lines(&manifest));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Downloads into `<out>.partial`, checks it, renames it to `out`.
async fn backup_to(args: &BackupArgs) -> Result<Manifest, ClientError> {
    let client = ApiClient::from_urls(&args.url)?.with_token(args.token.as_deref())?;
    let partial = partial_path(&args.out);
    let file_error = |what: &str, e: &dyn std::fmt::Display| {
        ClientError::Usage(format!("{what} {}: {e}", partial.display()))
    };
    let mut file = tokio::fs::File::create(&partial)
        .await
        .map_err(|e| file_error("creating", &e))?;
    let downloaded = client.download("/api/v1/admin/backup", &mut file).await;
    let checked = match downloaded {
        Ok(_) => {
            let synced = file.sync_all().await;
            drop(file);
            synced.map_err(|e| file_error("writing", &e))?;
            let path = partial.clone();
            tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&path)?;
                Ok::<_, std::io::Error>(backup::verify(file))
            })
            .await
            .map_err(|e| file_error("checking", &e))?
            .map_err(|e| file_error("reading", &e))?
        }
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    match checked {
        Ok(manifest) => {
            std::fs::rename(&partial, &args.out).map_err(|e| {
                ClientError::Usage(format!("renaming to {}: {e}", args.out.display()))
            })?;
            Ok(manifest)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            // Most likely cut off on the way: asking again is worth it.
            Err(ClientError::Connection {
                url: client.urls().join(", "),
                message: format!("the archive received does not check: {e}"),
            })
        }
    }
}

fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

pub async fn run_restore(args: RestoreArgs) -> ExitCode {
    let started = Instant::now();
    let (archive, data_dir, force) = (args.archive.clone(), args.data_dir.clone(), args.force);
    let restored = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&archive).map_err(|source| BackupError::Io {
            what: format!("opening {}", archive.display()),
            source,
        })?;
        backup::restore(file, &data_dir, force)
    })
    .await;
    match restored {
        Ok(Ok(manifest)) => {
            println!(
                "restored {} from {}: {} entries, written by bellwether {} at {} ({:.1}s)",
                args.data_dir.display(),
                args.archive.display(),
                manifest.entries(),
                manifest.bellwether_version,
                manifest.created_at_unix_ms,
                started.elapsed().as_secs_f64()
            );
            print!("{}", tree_lines(&manifest));
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            let refused_archive = matches!(
                e,
                BackupError::NotAnArchive
                    | BackupError::NewerFormat { .. }
                    | BackupError::Damaged(_)
                    | BackupError::Truncated(_)
                    | BackupError::Store(bellwether_store::StoreError::NewerSchema { .. })
            );
            ExitCode::from(if refused_archive { 1 } else { 2 })
        }
        Err(e) => {
            eprintln!("error: restore failed: {e}");
            ExitCode::from(2)
        }
    }
}

/// `  <database>/<tree>: <entries>` for every tree that holds something.
fn tree_lines(manifest: &Manifest) -> String {
    let mut out = String::new();
    for db in &manifest.databases {
        let prefix = if db.path.is_empty() { "data" } else { &db.path };
        for tree in db.trees.iter().filter(|t| t.entries > 0) {
            out.push_str(&format!("  {prefix}/{}: {}\n", tree.name, tree.entries));
        }
    }
    out
}
