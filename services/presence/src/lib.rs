//! The presence service: who is online in each room and on which file, typing indicators, and the room's persisted chat.
//!
//! Its gRPC contract is `codesync.presence.v1.PresenceService` in `proto/`. This crate is
//! served in every topology already; its RPCs answer UNIMPLEMENTED until the
//! issue that builds the service lands.
#![forbid(unsafe_code)]

use codesync_proto::presence::v1::presence_service_server::{PresenceService, PresenceServiceServer};

/// The gRPC implementation of `PresenceService`.
#[derive(Debug, Default, Clone)]
pub struct PresenceGrpcService;

#[tonic::async_trait]
impl PresenceService for PresenceGrpcService {}

/// The tonic server of this service, ready to be added to a gRPC router.
pub fn grpc_server() -> PresenceServiceServer<PresenceGrpcService> {
    PresenceServiceServer::new(PresenceGrpcService)
}
