//! Calls that reach a replica which does not own the file go to the replica that does: a
//! `Collaborate` stream is relayed frame by frame in both directions, a unary call is made
//! again there. A forwarded call is marked, and is never forwarded a second time (the owner
//! that moved meanwhile answers with where the file went, and the first replica asks again).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use codesync_common::grpc::{
    CallContext, CallPolicy, GrpcChannel, is_transport_failure, remote_channel, with_credential,
};
use codesync_common::identity::ServiceCredential;
use codesync_common::{ServiceError, ServiceResult};
use codesync_proto::documents::v1 as pb;
use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status, Streaming};

/// Metadata on a call one replica forwarded to another.
const FORWARDED_METADATA_KEY: &str = "x-codesync-forwarded";

/// A forwarded unary call's answer.
pub type UnaryCall<R> = Pin<Box<dyn Future<Output = Result<Response<R>, Status>> + Send>>;

pub fn is_forwarded(metadata: &MetadataMap) -> bool {
    metadata.contains_key(FORWARDED_METADATA_KEY)
}

/// `message` as a forwarded call on behalf of the caller of `context` (its token, address and
/// deadline go along: the owner authorises the caller itself).
pub fn forwarded<T>(context: &CallContext, message: T) -> Request<T> {
    let mut request = context.request(message);
    request.metadata_mut().insert(FORWARDED_METADATA_KEY, MetadataValue::from_static("1"));
    request
}

/// Channels to the other replicas, by address, made on first use.
#[derive(Clone)]
pub struct Peers {
    channels: Arc<Mutex<HashMap<String, GrpcChannel>>>,
    calls: CallPolicy,
    max_message_bytes: usize,
    /// Presented to the other replicas: a forwarded call is this replica's, not a stranger's
    /// (whose calls the gRPC port limits per address).
    credential: Arc<ServiceCredential>,
}

impl Peers {
    pub fn new(calls: CallPolicy, max_message_bytes: usize, credential: Arc<ServiceCredential>) -> Self {
        Self { channels: Arc::default(), calls, max_message_bytes, credential }
    }

    pub fn client(&self, address: &str) -> ServiceResult<DocumentsServiceClient<GrpcChannel>> {
        let mut channels = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let channel = match channels.get(address) {
            Some(channel) => channel.clone(),
            None => {
                let channel =
                    remote_channel(&[format!("http://{address}")], "documents", self.calls).map_err(|error| {
                        ServiceError::internal(format_args!("a replica's address {address} is not usable: {error}"))
                    })?;
                let channel = with_credential(channel, self.credential.clone());
                channels.insert(address.to_string(), channel.clone());
                channel
            }
        };
        Ok(DocumentsServiceClient::new(channel)
            .max_decoding_message_size(self.max_message_bytes.max(4 * 1024 * 1024))
            .max_encoding_message_size(self.max_message_bytes.max(4 * 1024 * 1024)))
    }

    /// Relays a client's `Collaborate` stream to the replica at `address`. Fails, with the
    /// client's frames untouched, when that replica cannot be reached or refuses; once it has
    /// answered, its frames and its end (a transport failure becomes "reconnect") reach the client.
    pub async fn collaborate(
        &self,
        address: &str,
        context: &CallContext,
        open: pb::OpenDocument,
        inbound: SharedInbound,
    ) -> Result<tonic::codegen::BoxStream<pb::CollaborateResponse>, Status> {
        let mut client = self.client(address)?;
        let open = pb::CollaborateRequest { frame: Some(pb::collaborate_request::Frame::Open(open)) };
        let frames = futures::stream::once(async move { open }).chain(inbound.into_stream());
        let responses = client.collaborate(forwarded(context, frames)).await?.into_inner();
        let relayed = futures::stream::unfold(Some(responses), |responses| async move {
            let mut responses: Streaming<pb::CollaborateResponse> = responses?;
            match responses.message().await {
                Ok(Some(response)) => Some((Ok(response), Some(responses))),
                Ok(None) => None,
                Err(status) if is_transport_failure(&status) => {
                    let gone = ServiceError::Unavailable {
                        message: "the server holding this file went away; reconnect".into(),
                    };
                    Some((Err(Status::from(gone)), None))
                }
                Err(status) => Some((Err(status), None)),
            }
        });
        Ok(Box::pin(relayed))
    }
}

use futures::StreamExt;

/// A client's incoming frames, shared between attempts: a forward that fails before the owner
/// answered leaves them to the next attempt (here or at another replica).
#[derive(Clone)]
pub struct SharedInbound {
    inner: Arc<tokio::sync::Mutex<Streaming<pb::CollaborateRequest>>>,
}

impl SharedInbound {
    pub fn new(inbound: Streaming<pb::CollaborateRequest>) -> Self {
        Self { inner: Arc::new(tokio::sync::Mutex::new(inbound)) }
    }

    /// The next frame.
    pub async fn message(&self) -> Result<Option<pb::CollaborateRequest>, Status> {
        self.inner.lock().await.message().await
    }

    /// The frames that follow, until the client's stream ends or fails.
    fn into_stream(self) -> impl futures::Stream<Item = pb::CollaborateRequest> + Send + 'static {
        futures::stream::unfold(self, |inbound| async move {
            match inbound.message().await {
                Ok(Some(frame)) => Some((frame, inbound)),
                Ok(None) | Err(_) => None,
            }
        })
    }
}
