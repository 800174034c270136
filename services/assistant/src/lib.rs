//! The assistant service: the AI assistant's eight modes over a file's context, streamed token by token from OpenAI-compatible, Anthropic or Gemini providers.
//!
//! Its gRPC contract is `codesync.assistant.v1.AssistantService` in `proto/`. This crate is
//! served in every topology already; its RPCs answer UNIMPLEMENTED until the
//! issue that builds the service lands.
#![forbid(unsafe_code)]

use codesync_proto::assistant::v1::assistant_service_server::{AssistantService, AssistantServiceServer};

/// The gRPC implementation of `AssistantService`.
#[derive(Debug, Default, Clone)]
pub struct AssistantGrpcService;

#[tonic::async_trait]
impl AssistantService for AssistantGrpcService {}

/// The tonic server of this service, ready to be added to a gRPC router.
pub fn grpc_server() -> AssistantServiceServer<AssistantGrpcService> {
    AssistantServiceServer::new(AssistantGrpcService)
}
