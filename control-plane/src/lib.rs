//! Switchboard's control plane: the system of record for calls, agents and campaigns,
//! and the gRPC services in front of it.
//!
//! Layout: `domain` holds the model and its rules; `store` persists it (embedded or
//! MongoDB); `grpc` converts the wire types and serves them; `events` is the feed behind
//! `WatchCallEvents` (cluster-wide on MongoDB); `metrics` names what `admin` serves at
//! `/metrics`; `liveness` keeps the leases of live calls and ends those nobody carries;
//! `tools` calls tool webhooks; `twilio_api` is the one caller of Twilio's REST API,
//! `redirect` builds what it redirects calls to and `outbound` the calls it places;
//! `http_client` builds the HTTPS clients of both; `config` reads the environment once.
//! [`serve`] ties them together on an already-bound listener, which is how tests run
//! it on `127.0.0.1:0`.

pub mod admin;
pub mod campaigns;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod http_client;
pub mod liveness;
pub mod metrics;
pub mod outbound;
pub mod redirect;
pub mod store;
pub mod tools;
pub mod twilio_api;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use switchboard_proto::v1::agent_settings_service_server::AgentSettingsServiceServer;
use switchboard_proto::v1::call_channel_service_server::CallChannelServiceServer;
use switchboard_proto::v1::call_session_service_server::CallSessionServiceServer;
use switchboard_proto::v1::campaign_service_server::CampaignServiceServer;
use switchboard_proto::v1::handoff_service_server::HandoffServiceServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::config::{Config, StoreConfig};
use crate::grpc::agents::AgentsApi;
use crate::grpc::auth::BearerAuth;
use crate::grpc::call_channel::CallChannelApi;
use crate::grpc::campaigns::CampaignsApi;
use crate::grpc::handoff::HandoffApi;
use crate::grpc::sessions::SessionsApi;
use crate::grpc::Services;
use crate::store::{EmbeddedStore, Store, StoreError};

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the control plane could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error(transparent)]
    HttpClient(#[from] http_client::HttpClientError),
    #[error(transparent)]
    Events(#[from] events::FeedError),
    #[error("metrics listener on {addr}: {source}")]
    MetricsListener {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Opens the store the config names (creating MongoDB indexes, and starting the move of
/// conversations still inside session documents, on the way).
pub async fn open_store(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    match config {
        StoreConfig::Embedded(dir) => Ok(Arc::new(EmbeddedStore::open(dir)?)),
        StoreConfig::Mongo { uri, database } => Ok(Arc::new(
            store::MongoStore::connect(uri.expose(), database).await?,
        )),
    }
}

/// Serves every service on `listener` until `shutdown` resolves, then finishes the
/// requests in flight.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let store = open_store(&config.store).await?;
    serve_with_store(config, store, listener, shutdown).await
}

/// [`serve`] with a store already open (benchmarks and tests share one).
pub async fn serve_with_store(
    config: Config,
    store: Arc<dyn Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    for warning in config.startup_warnings() {
        tracing::warn!("{warning}");
    }
    let tool_client = http_client::build("tool webhook", config.tool_ca.as_ref())?;
    let twilio_client = http_client::build("twilio", config.twilio.ca.as_ref())?;
    let metrics = Arc::new(metrics::Metrics::new());
    let events =
        events::EventBus::open(&config.store, config.event_retention, metrics.clone()).await?;
    let (stop_metrics, metrics_stopped) = oneshot::channel::<()>();
    let metrics_server = match config.metrics_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::MetricsListener { addr, source })?;
            let bound = listener.local_addr().unwrap_or(addr);
            tracing::info!(addr = %bound, "serving metrics");
            Some(tokio::spawn(admin::serve(
                listener,
                metrics.clone(),
                async {
                    let _ = metrics_stopped.await;
                },
            )))
        }
        None => None,
    };
    let services = Services {
        store,
        events: events.clone(),
        default_agent_id: config.default_agent_id.clone(),
        tools: tools::ToolInvoker::with_client(config.tool_signing_secret.clone(), tool_client)
            .with_limits(config.tool_limits),
        twilio: twilio_api::HttpTwilioApi::from_config(&config.twilio, twilio_client.clone())
            .map(|api| Arc::new(api) as Arc<dyn twilio_api::TwilioApi>),
        webhooks: config.webhooks.clone(),
        liveness: liveness::Liveness::new(config.orphan_timeout),
    };
    let keeper = liveness::spawn(services.clone(), metrics.clone());
    // Stable across a restart of the same replica, unique among replicas; a fresh id
    // when the host has no name.
    let holder = match (&config.host_name, listener.local_addr()) {
        (Some(host), Ok(addr)) => format!("{host}@{addr}"),
        _ => domain::new_id(),
    };
    let dispatcher = campaigns::spawn(
        services.clone(),
        campaigns::DispatchConfig {
            holder,
            // Twilio's CPS limits are small whole numbers: exact as f64.
            account_cps: config.twilio.max_cps as f64,
            ceiling: config.campaign_load,
            // Once: a refused creation is retried by the dispatcher, at its pace.
            twilio: twilio_api::HttpTwilioApi::from_config(&config.twilio, twilio_client.clone())
                .map(|api| {
                    let once = twilio_api::RetryPolicy {
                        max_attempts: 1,
                        ..twilio_api::RetryPolicy::default()
                    };
                    Arc::new(api.with_retry(once)) as Arc<dyn twilio_api::TwilioApi>
                }),
        },
    );
    let mut server = Server::builder();
    match &config.tls {
        Some(tls) => {
            server = server.tls_config(server_tls(tls))?;
            let mode = if tls.is_mutual() { "mutual" } else { "server" };
            tracing::info!(tls = mode, cert = %tls.cert_path.display(), "grpc served over tls");
        }
        None => tracing::info!(tls = "off", "grpc served in plaintext"),
    }
    let auth = BearerAuth::new(config.api_token.as_ref().map(config::Secret::expose));

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AgentSettingsServiceServer<AgentsApi>>()
        .await;
    health_reporter
        .set_serving::<CallSessionServiceServer<SessionsApi>>()
        .await;
    health_reporter
        .set_serving::<CallChannelServiceServer<CallChannelApi>>()
        .await;
    health_reporter
        .set_serving::<HandoffServiceServer<HandoffApi>>()
        .await;
    health_reporter
        .set_serving::<CampaignServiceServer<CampaignsApi>>()
        .await;
    let campaign_limits = domain::CampaignLimits {
        // Twilio's CPS limits are small whole numbers: exact as f64.
        max_calls_per_second: config.twilio.max_cps as f64,
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(switchboard_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(switchboard_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let shutdown = async move {
        shutdown.await;
        // Health goes first so load balancers stop sending before we stop answering.
        health_reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    };
    let served = server
        // One span per RPC, named by its method; handlers add their own fields.
        .trace_fn(|request| tracing::info_span!("grpc", method = %request.uri().path()))
        // Sidecars keep one connection for many call streams: detect dead peers.
        .http2_keepalive_interval(Some(Duration::from_secs(20)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        // Health stays unauthenticated so probes need no token.
        .add_service(health_service)
        .add_service(guard(&auth, reflection))
        .add_service(guard(&auth, reflection_alpha))
        .add_service(guard(
            &auth,
            AgentSettingsServiceServer::new(AgentsApi::new(services.clone())),
        ))
        .add_service(guard(
            &auth,
            CallSessionServiceServer::new(SessionsApi::new(services.clone())),
        ))
        .add_service(guard(
            &auth,
            CallChannelServiceServer::new(CallChannelApi::new(services.clone())),
        ))
        .add_service(guard(
            &auth,
            CampaignServiceServer::new(CampaignsApi::new(services.clone(), campaign_limits)),
        ))
        .add_service(guard(
            &auth,
            HandoffServiceServer::new(HandoffApi::new(services)),
        ))
        // TCP_NODELAY on every accepted connection, as `Server::serve` would set it: else
        // Nagle's algorithm holds a response's last frames until the peer's delayed ACK,
        // ~40 ms on every request that waits for its answer.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await;
    // Awaited, so its hold on the store is gone when this returns (the embedded
    // store's file is released with the last handle), whichever way the server ended.
    keeper.abort();
    dispatcher.abort();
    let _ = keeper.await;
    let _ = dispatcher.await;
    served?;
    // What the last requests published reaches the feed before the process goes.
    events.flush().await;
    drop(stop_metrics);
    if let Some(server) = metrics_server {
        if let Ok(Err(e)) = server.await {
            tracing::warn!(error = %e, "metrics listener failed");
        }
    }
    Ok(())
}

/// tonic's TLS settings from the checked files. With a client CA, a client without a
/// certificate it issued fails the handshake: no RPC, health included, is reachable.
fn server_tls(tls: &config::TlsConfig) -> ServerTlsConfig {
    let identity = Identity::from_pem(&tls.cert_pem, tls.key_pem.expose());
    let server = ServerTlsConfig::new()
        .identity(identity)
        // Handshakes run concurrently, one task each: bound how long a silent client holds one.
        .timeout(TLS_HANDSHAKE_TIMEOUT);
    match &tls.client_ca {
        Some((_, ca_pem)) => server.client_ca_root(Certificate::from_pem(ca_pem)),
        None => server,
    }
}

/// Puts a service behind the bearer-token check.
fn guard<S>(auth: &BearerAuth, service: S) -> InterceptedService<S, BearerAuth> {
    InterceptedService::new(service, auth.clone())
}
