//! Helpers for security tests: a CA with server and client certificates made at test
//! time, a collector started with `[[auth.tokens]]` and `[tls]`, a stdin agent with extra
//! flags, and release counts read over TLS through `bellwether.v1.ReleaseService`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use bellwether_proto::v1::release_service_client::ReleaseServiceClient;
use bellwether_proto::v1::ListReleasesRequest;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use bellwether_testkit::otlp::logs_request;
use bellwether_testkit::process::Supervised;

use crate::detection::start_collector_with_config;
use crate::{clean_command, AgentProcess, Collector, Identity};

/// PEM files of a test CA, a server certificate for localhost / 127.0.0.1 and a client
/// certificate, written into a directory.
pub struct Pki {
    pub ca_pem: String,
    pub ca_file: PathBuf,
    pub server_cert_file: PathBuf,
    pub server_key_file: PathBuf,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
}

impl Pki {
    pub fn generate(dir: &Path) -> Result<Self> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, name: &str| -> Result<(PathBuf, PathBuf)> {
            let key = KeyPair::generate()?;
            let cert = CertificateParams::new(names)?.signed_by(&key, &issuer)?;
            let (cert_file, key_file) = (
                dir.join(format!("{name}.pem")),
                dir.join(format!("{name}-key.pem")),
            );
            std::fs::write(&cert_file, cert.pem())?;
            std::fs::write(&key_file, key.serialize_pem())?;
            Ok((cert_file, key_file))
        };
        let (server_cert_file, server_key_file) =
            leaf(vec!["localhost".into(), "127.0.0.1".into()], "server")?;
        let (client_cert_file, client_key_file) = leaf(vec!["agent".into()], "client")?;
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem())?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            ca_file,
            server_cert_file,
            server_key_file,
            client_cert_file,
            client_key_file,
        })
    }
}

/// Starts a collector whose listeners use TLS with client certificates required (mTLS),
/// with an `ingest` token and a `read` token, both read from files in `secrets`.
pub fn start_secure_collector(
    data_dir: &Path,
    secrets: &Path,
    pki: &Pki,
    ingest_token: &str,
    read_token: &str,
) -> Result<Collector> {
    let (ingest_file, read_file) = (secrets.join("ingest.token"), secrets.join("read.token"));
    std::fs::write(&ingest_file, ingest_token)?;
    std::fs::write(&read_file, read_token)?;
    let config = format!(
        r#"
[[auth.tokens]]
name = "agents"
scopes = ["ingest"]
token_file = {ingest_file:?}

[[auth.tokens]]
name = "reader"
scopes = ["read"]
token_file = {read_file:?}

[tls]
cert_file = {cert:?}
key_file = {key:?}
client_ca_file = {ca:?}
"#,
        cert = pki.server_cert_file,
        key = pki.server_key_file,
        ca = pki.ca_file,
    );
    start_collector_with_config(data_dir, &config)
}

/// Starts `bellwether-agent --stdin` (receivers off, admin on a free port) exporting to
/// `collector_url`, plus `extra` flags.
pub fn start_stdin_agent(
    identity: &Identity,
    collector_url: &str,
    data_dir: &Path,
    extra: &[&str],
) -> Result<AgentProcess> {
    let mut cmd = clean_command("bellwether-agent")?;
    cmd.env("BELLWETHER_SERVICE", identity.service)
        .env("BELLWETHER_VERSION", identity.version)
        .env("BELLWETHER_ENVIRONMENT", identity.environment)
        .env("BELLWETHER_INSTANCE_ID", "e2e-secure-1")
        .arg("--stdin")
        .args(["--collector", collector_url])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--admin-addr", "127.0.0.1:0"])
        .args(["--otlp-grpc-addr", "off"])
        .args(["--otlp-http-addr", "off"])
        .args(["--batch-timeout", "100ms"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut process = Supervised::spawn(cmd)?;
    let listeners = process.wait_for_listeners(&["admin"])?;
    Ok(AgentProcess { process, listeners })
}

/// Log records counted for `service` (0 if it has no release yet), read over mTLS from
/// the collector's gRPC listener with `token`.
pub async fn tls_log_records(
    collector: &Collector,
    pki: &Pki,
    token: &str,
    service: &str,
) -> Result<u64> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .identity(tonic::transport::Identity::from_pem(
            std::fs::read(&pki.client_cert_file)?,
            std::fs::read(&pki.client_key_file)?,
        ));
    let channel = Endpoint::from_shared(format!("https://{}", collector.otlp_grpc))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .context("connecting to the collector over TLS")?;
    let mut request = tonic::Request::new(ListReleasesRequest {
        service: service.to_owned(),
        environment: String::new(),
    });
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}"))?,
    );
    let releases = ReleaseServiceClient::new(channel)
        .list_releases(request)
        .await?
        .into_inner()
        .releases;
    Ok(releases
        .iter()
        .filter_map(|r| r.totals.as_ref())
        .map(|t| t.log_records)
        .sum())
}

/// Sends one OTLP/gRPC logs request of `records` records under `resource` with the
/// `bellwether-batch-id` metadata `batch_id`.
pub async fn export_batch(
    client: &mut bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient<
        tonic::transport::Channel,
    >,
    resource: &bellwether_proto::otlp::resource::Resource,
    records: Vec<bellwether_proto::otlp::logs::LogRecord>,
    batch_id: &str,
) -> Result<()> {
    let mut request = tonic::Request::new(logs_request(resource.clone(), records));
    request.metadata_mut().insert(
        bellwether_proto::BATCH_ID_HEADER,
        MetadataValue::try_from(batch_id)?,
    );
    client.export(request).await?;
    Ok(())
}
