//! The history service: file versions (saves and checkpoints), their diffs, restore as a forward edit, and each room's event log.
//!
//! Its gRPC contract is `codesync.history.v1.HistoryService` in `proto/`. This crate is
//! served in every topology already; its RPCs answer UNIMPLEMENTED until the
//! issue that builds the service lands.
#![forbid(unsafe_code)]

use codesync_proto::history::v1::history_service_server::{HistoryService, HistoryServiceServer};

/// The gRPC implementation of `HistoryService`.
#[derive(Debug, Default, Clone)]
pub struct HistoryGrpcService;

#[tonic::async_trait]
impl HistoryService for HistoryGrpcService {}

/// The tonic server of this service, ready to be added to a gRPC router.
pub fn grpc_server() -> HistoryServiceServer<HistoryGrpcService> {
    HistoryServiceServer::new(HistoryGrpcService)
}
