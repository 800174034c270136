//! What travels with every gRPC call between CodeSync processes: the end
//! user's access token and address, and the trace context.

use std::net::IpAddr;

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

/// One lazily connected gRPC channel per service. Clients built on these
/// channels reach a service in this process and in another alike.
#[derive(Debug, Clone)]
pub struct ServiceChannels {
    pub auth: tonic::transport::Channel,
    pub rooms: tonic::transport::Channel,
    pub documents: tonic::transport::Channel,
    pub presence: tonic::transport::Channel,
    pub history: tonic::transport::Channel,
    pub execution: tonic::transport::Channel,
    pub assistant: tonic::transport::Channel,
    pub notifications: tonic::transport::Channel,
    pub analytics: tonic::transport::Channel,
}

impl ServiceChannels {
    /// Channels to the given `http://host:port` endpoint of each service.
    /// Nothing connects until the first call, so processes may start in any order.
    pub fn connect_lazily(endpoint_of: impl Fn(&str) -> String) -> Result<Self, tonic::transport::Error> {
        let channel = |service: &str| -> Result<tonic::transport::Channel, tonic::transport::Error> {
            let endpoint = tonic::transport::Endpoint::from_shared(endpoint_of(service))?
                .connect_timeout(std::time::Duration::from_secs(5))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(std::time::Duration::from_secs(30))
                .keep_alive_while_idle(true);
            Ok(endpoint.connect_lazy())
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
    pub fn by_name(&self) -> [(&'static str, &tonic::transport::Channel); 9] {
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
