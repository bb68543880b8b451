//! Building and running the server: state, router, listener, background tasks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::credentials::Credentials;
use crate::meta::Db;
use crate::storage::BlobStore;

/// Shared state of every request. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub blobs: BlobStore,
    pub credentials: Arc<Credentials>,
}

/// Errors that stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("metadata database: {0}")]
    Db(#[from] crate::meta::Error),
    #[error("blob store: {0}")]
    Storage(#[from] crate::storage::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A built server: bound, migrated, cleaned, ready to run.
pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Prepares the data directory, opens the database, removes what a crash left
    /// behind, and binds the listener.
    pub async fn build(settings: Settings) -> Result<App, StartError> {
        settings.validate()?;
        let data_dir = settings.storage.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let credentials = match (
            &settings.auth.root_access_key,
            &settings.auth.root_secret_key,
        ) {
            (Some(a), Some(s)) => Credentials::new(a.clone(), s.clone()),
            _ => {
                let (c, generated) =
                    Credentials::load_or_generate(&data_dir).map_err(|source| {
                        StartError::DataDir {
                            path: data_dir.clone(),
                            source,
                        }
                    })?;
                if generated {
                    // Printed once, on the terminal only (never in logs).
                    println!(
                        "tarn: generated root credentials (stored in {}):\n  access key: {}\n  secret key: {}",
                        data_dir.join("root-credentials.json").display(),
                        c.access_key_id,
                        c.secret()
                    );
                }
                c
            }
        };
        let db = Db::open(&data_dir.join("tarn.db"))?;
        if settings.zones.create_zone_buckets {
            db.bootstrap_zones(settings.s3.region.clone()).await?;
        }
        let blobs = BlobStore::open(&data_dir, settings.storage.fsync)?;
        let (db2, blobs2) = (db.clone(), blobs.clone());
        let (tmp, orphans) = tokio::task::spawn_blocking(move || {
            let referenced = db2.referenced_blobs_blocking()?;
            Ok::<_, StartError>(blobs2.remove_orphans(&referenced)?)
        })
        .await
        .map_err(|e| StartError::DataDir {
            path: data_dir.clone(),
            source: std::io::Error::other(e),
        })??;
        if tmp + orphans > 0 {
            tracing::info!(tmp, orphans, "removed leftovers of interrupted writes");
        }
        let addr = settings.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok(App {
            listener,
            state: AppState {
                settings: Arc::new(settings),
                db,
                blobs,
                credentials: Arc::new(credentials),
            },
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then drains in-flight requests.
    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let gc = tokio::spawn(upload_gc(state.clone()));
        let router = router(state);
        use axum::serve::ListenerExt;
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        gc.abort();
        result
    }
}

/// The HTTP routes: health, the (reserved) REST API, and S3 for everything else.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .nest("/api/v1", crate::api::router(state.clone()))
        .fallback(crate::s3::handle)
        .with_state(state)
}

async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (http::StatusCode, &'static str) {
    match state.db.list_buckets().await {
        Ok(_) => (http::StatusCode::OK, "ready"),
        Err(_) => (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable",
        ),
    }
}

/// Aborts multipart uploads older than the configured age, periodically.
async fn upload_gc(state: AppState) {
    let s3 = &state.settings.s3;
    let mut tick = tokio::time::interval(Duration::from_secs(s3.upload_gc_interval_secs.max(1)));
    loop {
        tick.tick().await;
        let cutoff = crate::meta::now_millis() - (s3.abandoned_upload_age_secs as i64) * 1000;
        match state.db.expire_uploads(cutoff).await {
            Ok((0, _)) => {}
            Ok((n, blobs)) => {
                tracing::info!(uploads = n, "aborted abandoned multipart uploads");
                state.blobs.delete_later(blobs);
            }
            Err(e) => tracing::warn!(error = %e, "abandoned upload cleanup failed"),
        }
    }
}
