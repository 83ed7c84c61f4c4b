//! TLS and mTLS on both listeners, and certificates replaced while the
//! server runs (SIGHUP, or the files changing), with certificates made in
//! the test. TLS is the transport's, not the store's: these run on SQLite.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kith::config::TlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::harness::{Backend, TestApp, TestDb};
use crate::kith_process::Kith;
use crate::operations::Scrape;

/// A certificate authority made for one test.
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
pub struct Issued {
    pub cert: String,
    pub key: String,
}

impl Authority {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for this machine, by name and by address.
    pub fn server(&self) -> Issued {
        self.issue(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    pub fn client(&self, name: &str) -> Issued {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Issued {
        let names: Vec<String> = names.iter().map(ToString::to_string).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// The server's TLS files in a folder of the test's.
pub struct ServerFiles {
    dir: TempDir,
}

impl ServerFiles {
    pub fn new(issued: &Issued, client_ca: Option<&Authority>) -> Self {
        let files = Self {
            dir: TempDir::new().unwrap(),
        };
        files.replace(issued);
        if let Some(ca) = client_ca {
            std::fs::write(files.path("client-ca.pem"), ca.pem()).unwrap();
        }
        files
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn tls(&self) -> TlsFiles {
        let client_ca = self.path("client-ca.pem");
        TlsFiles {
            cert: self.path("cert.pem"),
            key: self.path("key.pem"),
            client_ca: client_ca.exists().then_some(client_ca),
        }
    }

    /// Replaces the certificate and key as cert-manager does: each file
    /// written aside, then renamed over the old one.
    pub fn replace(&self, issued: &Issued) {
        for (name, text) in [("key.pem", &issued.key), ("cert.pem", &issued.cert)] {
            let aside = self.path(&format!(".{name}.new"));
            std::fs::write(&aside, text).unwrap();
            std::fs::rename(&aside, self.path(name)).unwrap();
        }
    }

    fn corrupt_certificate(&self) {
        std::fs::write(
            self.path("cert.pem"),
            "-----BEGIN CERTIFICATE-----\nnot base64\n",
        )
        .unwrap();
    }
}

async fn start(files: &ServerFiles, watch_interval: Duration) -> TestApp {
    TestApp::builder(Backend::Sqlite)
        .tls(files.tls(), watch_interval)
        .start()
        .await
        .expect("SQLite is always here")
}

/// A new TLS connection to the gRPC listener at `grpc` that trusts `ca` only,
/// presenting `identity` if given.
async fn connect(
    grpc: &str,
    ca: &Authority,
    identity: Option<&Issued>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    if let Some(issued) = identity {
        tls = tls.identity(Identity::from_pem(&issued.cert, &issued.key));
    }
    Endpoint::from_shared(format!("https://{grpc}"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// Whether a health check over `channel` answers SERVING.
async fn serving(channel: &Channel) -> Result<(), tonic::Status> {
    let reply = HealthClient::new(channel.clone())
        .check(HealthCheckRequest::default())
        .await?;
    assert_eq!(reply.into_inner().status(), ServingStatus::Serving);
    Ok(())
}

/// Whether a connection was refused: at the handshake, or (TLS 1.3 sends
/// the server's verdict on a client certificate after it) at the first call.
async fn refused(connected: Result<Channel, tonic::transport::Error>) -> bool {
    match connected {
        Err(_) => true,
        Ok(channel) => serving(&channel).await.is_err(),
    }
}

/// A health check on a new connection to `grpc` trusting `ca` only.
async fn answers_trusting(grpc: &str, ca: &Authority) -> bool {
    match connect(grpc, ca, None).await {
        Ok(channel) => serving(&channel).await.is_ok(),
        Err(_) => false,
    }
}

fn rest_client(ca: &Authority) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
}

fn https(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.rest.replacen("http://", "https://", 1))
}

/// Polls `check` for up to five seconds.
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

const NEVER: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_rest_answer_over_tls_only() {
    let ca = Authority::new("Kith test CA");
    let files = ServerFiles::new(&ca.server(), None);
    let app = start(&files, NEVER).await;

    let channel = connect(&app.grpc.to_string(), &ca, None)
        .await
        .expect("a TLS connection");
    serving(&channel).await.unwrap();
    let mut customers =
        kith::pb::kith::v1::customer_service_client::CustomerServiceClient::with_interceptor(
            channel,
            crate::harness::Bearer::new(Some(&app.key)),
        );
    customers
        .list_customers(kith::pb::kith::v1::ListCustomersRequest::default())
        .await
        .expect("an authenticated call over TLS");

    // ALPN offers both: h2 when the client can, HTTP/1.1 when it cannot.
    for (client, path, version) in [
        (rest_client(&ca), "/livez", reqwest::Version::HTTP_2),
        (
            rest_client(&ca).http1_only(),
            "/readyz",
            reqwest::Version::HTTP_11,
        ),
    ] {
        let client = client.build().unwrap();
        let response = client.get(https(&app, path)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), version);
    }

    let plaintext = Endpoint::from_shared(format!("http://{}", app.grpc))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert!(refused(plaintext).await, "a plaintext client gets nothing");
    let other_ca = Authority::new("Someone else");
    assert!(
        !answers_trusting(&app.grpc.to_string(), &other_ca).await,
        "the client checks the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_admits_only_clients_with_a_certificate_from_its_ca() {
    let server_ca = Authority::new("Kith server CA");
    let client_ca = Authority::new("Kith client CA");
    let files = ServerFiles::new(&server_ca.server(), Some(&client_ca));
    let app = start(&files, NEVER).await;

    let admitted = connect(
        &app.grpc.to_string(),
        &server_ca,
        Some(&client_ca.client("billing")),
    )
    .await
    .expect("a client with a certificate connects");
    serving(&admitted).await.unwrap();

    for (who, identity) in [
        ("no certificate", None),
        (
            "a certificate from another CA",
            Some(Authority::new("Rogue").client("billing")),
        ),
    ] {
        let connected = connect(&app.grpc.to_string(), &server_ca, identity.as_ref()).await;
        assert!(refused(connected).await, "a client with {who} is refused");
    }
    let response = rest_client(&server_ca)
        .build()
        .unwrap()
        .get(https(&app, "/livez"))
        .send()
        .await;
    assert!(response.is_err(), "REST requires the certificate too");
}

/// SIGHUP with a new certificate: new connections get it, a connection
/// opened before keeps working; a corrupt file on the next SIGHUP keeps
/// the certificate in use, and is counted. Kith runs as its own process:
/// a signal goes to a whole process, and this one holds every other test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_replaces_the_certificate_without_dropping_connections() {
    let first = Authority::new("First CA");
    let second = Authority::new("Second CA");
    let files = ServerFiles::new(&first.server(), None);
    let tls = files.tls();
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let kith = Kith::start_tls(
        &db.url,
        &[
            "--tls-cert",
            tls.cert.to_str().unwrap(),
            "--tls-key",
            tls.key.to_str().unwrap(),
            "--metrics-addr",
            "127.0.0.1:0",
        ],
        &first.pem(),
    )
    .await
    .unwrap();
    let before = kith.channel.clone();
    serving(&before).await.unwrap();

    files.replace(&second.server());
    kith.hang_up();
    assert!(
        eventually(async || answers_trusting(&kith.grpc, &second).await).await,
        "new connections get the new certificate"
    );
    assert!(
        !answers_trusting(&kith.grpc, &first).await,
        "and not the old one"
    );
    serving(&before)
        .await
        .expect("the connection opened before the reload still works");

    let metrics = kith.metrics.clone().expect("--metrics-addr");
    let reloads = async |outcome: &str| {
        Scrape::of(&metrics)
            .await
            .counter("kith_tls_reloads", &[("outcome", outcome)])
    };
    assert_eq!(reloads("ok").await, 1.0);
    files.corrupt_certificate();
    kith.hang_up();
    assert!(
        eventually(async || reloads("failed").await == 1.0).await,
        "the failed reload happened"
    );
    assert!(
        answers_trusting(&kith.grpc, &second).await,
        "a reload that fails keeps the certificate in use"
    );
    let logs = kith.stop().await.unwrap();
    assert!(
        logs.iter().any(
            |line| line.contains("keeping the certificate in use") && line.contains("cert.pem")
        ),
        "the failure is logged with its file"
    );
}

/// Without a signal, a replaced file is noticed by its modification time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_files_are_picked_up_without_a_signal() {
    let first = Authority::new("First CA");
    let second = Authority::new("Second CA");
    let files = ServerFiles::new(&first.server(), None);
    let app = start(&files, Duration::from_millis(100)).await;
    assert!(answers_trusting(&app.grpc.to_string(), &first).await);
    // Modification times can be as coarse as the file system's tick.
    tokio::time::sleep(Duration::from_millis(20)).await;
    files.replace(&second.server());
    assert!(
        eventually(async || answers_trusting(&app.grpc.to_string(), &second).await).await,
        "the new files were loaded"
    );
}

/// Bad files stop the start, naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_unreadable_tls_files_does_not_start() {
    let ca = Authority::new("Kith test CA");
    let files = ServerFiles::new(&ca.server(), None);
    files.corrupt_certificate();
    let mut config = crate::harness::serve_config("sqlite::memory:".to_owned());
    config.tls = Some(files.tls());
    let error = kith::server::Application::build(&config)
        .await
        .err()
        .expect("the start fails");
    let message = format!("{error:#}");
    assert!(message.contains("cert.pem"), "{message}");
}

/// Writes `ca` into `dir`, for a client that reads its CA from a file.
pub fn ca_file(dir: &Path, ca: &Authority) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    path
}
