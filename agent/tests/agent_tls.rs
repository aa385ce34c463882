//! Mutual TLS on the agent's TCP listener: certificates made by the test
//! (rcgen), the agent on 127.0.0.1:0, clients with a good certificate, none,
//! one of another CA, and plain HTTP/2.
#![allow(clippy::unwrap_used)]

mod agent_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agent_support::InProcess;
use bootwave_agent::config::TlsFiles;
use bootwave_agent::server::{self, AgentConfig, Listen, Listener, ServeOptions};
use bootwave_proto::v1;
use bootwave_proto::v1::bootwave_service_client::BootwaveServiceClient;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The channel could not be set up.
    NoChannel,
    /// The service answered with this code.
    Answered(tonic::Code),
    /// The client's transport broke the call (the status has a source):
    /// the request never reached the service.
    Broken(tonic::Code),
}

impl Outcome {
    /// Refused below gRPC: no channel, or a call the transport broke.
    fn refused(self) -> bool {
        !matches!(self, Self::Answered(_))
    }
}

/// A CA and what it signed, written as PEM files into a directory.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self { params, key, pem }
    }

    /// A leaf certificate and key (PEM) for `usage`, valid for 127.0.0.1.
    fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Every file the tests need.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    client: (String, String),
    stranger: (String, String),
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("bootwave test CA");
        let (cert, key) = ca.leaf("agent", ExtendedKeyUsagePurpose::ServerAuth);
        write(dir.path(), "ca.pem", &ca.pem);
        write(dir.path(), "agent.pem", &cert);
        write(dir.path(), "agent.key", &key);
        let client = ca.leaf("operator", ExtendedKeyUsagePurpose::ClientAuth);
        write(dir.path(), "client.pem", &client.0);
        write(dir.path(), "client.key", &client.1);
        let other = Ca::new("another CA");
        let stranger = other.leaf("stranger", ExtendedKeyUsagePurpose::ClientAuth);
        write(dir.path(), "stranger.pem", &stranger.0);
        write(dir.path(), "stranger.key", &stranger.1);
        Self {
            ca_pem: ca.pem,
            client,
            stranger,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.path("agent.pem"),
            key: self.path("agent.key"),
            client_ca: self.path("ca.pem"),
        }
    }

    /// Client TLS trusting the agent's CA, with `identity` if given.
    fn client_tls(&self, identity: Option<&(String, String)>) -> ClientTlsConfig {
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem));
        match identity {
            Some((cert, key)) => tls.identity(Identity::from_pem(cert, key)),
            None => tls,
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// The agent with mutual TLS on 127.0.0.1:0, and its address.
async fn start(pki: &Pki, state: &Path, token: Option<&str>) -> (InProcess, SocketAddr) {
    let listener = Listener::bind(&Listen::Tcp("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let config = AgentConfig {
        state_dir: state.to_owned(),
        dataplanes: Vec::new(),
        token: token.map(str::to_owned),
        resync_interval: Duration::from_millis(50),
    };
    let options = ServeOptions {
        tls: Some(pki.server_files()),
        ..ServeOptions::default()
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(server::serve_with(config, options, listener, async {
        let _ = rx.await;
    }));
    let agent = InProcess {
        endpoint: format!("https://{addr}"),
        stop: Some(tx),
        task,
    };
    (agent, addr)
}

/// One `Status` call over TLS.
async fn status_over_tls(endpoint: &str, tls: ClientTlsConfig, token: Option<&str>) -> Outcome {
    match bootwave_proto::channel::connect_tls(endpoint, Some(tls)).await {
        Ok(channel) => call_status(channel, token).await,
        Err(_) => Outcome::NoChannel,
    }
}

async fn call_status(channel: tonic::transport::Channel, token: Option<&str>) -> Outcome {
    let mut client = BootwaveServiceClient::new(channel);
    let mut request = tonic::Request::new(v1::StatusRequest {});
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    match client.status(request).await {
        Ok(_) => Outcome::Answered(tonic::Code::Ok),
        Err(status) if std::error::Error::source(&status).is_some() => {
            Outcome::Broken(status.code())
        }
        Err(status) => Outcome::Answered(status.code()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_of_the_ca_are_required() {
    let pki = Pki::new();
    let state = pki.path("state");
    let (agent, addr) = start(&pki, &state, None).await;
    let endpoint = agent.endpoint.clone();

    let good = status_over_tls(&endpoint, pki.client_tls(Some(&pki.client)), None).await;
    assert_eq!(
        good,
        Outcome::Answered(tonic::Code::Ok),
        "a certificate of the CA is enough"
    );

    // Refused in the handshake: with TLS 1.3 the client finishes its side
    // first and the server then closes the connection, so the refusal
    // shows as a failed connect or as the first call broken by the
    // transport (UNAVAILABLE, or UNKNOWN/CANCELLED "operation was
    // canceled"); never as an answer of the service.
    let anonymous = status_over_tls(&endpoint, pki.client_tls(None), None).await;
    assert!(anonymous.refused(), "no certificate: {anonymous:?}");
    let stranger = status_over_tls(&endpoint, pki.client_tls(Some(&pki.stranger)), None).await;
    assert!(stranger.refused(), "another CA: {stranger:?}");

    // Plain HTTP/2 to the TLS port never reaches the service (the client
    // reads the TLS alert as a broken HTTP/2 connection).
    let plain = match bootwave_proto::channel::connect(&format!("http://{addr}")).await {
        Ok(channel) => call_status(channel, None).await,
        Err(_) => Outcome::NoChannel,
    };
    assert!(plain.refused(), "plain HTTP/2: {plain:?}");

    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_either_a_certificate_or_the_token_authenticates() {
    let pki = Pki::new();
    let state = pki.path("state");
    let (agent, _addr) = start(&pki, &state, Some("s3cret")).await;
    let endpoint = agent.endpoint.clone();

    let by_cert = status_over_tls(&endpoint, pki.client_tls(Some(&pki.client)), None).await;
    assert_eq!(by_cert, Outcome::Answered(tonic::Code::Ok));
    let by_token = status_over_tls(&endpoint, pki.client_tls(None), Some("s3cret")).await;
    assert_eq!(by_token, Outcome::Answered(tonic::Code::Ok));
    let neither = status_over_tls(&endpoint, pki.client_tls(None), None).await;
    assert_eq!(neither, Outcome::Answered(tonic::Code::Unauthenticated));
    let wrong = status_over_tls(&endpoint, pki.client_tls(None), Some("guess")).await;
    assert_eq!(wrong, Outcome::Answered(tonic::Code::Unauthenticated));
    // A certificate of another CA is refused in the handshake even though
    // certificates are optional here.
    let stranger = status_over_tls(
        &endpoint,
        pki.client_tls(Some(&pki.stranger)),
        Some("s3cret"),
    )
    .await;
    assert!(stranger.refused(), "{stranger:?}");

    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_speaks_mutual_tls() {
    let pki = Pki::new();
    let state = pki.path("state");
    let (agent, _addr) = start(&pki, &state, None).await;
    let endpoint = agent.endpoint.clone();
    let (ca, cert, key) = (
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client.key"),
    );
    let run = move |with_identity: bool| {
        let mut cmd = Command::new(agent_support::cli_binary());
        cmd.args(["--json", "status"])
            .env("BOOTWAVE_AGENT", &endpoint)
            .env("BOOTWAVE_CA", &ca)
            .env_remove("BOOTWAVE_TOKEN");
        if with_identity {
            cmd.arg("--cert").arg(&cert).arg("--key").arg(&key);
        }
        cmd.output().unwrap()
    };
    let (ok, refused) = tokio::task::spawn_blocking(move || (run(true), run(false)))
        .await
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(status["generation"], 0);
    assert_eq!(
        refused.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    agent.stop().await;
}
