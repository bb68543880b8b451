//! The HTTP(S) accept loop: TLS, per-connection limits and timeouts, graceful shutdown.
//!
//! axum's own `serve` has no TLS and no knobs for header size or read timeouts, so
//! connections are driven here with hyper directly, each request handed to the
//! [`Front`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::app::Front;

/// How connections are served.
#[derive(Clone)]
pub struct ServeOptions {
    /// TLS configuration; plain HTTP when `None`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Time allowed to receive a request's header section (also bounds idle keep-alive).
    pub header_read_timeout: Duration,
    /// Largest header section accepted (bytes). hyper buffers four times as much so that
    /// a moderately oversized header gets the S3 error from the S3 layer; beyond that
    /// hyper answers 431 itself.
    pub max_header_bytes: usize,
    /// How long in-flight requests may run after shutdown starts.
    pub shutdown_grace: Duration,
}

/// Errors loading TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.cert {path}: {message}")]
    Cert { path: String, message: String },
    #[error("tls.key {path}: {message}")]
    Key { path: String, message: String },
    #[error("tls: {0}")]
    Config(#[from] rustls::Error),
}

/// Builds a rustls server configuration from PEM certificate chain and key files.
pub fn load_tls(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.display().to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert.display().to_string(),
            message: "no certificate found".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts connections until `shutdown` completes, then stops accepting and gives
/// in-flight requests `shutdown_grace` to finish before closing what remains.
pub async fn serve(
    listener: TcpListener,
    front: Front,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) {
    let graceful = GracefulShutdown::new();
    let acceptor = opts.tls.clone().map(TlsAcceptor::from);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let front = front.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let front = front.clone();
            async move { Ok::<_, Infallible>(front.call(req.map(axum::body::Body::new), peer).await) }
        });
        let mut builder = http1::Builder::new();
        builder
            // Without this hyper reads from the socket while a request is in flight to
            // notice a client that hangs up. The request's header values and URI share
            // the read buffer, so that read cannot reuse it and allocates a new 8 KiB
            // one per request (callgrind: ~1,000 instructions and a large malloc/free
            // per GET). A client that goes away is still noticed when the answer is
            // written, and one that half-closes after its request now gets the answer.
            .half_close(true)
            .timer(TokioTimer::new())
            .header_read_timeout(opts.header_read_timeout)
            .max_buf_size(opts.max_header_bytes.saturating_mul(4).max(16 * 1024));
        match &acceptor {
            None => {
                let conn = builder.serve_connection(TokioIo::new(tcp), service);
                let watched = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = watched.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let timeout = opts.header_read_timeout;
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(opts.shutdown_grace) => {
            tracing::warn!(grace = ?opts.shutdown_grace, "shutdown deadline passed; closing remaining connections");
        }
    }
}
