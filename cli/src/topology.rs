//! Which components run in this process, and how they are wired: one gRPC
//! server hosting the selected services (with health and reflection), the
//! gateway if selected, and gRPC channels to every service, local or remote.
//! Callers always go through the generated tonic clients, so one code path
//! serves the one-process and the process-per-service topologies.

use std::collections::BTreeSet;
use std::sync::Arc;

use anyhow::Context;
use codesync_auth::AuthGrpcService;
use codesync_auth::store::AuthStore;
use codesync_common::bus::{EventBus, InProcessBus};
use codesync_common::db::Database;
use codesync_common::events::{ANALYTICS_EVENTS, Event, Kind};
use codesync_common::grpc::{InProcessRoutes, ServiceChannels, grpc_service_name};
use codesync_common::identity::{PublicKey, ServiceCredential, ServiceKey, SigningKey, TokenService};
use codesync_common::kafka::KafkaBus;
use codesync_common::redis::Redis;
use codesync_documents::ownership::Ownership;
use codesync_documents::store::DocumentsStore;
use codesync_documents::{DocumentsGrpcService, Replicas};
use codesync_presence::PresenceGrpcService;
use codesync_presence::store::PresenceStore;
use codesync_proto::auth::v1::GetTokenKeysRequest;
use codesync_proto::auth::v1::auth_service_client::AuthServiceClient;
use codesync_rooms::store::RoomsStore;
use codesync_rooms::{RoomsGrpcService, RoomsPeers};
use tokio::sync::watch;
use tonic_health::ServingStatus;

use crate::config::Config;

/// One thing `codesync run --service` can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Component {
    Auth,
    Rooms,
    Documents,
    Presence,
    History,
    Execution,
    Assistant,
    Notifications,
    Analytics,
    Gateway,
}

impl Component {
    pub const ALL: [Component; 10] = [
        Self::Auth,
        Self::Rooms,
        Self::Documents,
        Self::Presence,
        Self::History,
        Self::Execution,
        Self::Assistant,
        Self::Notifications,
        Self::Analytics,
        Self::Gateway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Rooms => "rooms",
            Self::Documents => "documents",
            Self::Presence => "presence",
            Self::History => "history",
            Self::Execution => "execution",
            Self::Assistant => "assistant",
            Self::Notifications => "notifications",
            Self::Analytics => "analytics",
            Self::Gateway => "gateway",
        }
    }

    /// The named components, or all of them when none is named.
    pub fn selection(named: &[Component]) -> BTreeSet<Component> {
        if named.is_empty() {
            return Self::ALL.into_iter().collect();
        }
        named.iter().copied().collect()
    }
}

/// Applies every service's migrations.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let database = Database::connect(&config.database_url).await?;
    codesync_common::outbox::migrate(&database).await?;
    AuthStore::new(database.clone()).migrate().await?;
    RoomsStore::new(database.clone()).migrate().await?;
    DocumentsStore::new(database.clone()).migrate().await?;
    PresenceStore::new(database.clone()).migrate().await?;
    codesync_execution::store::ExecutionStore::new(database.clone()).migrate().await?;
    codesync_assistant::store::AssistantStore::new(database.clone()).migrate().await?;
    codesync_history::store::HistoryStore::new(database.clone()).migrate().await?;
    codesync_notifications::store::NotificationsStore::new(database.clone()).migrate().await?;
    codesync_analytics::store::AnalyticsStore::new(database).migrate().await?;
    tracing::info!(database = %codesync_common::redact_url_credentials(&config.database_url), "the database is up to date");
    Ok(())
}

/// Grants or revokes a user's administrator rights, in the database directly (as `migrate` does).
pub async fn set_admin(config: &Config, login: &str, is_admin: bool) -> anyhow::Result<()> {
    let database = Database::connect(&config.database_url).await?;
    let store = AuthStore::new(database);
    store.migrate().await?;
    let user = store
        .set_admin(login, is_admin)
        .await?
        .with_context(|| format!("no user is named '{login}' (give a username or an email)"))?;
    let now = if user.is_admin { "an administrator" } else { "not an administrator" };
    println!("{} ({}) is now {now}; it applies from their next sign-in or token refresh", user.username, user.email);
    Ok(())
}

/// Runs the selected components until SIGINT or SIGTERM.
pub async fn run(config: Config, components: BTreeSet<Component>) -> anyhow::Result<()> {
    let names: Vec<&str> = components.iter().map(|component| component.name()).collect();
    tracing::info!(components = ?names, version = env!("CARGO_PKG_VERSION"), "starting codesync");

    // Calls between services that share this process stay in it.
    let in_process_routes = InProcessRoutes::default();
    let channels = ServiceChannels::connect_lazily(
        |service| config.endpoints[service].clone(),
        &in_process_routes,
        &names,
        config.calls,
    )
    .context("invalid service endpoint")?;
    let service_key = ServiceKey::load_or_create(&config.service_key_file)?;
    let tokens = token_service(&config, &components, &service_key, &channels).await?;

    let needs_database = components.iter().any(|component| *component != Component::Gateway);
    let database = if needs_database {
        let database = Database::connect(&config.database_url).await?;
        if config.migrate_on_start {
            codesync_common::outbox::migrate(&database).await?;
        }
        Some(database)
    } else {
        None
    };

    let events: Arc<dyn EventBus> = match &config.kafka_brokers {
        Some(brokers) => KafkaBus::connect_with_queue(brokers, database.clone(), config.event_queue)
            .await
            .context("cannot start the Kafka event bus")?,
        None => Arc::new(InProcessBus::with_capacity(config.event_queue)),
    };
    tokio::spawn(end_sessions_when_told(events.subscribe(ANALYTICS_EVENTS), tokens.clone()));
    let all_services_here = Component::ALL.iter().all(|component| components.contains(component));
    let services_here = components.iter().any(|component| *component != Component::Gateway);
    if config.kafka_brokers.is_none() && services_here && !all_services_here {
        tracing::warn!(
            "this process runs only some services and its events stay in it: notifications, history and analytics \
             in other processes will not see them; set CODESYNC_KAFKA_BROKERS"
        );
    }
    let redis = match &config.redis_url {
        Some(url) => Some(Redis::connect(url, &config.redis_key_prefix).await.context("cannot set up Redis")?),
        None => None,
    };
    let dependencies = Dependencies {
        config: &config,
        database,
        tokens: tokens.clone(),
        channels: channels.clone(),
        service_key: service_key.clone(),
        events,
        redis: redis.clone(),
    };

    let (shutdown_sender, shutdown_receiver) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();

    let grpc_services: Vec<Component> =
        components.iter().copied().filter(|component| *component != Component::Gateway).collect();
    let mut hosted = Hosted::default();
    // One budget for the bytes of requests in flight in this process, REST and gRPC alike.
    let inflight = codesync_common::budget::InflightBudget::new("inflight", config.inflight);
    // One budget for what waits for slow readers: the gateway's sockets and documents' connections.
    let outbound = codesync_common::budget::InflightBudget::new("outbound", config.outbound);
    // One budget for the connections of every listener of this process (descriptors are the
    // process's): at its ceiling, connections doing least are shed to make room.
    let connections = codesync_common::connections::ConnectionBudget::new(
        config.max_connections,
        config.gateway.max_connections_per_address,
    );
    // One bucket per client address for REST and gRPC alike (shared by every process with Redis).
    let client_addresses = Arc::new(codesync_common::rate_limit::RateLimiter::shared(
        codesync_common::rate_limit::CLIENT_ADDRESS_LIMIT,
        config.gateway.rate_limit_per_minute,
        std::time::Duration::from_secs(60),
        redis.clone(),
    ));
    let mut message_limits = codesync_common::grpc::admission::MessageLimits::default();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    if !grpc_services.is_empty() {
        let mut routes = tonic::service::RoutesBuilder::default();
        for component in &grpc_services {
            add_service(&mut routes, *component, &dependencies, &mut hosted, &mut message_limits, &outbound).await?;
            let service_name = grpc_service_name(component.name());
            health_reporter.set_service_status(&service_name, ServingStatus::Serving).await;
        }
        // Reflection lists only what this process serves; v1alpha is for older grpcurl.
        let hosted_names: Vec<String> =
            grpc_services.iter().map(|component| grpc_service_name(component.name())).collect();
        let reflection = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(codesync_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .with_service_name("grpc.health.v1.Health")
                .with_service_name("grpc.reflection.v1.ServerReflection")
                .with_service_name("grpc.reflection.v1alpha.ServerReflection");
            for name in &hosted_names {
                builder = builder.with_service_name(name.clone());
            }
            builder
        };
        routes.add_service(health_service);
        routes.add_service(reflection().build_v1().context("cannot build the gRPC reflection service (v1)")?);
        routes.add_service(reflection().build_v1alpha().context("cannot build the gRPC reflection service (v1alpha)")?);

        let routes = routes.routes();
        in_process_routes.install(routes.clone());
        let listener = tokio::net::TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("cannot listen for gRPC on {} (set CODESYNC_GRPC_ADDR)", config.grpc_addr))?;
        let grpc_addr = listener.local_addr()?;
        let shutdown = wait_for(shutdown_receiver.clone());
        let admission = codesync_common::grpc::admission::AdmissionLayer::new(
            tokens.clone(),
            client_addresses.clone(),
            inflight.clone(),
            message_limits,
            config.admission,
        )
        .with_connections(connections.clone());
        let grpc_connections = connections.clone();
        tasks.spawn(async move {
            tonic::transport::Server::builder()
                // Every open WebSocket is one stream from the gateway: allow many.
                .max_concurrent_streams(Some(100_000))
                .tcp_nodelay(true)
                .trace_fn(codesync_common::telemetry::grpc_request_span)
                .layer(admission)
                .add_routes(routes)
                .serve_with_incoming_shutdown(
                    codesync_common::connections::incoming(listener, grpc_connections),
                    shutdown,
                )
                .await
                .context("the gRPC server failed")
        });
        tracing::info!(address = %grpc_addr, services = ?grpc_services.iter().map(|c| c.name()).collect::<Vec<_>>(), "gRPC is listening");
    }

    let mut served_gateway_metrics = None;
    if components.contains(&Component::Gateway) {
        let gateway_channels = channels.presenting(Arc::new(ServiceCredential::new("gateway", &service_key)));
        let gateway_metrics = Arc::new(codesync_gateway::GatewayMetrics::default());
        let app = codesync_gateway::router(
            gateway_channels,
            tokens.clone(),
            &config.gateway,
            shutdown_receiver.clone(),
            codesync_gateway::ProcessLimits {
                client_addresses,
                inflight,
                anonymous_request_bytes: config.admission.anonymous_message_bytes,
                outbound,
                expensive: config.expensive,
            },
            gateway_metrics.clone(),
        );
        served_gateway_metrics = Some(gateway_metrics.clone());
        let listener = tokio::net::TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen for HTTP on {} (set CODESYNC_HTTP_ADDR)", config.http_addr))?;
        let http_addr = listener.local_addr()?;
        let shutdown = wait_for(shutdown_receiver.clone());
        let limits = config.gateway.server_limits();
        let connections = connections.clone();
        tasks.spawn(async move {
            codesync_gateway::serve(listener, app, shutdown, limits, connections)
                .await
                .context("the HTTP gateway failed")
        });
        match &config.gateway.web_source {
            codesync_gateway::WebSource::Directory(directory) => {
                tracing::info!(directory = %directory.display(), "serving the web app from a directory");
            }
            codesync_gateway::WebSource::Embedded if !codesync_gateway::embedded_web_app_present() => {
                tracing::warn!(
                    "this binary has no web app built in (run `make web` and rebuild, or set CODESYNC_WEB_DIR); the API works"
                );
            }
            codesync_gateway::WebSource::Embedded => {}
        }
        tracing::info!(address = %http_addr, "codesync is ready: open http://{http_addr}");
    }

    // Any process, services only too, serves its figures on a metrics address of its own.
    if let Some(metrics_addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("cannot listen for metrics on {metrics_addr} (CODESYNC_METRICS_ADDR)"))?;
        let metrics_app = codesync_gateway::metrics_router(served_gateway_metrics);
        let shutdown = wait_for(shutdown_receiver.clone());
        tasks.spawn(async move {
            let limits = codesync_gateway::ServerLimits::default();
            // Prometheus scrapes it from a private network: a few connections of its own.
            let connections = codesync_common::connections::ConnectionBudget::new(64, 64);
            codesync_gateway::serve(listener, metrics_app, shutdown, limits, connections)
                .await
                .context("the metrics server failed")
        });
        tracing::info!(address = %metrics_addr, "metrics are served on their own address");
    }

    tokio::select! {
        () = shutdown_signal() => {
            let grace = config.shutdown_grace;
            tracing::info!(grace_secs = grace.as_secs(), "shutting down: handing work over");
            let started = std::time::Instant::now();
            // Load balancers and the gateways' readiness checks stop sending work here.
            for component in &grpc_services {
                health_reporter.set_service_status(grpc_service_name(component.name()), ServingStatus::NotServing).await;
            }
            health_reporter.set_service_status("", ServingStatus::NotServing).await;
            if let Some(presence) = &hosted.presence {
                presence.drain();
            }
            if let Some(documents) = &hosted.documents {
                documents.drain(grace).await;
            }
            let _ = shutdown_sender.send(true);
            let remaining = grace.saturating_sub(started.elapsed());
            let drained = tokio::time::timeout(remaining, async {
                while let Some(result) = tasks.join_next().await {
                    result.context("a server task panicked")??;
                }
                anyhow::Ok(())
            })
            .await;
            match drained {
                Ok(result) => result?,
                Err(_) => tracing::warn!(grace_secs = grace.as_secs(), "open requests did not finish within the grace period; stopping anyway"),
            }
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "stopped");
            Ok(())
        }
        Some(result) = tasks.join_next() => {
            // A server stopped on its own: that is an error even if it says Ok.
            let _ = shutdown_sender.send(true);
            result.context("a server task panicked")??;
            anyhow::bail!("a server stopped unexpectedly")
        }
    }
}

/// What the services of one process are built from.
struct Dependencies<'a> {
    config: &'a Config,
    database: Option<Database>,
    tokens: TokenService,
    channels: ServiceChannels,
    /// One bus per process: the embedded default delivers within it.
    events: Arc<dyn EventBus>,
    redis: Option<Redis>,
    /// What each component presents to the others (its channels carry its credential).
    service_key: ServiceKey,
}

/// Access tokens: a process that runs auth signs them with the private key (and writes the public
/// key beside it for the others); every other process verifies them with the public key, read
/// from its file or, where the files are not shared, asked of the auth service.
async fn token_service(
    config: &Config,
    components: &BTreeSet<Component>,
    service_key: &ServiceKey,
    channels: &ServiceChannels,
) -> anyhow::Result<TokenService> {
    if components.contains(&Component::Auth) {
        let signing_key = SigningKey::load_or_create(&config.jwt_signing_key_file)?;
        signing_key.public_key().save_if_missing(&config.jwt_public_key_file)?;
        return Ok(TokenService::signer(&signing_key, service_key, config.access_token_ttl));
    }
    if let Some(public_key) = PublicKey::load(&config.jwt_public_key_file)? {
        return Ok(TokenService::verifier(&public_key, service_key, config.access_token_ttl));
    }
    // Presented as this process's, so that asking (again, while auth starts) costs no client's
    // allowance on the auth replica's port.
    let name = components.iter().next().map_or("gateway", |component| component.name());
    let credential = Arc::new(ServiceCredential::new(name, service_key));
    let mut auth = AuthServiceClient::new(codesync_common::grpc::with_credential(channels.auth.clone(), credential));
    let started = std::time::Instant::now();
    loop {
        match auth.get_token_keys(GetTokenKeysRequest {}).await {
            Ok(keys) => {
                let first = keys.into_inner().ed25519_public_keys.into_iter().next().unwrap_or_default();
                let public_key = PublicKey::decode(&first).context("the auth service answered no valid public key")?;
                tracing::info!("verifying access tokens with the key the auth service gave");
                return Ok(TokenService::verifier(&public_key, service_key, config.access_token_ttl));
            }
            Err(status) if started.elapsed() < std::time::Duration::from_secs(60) => {
                tracing::info!(error = %status, "waiting for the auth service's public key");
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Err(status) => anyhow::bail!(
                "no public key to verify access tokens with: {} is missing and the auth service did not answer ({status})",
                config.jwt_public_key_file.display()
            ),
        }
    }
}

/// Sign-ins that end anywhere (a sign-out in the auth service) end in this process too: their
/// access tokens are refused, their streams closed.
async fn end_sessions_when_told(mut analytics: tokio::sync::broadcast::Receiver<Event>, tokens: TokenService) {
    loop {
        match analytics.recv().await {
            Ok(Event { kind: Kind::SessionEnded(ended), .. }) if !ended.session_id.is_empty() => {
                tokens.end_session(&ended.session_id)
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "sign-outs may have been missed: their tokens still work until they expire");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// What a graceful stop must hand over before the servers close.
#[derive(Default)]
struct Hosted {
    documents: Option<DocumentsGrpcService>,
    presence: Option<PresenceGrpcService>,
}

async fn add_service(
    routes: &mut tonic::service::RoutesBuilder,
    component: Component,
    dependencies: &Dependencies<'_>,
    hosted: &mut Hosted,
    message_limits: &mut codesync_common::grpc::admission::MessageLimits,
    outbound: &Arc<codesync_common::budget::InflightBudget>,
) -> anyhow::Result<()> {
    let Dependencies { config, database, tokens, channels, events, redis, service_key } = dependencies;
    let credential = Arc::new(ServiceCredential::new(component.name(), service_key));
    let channels = &channels.presenting(credential.clone());
    let database = || database.clone().context("this service needs the database");
    match component {
        Component::Auth => {
            let store = AuthStore::new(database()?);
            if config.migrate_on_start {
                store.migrate().await?;
            }
            routes.add_service(
                AuthGrpcService::new(store, tokens.clone(), config.auth.clone(), events.clone(), redis.clone())
                    .into_grpc_server(),
            );
        }
        Component::Rooms => {
            let store = RoomsStore::new(database()?);
            if config.migrate_on_start {
                store.migrate().await?;
            }
            *message_limits = std::mem::take(message_limits)
                .rpc(RoomsGrpcService::IMPORT_FILES_RPC, codesync_common::limits::ROOMS_MESSAGE_MAX_BYTES);
            routes.add_service(
                RoomsGrpcService::new(
                    store,
                    tokens.clone(),
                    RoomsPeers { auth: channels.auth.clone(), documents: channels.documents.clone() },
                    events.clone(),
                )
                .with_expensive_limits(config.expensive)
                .into_grpc_server(),
            );
        }
        Component::Documents => {
            let store = DocumentsStore::new(database()?);
            if config.migrate_on_start {
                store.migrate().await?;
            }
            let ownership =
                Ownership::start(store.database(), config.advertise_addr.clone(), config.documents.lease_ttl)
                    .await
                    .context("the documents service cannot start")?;
            let service = DocumentsGrpcService::new(
                store,
                tokens.clone(),
                channels.rooms.clone(),
                events.clone(),
                config.documents.clone(),
                Replicas { ownership, calls: config.calls, credential: credential.clone() },
            )
            .with_outbound_budget(outbound.clone());
            *message_limits =
                std::mem::take(message_limits).service(&grpc_service_name("documents"), service.grpc_message_limit());
            hosted.documents = Some(service.clone());
            routes.add_service(service.into_grpc_server());
        }
        Component::Presence => {
            let store = PresenceStore::new(database()?);
            if config.migrate_on_start {
                store.migrate().await?;
            }
            let service =
                PresenceGrpcService::new(store, tokens.clone(), channels.rooms.clone(), events.clone(), redis.clone());
            hosted.presence = Some(service.clone());
            routes.add_service(service.into_grpc_server());
        }
        Component::History => {
            let store = codesync_history::store::HistoryStore::new(database()?);
            if config.migrate_on_start {
                store.migrate().await?;
            }
            let peers = codesync_history::HistoryPeers {
                rooms: channels.rooms.clone(),
                documents: channels.documents.clone(),
                auth: channels.auth.clone(),
            };
            routes.add_service(
                codesync_history::HistoryGrpcService::new(
                    store,
                    tokens.clone(),
                    config.history.clone(),
                    events.clone(),
                    peers,
                )
                .into_grpc_server(),
            );
        }
        Component::Execution => {
            let store = codesync_execution::store::ExecutionStore::new(database()?);
            if config.migrate_on_start {
                store.migrate().await?;
            }
            let languages = codesync_execution::languages::LanguageTable::embedded();
            routes.add_service(
                codesync_execution::ExecutionGrpcService::new(
                    store,
                    tokens.clone(),
                    languages,
                    config.execution.clone(),
                    events.clone(),
                    channels,
                    redis.clone(),
                )
                .await
                .into_grpc_server(),
            );
        }
        Component::Assistant => {
            let store = codesync_assistant::store::AssistantStore::new(database()?);
            if config.migrate_on_start {
                store.migrate().await?;
            }
            routes.add_service(
                codesync_assistant::AssistantGrpcService::new(
                    store,
                    tokens.clone(),
                    config.assistant.clone(),
                    events.clone(),
                    codesync_assistant::AssistantPeers {
                        rooms: channels.rooms.clone(),
                        documents: channels.documents.clone(),
                    },
                    redis.clone(),
                )
                .into_grpc_server(),
            );
        }
        Component::Notifications => {
            let store = codesync_notifications::store::NotificationsStore::new(database()?);
            if config.migrate_on_start {
                store.migrate().await?;
            }
            routes.add_service(
                codesync_notifications::NotificationsGrpcService::new(
                    store,
                    tokens.clone(),
                    events.clone(),
                    channels.auth.clone(),
                )
                .into_grpc_server(),
            );
        }
        Component::Analytics => {
            let store = codesync_analytics::store::AnalyticsStore::new(database()?);
            if config.migrate_on_start {
                store.migrate().await?;
            }
            routes.add_service(
                codesync_analytics::AnalyticsGrpcService::new(store, tokens.clone(), events.clone(), channels.clone())
                    .into_grpc_server(),
            );
        }
        Component::Gateway => {}
    }
    Ok(())
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = terminate_signal();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

async fn terminate_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut signal) => {
            signal.recv().await;
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}
