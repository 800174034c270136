//! The documents service: collaborative documents, each file's text as a Yjs-compatible CRDT (yrs) synchronised with the y-websocket wire format, durable across crashes.
//!
//! Its gRPC contract is `codesync.documents.v1.DocumentsService` in `proto/`. This crate is
//! served in every topology already; its RPCs answer UNIMPLEMENTED until the
//! issue that builds the service lands.
#![forbid(unsafe_code)]

use codesync_proto::documents::v1::documents_service_server::{DocumentsService, DocumentsServiceServer};

/// The gRPC implementation of `DocumentsService`.
#[derive(Debug, Default, Clone)]
pub struct DocumentsGrpcService;

#[tonic::async_trait]
impl DocumentsService for DocumentsGrpcService {}

/// The tonic server of this service, ready to be added to a gRPC router.
pub fn grpc_server() -> DocumentsServiceServer<DocumentsGrpcService> {
    DocumentsServiceServer::new(DocumentsGrpcService)
}
