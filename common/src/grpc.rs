//! What travels with every gRPC call between CodeSync processes: the end
//! user's access token and address, and the trace context.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use tonic::metadata::MetadataValue;

use crate::identity::{AUTHORIZATION_METADATA_KEY, CLIENT_IP_METADATA_KEY};

/// The end user behind a call, carried from the gateway through every service.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The `Authorization` header value (`Bearer ...`), if the user sent one.
    pub authorization: Option<String>,
    pub client_ip: Option<IpAddr>,
}

impl CallContext {
    /// The context of an incoming gRPC request, to pass on to the next service.
    pub fn from_request<T>(request: &tonic::Request<T>) -> Self {
        let authorization = request
            .metadata()
            .get(AUTHORIZATION_METADATA_KEY)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        Self { authorization, client_ip: crate::identity::client_ip(request) }
    }

    /// A request carrying this context and the current trace context.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        if let Some(Ok(value)) = self.authorization.as_deref().map(MetadataValue::try_from) {
            metadata.insert(AUTHORIZATION_METADATA_KEY, value);
        }
        if let Some(Ok(value)) = self.client_ip.map(|client_ip| MetadataValue::try_from(client_ip.to_string())) {
            metadata.insert(CLIENT_IP_METADATA_KEY, value);
        }
        crate::telemetry::inject_trace_context(metadata);
        request
    }
}

/// The names of the nine services, as `--service` and the configuration spell them.
pub const SERVICE_NAMES: [&str; 9] =
    ["auth", "rooms", "documents", "presence", "history", "execution", "assistant", "notifications", "analytics"];

/// A connection to one service, whatever carries it: HTTP/2 to another process,
/// or a direct call into this process's own gRPC routes.
pub type GrpcChannel =
    tower::util::BoxCloneSyncService<http::Request<tonic::body::Body>, http::Response<tonic::body::Body>, ChannelError>;

/// Why a call did not reach its service. A concrete type rather than a boxed
/// error: the generated clients' bounds on a boxed one defeat the compiler's
/// reasoning about `Send` futures in `async_trait` methods.
#[derive(Debug)]
pub struct ChannelError(tower::BoxError);

impl std::fmt::Display for ChannelError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

impl std::error::Error for ChannelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// This process's gRPC routes, for calls from within the process. They are
/// filled in once every service is built, since services are built from the
/// channels that point here.
#[derive(Clone, Default)]
pub struct InProcessRoutes {
    routes: Arc<OnceLock<tonic::service::Routes>>,
}

impl InProcessRoutes {
    /// Hands over the routes; later calls are served by them.
    pub fn install(&self, routes: tonic::service::Routes) {
        let _ = self.routes.set(routes);
    }

    fn channel(&self) -> GrpcChannel {
        let routes = self.routes.clone();
        GrpcChannel::new(tower::service_fn(move |request: http::Request<tonic::body::Body>| {
            let routes = routes.get().cloned();
            let span = crate::telemetry::grpc_request_span(&request);
            tracing::Instrument::instrument(
                async move {
                    let Some(routes) = routes else {
                        return Err(ChannelError("this process's gRPC services are not started yet".into()));
                    };
                    match tower::ServiceExt::oneshot(routes, request).await {
                        Ok(response) => Ok(response),
                        Err(never) => match never {},
                    }
                },
                span,
            )
        }))
    }
}

/// The channel to every service, by name.
#[derive(Clone)]
pub struct ServiceChannels {
    pub auth: GrpcChannel,
    pub rooms: GrpcChannel,
    pub documents: GrpcChannel,
    pub presence: GrpcChannel,
    pub history: GrpcChannel,
    pub execution: GrpcChannel,
    pub assistant: GrpcChannel,
    pub notifications: GrpcChannel,
    pub analytics: GrpcChannel,
}

impl ServiceChannels {
    /// Channels to the given `http://host:port` endpoint of each service, except
    /// the services `hosted_here`: calls to those go to `in_process` and stay in the process,
    /// as the same gRPC requests without HTTP/2 and loopback TCP under them.
    /// Nothing connects until the first call, so processes may start in any order.
    pub fn connect_lazily(
        endpoint_of: impl Fn(&str) -> String,
        in_process: &InProcessRoutes,
        hosted_here: &[&str],
    ) -> Result<Self, tonic::transport::Error> {
        let channel = |service: &str| -> Result<GrpcChannel, tonic::transport::Error> {
            if hosted_here.contains(&service) {
                return Ok(in_process.channel());
            }
            let endpoint = tonic::transport::Endpoint::from_shared(endpoint_of(service))?
                .connect_timeout(std::time::Duration::from_secs(5))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(std::time::Duration::from_secs(30))
                .keep_alive_while_idle(true);
            let channel = endpoint.connect_lazy();
            Ok(GrpcChannel::new(tower::ServiceExt::map_err(channel, |error| ChannelError(error.into()))))
        };
        Ok(Self {
            auth: channel("auth")?,
            rooms: channel("rooms")?,
            documents: channel("documents")?,
            presence: channel("presence")?,
            history: channel("history")?,
            execution: channel("execution")?,
            assistant: channel("assistant")?,
            notifications: channel("notifications")?,
            analytics: channel("analytics")?,
        })
    }

    /// Each service's name with its channel.
    pub fn by_name(&self) -> [(&'static str, &GrpcChannel); 9] {
        [
            ("auth", &self.auth),
            ("rooms", &self.rooms),
            ("documents", &self.documents),
            ("presence", &self.presence),
            ("history", &self.history),
            ("execution", &self.execution),
            ("assistant", &self.assistant),
            ("notifications", &self.notifications),
            ("analytics", &self.analytics),
        ]
    }
}

/// The fully qualified gRPC name of a service (`codesync.rooms.v1.RoomsService`).
pub fn grpc_service_name(service: &str) -> String {
    let mut type_name = String::new();
    let mut characters = service.chars();
    if let Some(first) = characters.next() {
        type_name.extend(first.to_uppercase());
        type_name.push_str(characters.as_str());
    }
    format!("codesync.{service}.v1.{type_name}Service")
}

#[cfg(test)]
mod tests {
    #[test]
    fn grpc_service_names_follow_the_packages() {
        assert_eq!(super::grpc_service_name("rooms"), "codesync.rooms.v1.RoomsService");
        assert_eq!(super::grpc_service_name("notifications"), "codesync.notifications.v1.NotificationsService");
    }
}
