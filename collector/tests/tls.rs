//! TLS on the real server over loopback, with certificates made at test time: OTLP/gRPC and
//! HTTP work over TLS with a test CA, plaintext to a TLS port fails cleanly, and with a
//! client CA configured only clients with a certificate it signed get in.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bellwether_collector::config::Settings;
use bellwether_collector::server::{self, Listeners, ServerError};
use bellwether_collector::tls::TlsSettings;
use bellwether_proto::otlp::logs_service::logs_service_client::LogsServiceClient;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tokio::sync::oneshot;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

type Error = Box<dyn std::error::Error + Send + Sync>;
const DEADLINE: Duration = Duration::from_secs(10);

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate.
struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn make_pki() -> Result<Pki, Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| -> Result<(String, String), Error> {
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(names)?.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        server: leaf(vec!["localhost".into(), "127.0.0.1".into()])?,
        client: leaf(vec!["agent".into()])?,
    })
}

struct Secured {
    grpc: SocketAddr,
    http: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServerError>>,
}

async fn start(dir: &Path, pki: &Pki, client_auth: bool) -> Result<Secured, Error> {
    let mut settings = Settings::ephemeral(dir);
    settings.tls = Some(TlsSettings {
        cert_pem: pki.server.0.clone().into_bytes(),
        key_pem: pki.server.1.clone().into_bytes(),
        client_ca_pem: client_auth.then(|| pki.ca_pem.clone().into_bytes()),
    });
    let listeners = Listeners::bind(&settings).await?;
    let (grpc, http) = (
        listeners.otlp_grpc.local_addr()?,
        listeners.http.local_addr()?,
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::run(settings, listeners, async {
        let _ = stopped.await;
    }));
    Ok(Secured {
        grpc,
        http,
        stop,
        task,
    })
}

async fn grpc_channel(addr: SocketAddr, pki: &Pki, with_cert: bool) -> Result<Channel, Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    if with_cert {
        tls = tls.identity(Identity::from_pem(&pki.client.0, &pki.client.1));
    }
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect_timeout(DEADLINE);
    Ok(tokio::time::timeout(DEADLINE, endpoint.connect()).await??)
}

async fn export(channel: Channel) -> Result<(), tonic::Status> {
    let request = logs(resource("pay", "v1", "prod", &[]), 2, 0, now_ns());
    LogsServiceClient::new(channel)
        .export(request)
        .await
        .map(drop)
}

/// `GET path` over TLS; returns the status.
async fn https_get(addr: SocketAddr, pki: &Pki, path: &str, with_cert: bool) -> Result<u16, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = if with_cert {
        let chain =
            CertificateDer::pem_slice_iter(pki.client.0.as_bytes()).collect::<Result<_, _>>()?;
        builder.with_client_auth_cert(
            chain,
            PrivateKeyDer::from_pem_slice(pki.client.1.as_bytes())?,
        )?
    } else {
        builder.with_no_client_auth()
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let tls = connector
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        let request = http::Request::get(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok::<_, Error>(status)
    };
    tokio::time::timeout(DEADLINE, exchange).await?
}

#[tokio::test]
async fn grpc_and_http_over_tls() -> TestResult {
    let pki = make_pki()?;
    let dir = tempfile::tempdir()?;
    let s = start(dir.path(), &pki, false).await?;

    export(grpc_channel(s.grpc, &pki, false).await?).await?;
    assert_eq!(https_get(s.http, &pki, "/healthz", false).await?, 200);

    // Plaintext to a TLS port: a clean error, quickly, and the server keeps serving.
    let plain = tokio::time::timeout(DEADLINE, get(s.http, "/healthz")).await?;
    assert!(plain.is_err(), "plaintext HTTP got an answer");
    let plain_grpc = tokio::time::timeout(DEADLINE, async {
        let mut client = LogsServiceClient::connect(format!("http://{}", s.grpc)).await?;
        let request = logs(resource("pay", "v1", "prod", &[]), 1, 0, now_ns());
        client.export(request).await?;
        Ok::<_, Error>(())
    })
    .await?;
    assert!(plain_grpc.is_err(), "plaintext gRPC was accepted");

    // A client that does not trust the collector's CA refuses it.
    let stranger = make_pki()?;
    assert!(grpc_channel(s.grpc, &stranger, false).await.is_err());

    let stats = https_get(s.http, &pki, "/api/v1/releases?service=pay", false).await?;
    assert_eq!(stats, 200);

    let _ = s.stop.send(());
    s.task.await??;
    Ok(())
}

#[tokio::test]
async fn client_certificates_are_required_when_configured() -> TestResult {
    let pki = make_pki()?;
    let dir = tempfile::tempdir()?;
    let s = start(dir.path(), &pki, true).await?;

    let anonymous = match grpc_channel(s.grpc, &pki, false).await {
        Ok(channel) => export(channel).await.is_err(),
        Err(_) => true,
    };
    assert!(anonymous, "a client without a certificate got in");
    assert!(https_get(s.http, &pki, "/healthz", false).await.is_err());

    export(grpc_channel(s.grpc, &pki, true).await?).await?;
    assert_eq!(https_get(s.http, &pki, "/healthz", true).await?, 200);

    let _ = s.stop.send(());
    s.task.await??;
    Ok(())
}
