//! TLS (rustls with ring) for the collector's three listeners, optionally requiring
//! client certificates signed by a given CA (mTLS). Configured in the `[tls]` table:
//!
//! | key | meaning |
//! |---|---|
//! | `cert_file` | PEM certificate chain of the collector (leaf first) |
//! | `key_file` | PEM private key (PKCS#8, PKCS#1 or SEC1) |
//! | `client_ca_file` | optional PEM CA bundle: clients must present a certificate it signed |
//!
//! Paths are relative to the config file. When `[tls]` is present every listener speaks
//! TLS only; a plaintext client fails its handshake and is disconnected.
//! The gRPC listener uses tonic's TLS; the HTTP listeners run their own accept loop
//! ([`serve`]) over tokio-rustls.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use bellwether_model::config::ConfigError;

/// A handshake that takes longer than this is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `[tls]` table as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
}

/// Certificates and key, read and checked.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for TlsSettings {
    // The private key stays out of debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("client_auth", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

fn invalid(key: &str, path: &Path, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: format!("tls.{key}"),
        value: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Reads the files of `[tls]` (relative to `base`) and checks that they make a server
/// configuration.
pub fn load(raw: Option<&RawTls>, base: Option<&Path>) -> Result<Option<TlsSettings>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let read = |key: &str, file: &Path| {
        let path = match base {
            Some(base) if file.is_relative() => base.join(file),
            _ => file.to_owned(),
        };
        std::fs::read(&path).map_err(|e| invalid(key, &path, e.to_string()))
    };
    let settings = TlsSettings {
        cert_pem: read("cert_file", &raw.cert_file)?,
        key_pem: read("key_file", &raw.key_file)?,
        client_ca_pem: raw
            .client_ca_file
            .as_deref()
            .map(|f| read("client_ca_file", f))
            .transpose()?,
    };
    server_config(&settings).map_err(|(key, reason)| {
        let path = match key {
            "cert_file" => &raw.cert_file,
            "key_file" => &raw.key_file,
            _ => raw.client_ca_file.as_ref().unwrap_or(&raw.cert_file),
        };
        invalid(key, path, reason)
    })?;
    Ok(Some(settings))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls server configuration; errors name the `[tls]` key at fault.
pub fn server_config(
    settings: &TlsSettings,
) -> Result<rustls::ServerConfig, (&'static str, String)> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&settings.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| ("cert_file", format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(("cert_file", "no certificate found".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(&settings.key_pem)
        .map_err(|e| ("key_file", format!("not a PEM private key: {e}")))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ("cert_file", e.to_string()))?;
    let builder = match &settings.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| ("client_ca_file", format!("not PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| ("client_ca_file", e.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.into(),
                provider(),
            )
            .build()
            .map_err(|e| ("client_ca_file", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| ("key_file", format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// An acceptor for the HTTP listeners.
pub fn acceptor(settings: &TlsSettings) -> Result<TlsAcceptor, String> {
    let mut config =
        server_config(settings).map_err(|(key, reason)| format!("tls.{key}: {reason}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// tonic's TLS settings for the gRPC listener.
pub fn grpc_config(settings: &TlsSettings) -> tonic::transport::ServerTlsConfig {
    let identity = tonic::transport::Identity::from_pem(&settings.cert_pem, &settings.key_pem);
    let config = tonic::transport::ServerTlsConfig::new().identity(identity);
    match &settings.client_ca_pem {
        Some(ca) => config.client_ca_root(tonic::transport::Certificate::from_pem(ca)),
        None => config,
    }
}

/// Serves `router` on `listener` over TLS until `shutdown` completes. Connections that
/// fail their handshake (plaintext, unknown client certificate) are dropped and logged at
/// debug level.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    acceptor: TlsAcceptor,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;

    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(error = %error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(peer = %peer, error = %error, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "tls handshake timed out");
                    return;
                }
            };
            let service = TowerToHyperService::new(router);
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(peer = %peer, error = %error, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_name_the_key() -> Result<(), std::io::Error> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("cert.pem"), "not a certificate")?;
        std::fs::write(dir.path().join("key.pem"), "not a key")?;
        let raw = |cert: &str| RawTls {
            cert_file: PathBuf::from(cert),
            key_file: PathBuf::from("key.pem"),
            client_ca_file: None,
        };
        let err = |raw: RawTls| {
            load(Some(&raw), Some(dir.path()))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(raw("missing.pem")).contains("tls.cert_file"));
        assert!(err(raw("cert.pem")).contains("tls.cert_file"));
        assert_eq!(load(None, None).ok(), Some(None));
        Ok(())
    }
}
