//! The execution service: sandboxed code runs (local bubblewrap, Docker, Kubernetes) under hard limits on time, memory, processes and output.
//!
//! Its gRPC contract is `codesync.execution.v1.ExecutionService` in `proto/`. This crate is
//! served in every topology already; its RPCs answer UNIMPLEMENTED until the
//! issue that builds the service lands.
#![forbid(unsafe_code)]

use codesync_proto::execution::v1::execution_service_server::{ExecutionService, ExecutionServiceServer};

/// The gRPC implementation of `ExecutionService`.
#[derive(Debug, Default, Clone)]
pub struct ExecutionGrpcService;

#[tonic::async_trait]
impl ExecutionService for ExecutionGrpcService {}

/// The tonic server of this service, ready to be added to a gRPC router.
pub fn grpc_server() -> ExecutionServiceServer<ExecutionGrpcService> {
    ExecutionServiceServer::new(ExecutionGrpcService)
}
