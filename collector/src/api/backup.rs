//! `POST /api/v1/admin/backup` (admin scope): a point-in-time archive of the collector's
//! sled databases ([`bellwether_store::backup`]), streamed as the response body.
//!
//! The snapshot is spooled to an unnamed file in the data directory with every store's
//! writes held back (ingest waits, it is not refused), then streamed with writes flowing
//! again, so a slow client never stalls ingest. A cluster node answers 501: its state is
//! in NATS JetStream, which is what to back up there.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use bellwether_store::backup::{BackupError, Snapshot, Source};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use crate::error::Error;

/// The archive's media type.
pub const CONTENT_TYPE: &str = "application/vnd.bellwether.backup";
/// The response header carrying the body's SHA-256 (also in the archive's manifest).
pub const SHA256_HEADER: &str = "bellwether-backup-sha256";
const CHUNK: usize = 256 * 1024;

/// What a single collector backs up: its databases, and where to spool the snapshot.
#[derive(Clone, Debug)]
pub struct Backups {
    pub source: Source,
    pub spool_dir: PathBuf,
}

/// `backups` is None on a cluster node.
pub fn routes(backups: Option<Backups>) -> Router {
    Router::new()
        .route("/api/v1/admin/backup", post(backup))
        .with_state(backups)
}

fn failed(e: BackupError) -> Error {
    match e {
        BackupError::Store(e) => Error::Store(e),
        other => Error::Internal(format!("backup: {other}")),
    }
}

async fn backup(State(backups): State<Option<Backups>>) -> Result<Response, Error> {
    let Some(backups) = backups else {
        return Err(Error::NotImplemented(
            "this collector is a cluster node: its state is in NATS JetStream (the ingest \
             stream and the key-value buckets); back those up instead, see docs/operations.md"
                .into(),
        ));
    };
    let snapshot = tokio::task::spawn_blocking(move || {
        let spool = tempfile::tempfile_in(&backups.spool_dir).map_err(|e| {
            Error::Internal(format!(
                "creating a backup spool file in {}: {e}",
                backups.spool_dir.display()
            ))
        })?;
        backups.source.snapshot(spool).map_err(failed)
    })
    .await??;
    let Snapshot {
        manifest,
        head,
        body,
        paused,
    } = snapshot;
    let length = head.len() as u64 + manifest.body_bytes;
    tracing::info!(
        entries = manifest.entries(),
        bytes = length,
        writes_paused_ms = paused.as_millis() as u64,
        "backup snapshot taken"
    );
    let mut file = tokio::fs::File::from_std(body);
    let stream = async_stream::stream! {
        yield Ok::<Bytes, std::io::Error>(Bytes::from(head));
        let mut buf = vec![0u8; CHUNK];
        loop {
            match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => yield Ok(Bytes::copy_from_slice(&buf[..n])),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the backup spool failed");
                    yield Err(e);
                    break;
                }
            }
        }
    };
    let created = manifest.created_at_unix_ms;
    Response::builder()
        .header(header::CONTENT_TYPE, CONTENT_TYPE)
        .header(header::CONTENT_LENGTH, length)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"bellwether-{created}.backup\""),
        )
        .header(SHA256_HEADER, &manifest.body_sha256)
        .body(Body::from_stream(stream))
        .map_err(|e| Error::Internal(format!("backup response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_cluster_node_answers_501_naming_jetstream() -> Result<(), Box<dyn std::error::Error>>
    {
        let request = axum::http::Request::post("/api/v1/admin/backup").body(Body::empty())?;
        let response = routes(None).oneshot(request).await?;
        assert_eq!(response.status(), axum::http::StatusCode::NOT_IMPLEMENTED);
        let body = response.into_body().collect().await?.to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body)?;
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains("NATS JetStream"), "{error}");
        Ok(())
    }
}
