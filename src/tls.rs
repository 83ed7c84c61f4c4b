//! TLS on both listeners, with rustls on ring, and certificates that can be
//! replaced without a restart.
//!
//! tonic's own TLS settings are fixed at start, so Kith accepts TLS itself:
//! each connection is handshaken with the certificate loaded at that
//! moment, and a reload (SIGHUP, or the files changing) swaps what later
//! connections get. A connection keeps the session it began with, so a
//! reload drops none. A reload that fails to read or parse keeps the
//! certificate in use and says why.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

pub use crate::metrics::ReloadCounts;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const ACCEPTED_BACKLOG: usize = 64;

/// Where the server's certificate, its key and (for mTLS) the CA that
/// client certificates must chain to are read from, all PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }

    /// When each file last changed, to notice a replacement.
    fn modified(&self) -> Vec<Option<SystemTime>> {
        self.paths()
            .map(|path| fs::metadata(path).and_then(|meta| meta.modified()).ok())
            .collect()
    }

    /// A server configuration from the files as they are now. ALPN offers
    /// HTTP/2 and HTTP/1.1 on both listeners: gRPC over h2, gRPC-Web and
    /// REST over either.
    fn server_config(&self) -> anyhow::Result<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("choosing TLS versions")?;
        let builder = match &self.client_ca {
            Some(path) => builder.with_client_cert_verifier(client_verifier(path, provider)?),
            None => builder.with_no_client_auth(),
        };
        let certs = read_certificates(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("reading the private key {}", self.key.display()))?;
        let mut config = builder.with_single_cert(certs, key).with_context(|| {
            format!(
                "the key {} does not fit the certificate",
                self.key.display()
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the certificates in {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

/// Requires a client certificate that chains to the CA in `path`.
fn client_verifier(
    path: &Path,
    provider: Arc<CryptoProvider>,
) -> anyhow::Result<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certificates(path)? {
        roots.add(cert).with_context(|| {
            format!("a client CA in {} is not a CA certificate", path.display())
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .with_context(|| format!("using {} as the client CA", path.display()))
}

/// The certificate every new connection is offered, and how to replace it.
#[derive(Clone)]
pub struct Certificates {
    files: Arc<TlsFiles>,
    current: Arc<RwLock<Loaded>>,
    reloads: ReloadCounts,
}

/// A configuration and the files' modification times it was read at.
struct Loaded {
    config: Arc<ServerConfig>,
    modified: Vec<Option<SystemTime>>,
}

impl Certificates {
    /// Loads the files; an error here stops the server from starting.
    pub fn load(files: TlsFiles) -> anyhow::Result<Self> {
        // Read before the files, so that a change while reading them is
        // seen as one.
        let modified = files.modified();
        let config = Arc::new(files.server_config()?);
        Ok(Self {
            files: Arc::new(files),
            current: Arc::new(RwLock::new(Loaded { config, modified })),
            reloads: ReloadCounts::default(),
        })
    }

    /// The certificates, counting reloads into `reloads`.
    pub fn counting_reloads(self, reloads: ReloadCounts) -> Self {
        Self { reloads, ..self }
    }

    /// Reads the files again and offers them to new connections; on an
    /// error the certificate in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let modified = self.files.modified();
        let loaded = self.files.server_config();
        self.reloads.count(loaded.is_ok());
        match loaded {
            Ok(config) => {
                *self.current.write().expect("certificate lock") = Loaded {
                    config: Arc::new(config),
                    modified,
                };
                tracing::info!(cert = %self.files.cert.display(), "reloaded the TLS certificate");
                Ok(())
            }
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "the TLS files did not load; keeping the certificate in use"
                );
                Err(error)
            }
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        let loaded = self.current.read().expect("certificate lock");
        TlsAcceptor::from(Arc::clone(&loaded.config))
    }

    fn loaded_modified(&self) -> Vec<Option<SystemTime>> {
        self.current
            .read()
            .expect("certificate lock")
            .modified
            .clone()
    }

    /// Reloads on every SIGHUP, forever.
    #[cfg(unix)]
    pub async fn reload_on_hangup(self, mut hangups: tokio::signal::unix::Signal) {
        while hangups.recv().await.is_some() {
            let _ = self.reload();
        }
    }

    /// Reloads when a file's modification time changes, checked every
    /// `interval`, forever: cert-manager and Kubernetes replace the files
    /// without a signal.
    /// A reload that fails is tried again once the files change again
    /// (a half-written file, finished).
    pub async fn reload_on_change(self, interval: Duration) {
        let mut failed_at = None;
        loop {
            tokio::time::sleep(interval).await;
            let now = self.files.modified();
            if now == self.loaded_modified() || failed_at.as_ref() == Some(&now) {
                continue;
            }
            failed_at = self.reload().is_err().then_some(now);
        }
    }
}

/// A connection that finished its TLS handshake, and its peer.
pub type Accepted = (TlsStream<TcpStream>, SocketAddr);

/// Accepts TCP connections on `listener` until `stopping`, handshakes each
/// on a task of its own (a slow client delays nobody), and yields the
/// ones that succeed. A client refused at the handshake (no certificate
/// under mTLS, an untrusted CA, plain HTTP) is logged and dropped.
pub fn accept(
    listener: TcpListener,
    certificates: Certificates,
    mut stopping: watch::Receiver<bool>,
) -> mpsc::Receiver<Accepted> {
    let (accepted, connections) = mpsc::channel(ACCEPTED_BACKLOG);
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        tokio::pin!(stopped);
        loop {
            let (tcp, peer) = tokio::select! {
                connection = next_connection(&listener) => connection,
                () = &mut stopped => return,
                // The server stopped taking connections: serving ended.
                () = accepted.closed() => return,
            };
            let acceptor = certificates.acceptor();
            tokio::spawn(handshake(acceptor, tcp, peer, accepted.clone()));
        }
    });
    connections
}

/// The next TCP connection, with `TCP_NODELAY` (a small reply must not
/// wait for the peer's delayed ACK).
async fn next_connection(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::warn!(%error, "could not set TCP_NODELAY");
                }
                return (tcp, peer);
            }
            Err(error) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(%error, "accepting a TCP connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Handshakes one connection and hands it to the server.
async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    accepted: mpsc::Sender<Accepted>,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            let _ = accepted.send((tls, peer)).await;
        }
        Ok(Err(error)) => tracing::info!(%peer, %error, "TLS handshake refused"),
        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
    }
}

/// The REST listener's TLS connections, as axum takes them.
pub struct TlsListener {
    connections: mpsc::Receiver<Accepted>,
    local_addr: SocketAddr,
}

impl TlsListener {
    pub fn new(connections: mpsc::Receiver<Accepted>, local_addr: SocketAddr) -> Self {
        Self {
            connections,
            local_addr,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(accepted) => accepted,
            // The acceptor stopped: so has the server, which stops asking.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
