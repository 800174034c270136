//! The analytics service: administrators' analytics: totals, executions by language, AI calls by mode, active rooms, the event log and the services' health.
//!
//! Its gRPC contract is `codesync.analytics.v1.AnalyticsService` in `proto/`. This crate is
//! served in every topology already; its RPCs answer UNIMPLEMENTED until the
//! issue that builds the service lands.
#![forbid(unsafe_code)]

use codesync_proto::analytics::v1::analytics_service_server::{AnalyticsService, AnalyticsServiceServer};

/// The gRPC implementation of `AnalyticsService`.
#[derive(Debug, Default, Clone)]
pub struct AnalyticsGrpcService;

#[tonic::async_trait]
impl AnalyticsService for AnalyticsGrpcService {}

/// The tonic server of this service, ready to be added to a gRPC router.
pub fn grpc_server() -> AnalyticsServiceServer<AnalyticsGrpcService> {
    AnalyticsServiceServer::new(AnalyticsGrpcService)
}
