//! The notifications service: typed notifications per user, stored, counted, filtered, marked read and pushed live.
//!
//! Its gRPC contract is `codesync.notifications.v1.NotificationsService` in `proto/`. This crate is
//! served in every topology already; its RPCs answer UNIMPLEMENTED until the
//! issue that builds the service lands.
#![forbid(unsafe_code)]

use codesync_proto::notifications::v1::notifications_service_server::{
    NotificationsService, NotificationsServiceServer,
};

/// The gRPC implementation of `NotificationsService`.
#[derive(Debug, Default, Clone)]
pub struct NotificationsGrpcService;

#[tonic::async_trait]
impl NotificationsService for NotificationsGrpcService {}

/// The tonic server of this service, ready to be added to a gRPC router.
pub fn grpc_server() -> NotificationsServiceServer<NotificationsGrpcService> {
    NotificationsServiceServer::new(NotificationsGrpcService)
}
