//! The gRPC adapter: `codesync.documents.v1.DocumentsService` on [`DocumentsGrpcService`].
//! A call is answered where the file is open, or forwarded once to the replica that owns it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use codesync_common::grpc::{CallContext, GrpcChannel, is_transport_failure};
use codesync_common::{ErrorCode, ServiceError};
use codesync_proto::documents::v1 as pb;
use codesync_proto::documents::v1::documents_service_client::DocumentsServiceClient;
use codesync_proto::documents::v1::documents_service_server::DocumentsService;
use codesync_proto::pieces;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::access::FileAccess;
use crate::actor::{Command, ServerEdit, moved_to};
use crate::{DocumentsGrpcService, forward, outbox};

#[tonic::async_trait]
impl DocumentsService for DocumentsGrpcService {
    async fn collaborate(
        &self,
        request: Request<Streaming<pb::CollaborateRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::CollaborateResponse>>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        let forwarded = forward::is_forwarded(request.metadata());
        let mut inbound = request.into_inner();
        let open = match inbound.message().await? {
            Some(pb::CollaborateRequest { frame: Some(pb::collaborate_request::Frame::Open(open)) }) => open,
            _ => {
                return Err(
                    ServiceError::invalid(ErrorCode::OpenFirst, "the first frame must name the file (open)").into()
                );
            }
        };
        let access = self.file_access(caller, &context, &open.file_id).await?;
        if !access.is_member {
            return Err(
                ServiceError::forbidden(ErrorCode::NotAMember, "join the room to collaborate on its files").into()
            );
        }
        let inbound = forward::SharedInbound::new(inbound);
        // Until the file's owner answers: a dead owner's lease must run out before another
        // replica (this one, most likely) takes the file over.
        let give_up_at = tokio::time::Instant::now() + self.config.lease_ttl * 2 + Duration::from_secs(2);
        loop {
            self.refuse_while_draining()?;
            let status = match self.join_here(&access, &open, &context, inbound.clone()).await {
                Ok(stream) => return Ok(Response::new(stream)),
                Err(status) => status,
            };
            let Some(owner) = moved_to(&status).filter(|_| !forwarded) else { return Err(status) };
            match self.peers.collaborate(&owner, &context, open.clone(), inbound.clone()).await {
                Ok(stream) => return Ok(Response::new(stream)),
                Err(status) if is_transport_failure(&status) && tokio::time::Instant::now() < give_up_at => {
                    tracing::debug!(file_id = %open.file_id, %owner, "the file's owner cannot be reached; asking again");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(status) if is_transport_failure(&status) => {
                    return Err(ServiceError::Unavailable {
                        message: "the server holding this file cannot be reached; try again".into(),
                    }
                    .into());
                }
                Err(status) if moved_to(&status).is_some() => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(status) => return Err(status),
            }
        }
    }

    async fn delete_document(
        &self,
        request: Request<pb::DeleteDocumentRequest>,
    ) -> Result<Response<pb::DeleteDocumentResponse>, Status> {
        self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        let forwarded = forward::is_forwarded(request.metadata());
        self.delete_document_of(&context, &request.get_ref().file_id, forwarded).await?;
        Ok(Response::new(pb::DeleteDocumentResponse {}))
    }

    async fn get_document(&self, request: Request<pb::GetDocumentRequest>) -> Result<Response<pb::Document>, Status> {
        let file_id = request.get_ref().file_id.clone();
        // A token that is present must be valid; reading otherwise needs what
        // reading the file through the rooms service needs (public rooms are readable).
        self.tokens.caller_from_metadata(request.metadata())?;
        let context = CallContext::from_request(&request, &self.tokens);
        let access = self.check_file(&context, &file_id).await?;
        self.refuse_while_draining()?;
        let opening = self.opening(&context, access.room_id);
        match self.read(&file_id, request.get_ref().include_state, &opening).await {
            Ok(view) => Ok(Response::new(pb::Document {
                file_id,
                text: view.text,
                state_vector: view.state_vector.into(),
                state: view.state.into(),
            })),
            Err(error) => {
                let forward =
                    |mut client: DocumentsServiceClient<GrpcChannel>, request| -> forward::UnaryCall<pb::Document> {
                        Box::pin(async move { client.get_document(request).await })
                    };
                self.forward_unary(Status::from(error), &request, &context, forward).await
            }
        }
    }

    async fn apply_update(
        &self,
        request: Request<pb::ApplyUpdateRequest>,
    ) -> Result<Response<pb::ApplyUpdateResponse>, Status> {
        let file_id = request.get_ref().file_id.clone();
        let update = request.get_ref().update.to_vec();
        let forward =
            |mut client: DocumentsServiceClient<GrpcChannel>, request| -> forward::UnaryCall<pb::ApplyUpdateResponse> {
                Box::pin(async move { client.apply_update(request).await })
            };
        self.edit(&request, &file_id, ServerEdit::Update(update), forward).await
    }

    async fn replace_text(
        &self,
        request: Request<pb::ReplaceTextRequest>,
    ) -> Result<Response<pb::ApplyUpdateResponse>, Status> {
        let file_id = request.get_ref().file_id.clone();
        let text = request.get_ref().text.clone();
        let forward =
            |mut client: DocumentsServiceClient<GrpcChannel>, request| -> forward::UnaryCall<pb::ApplyUpdateResponse> {
                Box::pin(async move { client.replace_text(request).await })
            };
        self.edit(&request, &file_id, ServerEdit::Replace { text }, forward).await
    }

    async fn insert_text(
        &self,
        request: Request<pb::InsertTextRequest>,
    ) -> Result<Response<pb::ApplyUpdateResponse>, Status> {
        let file_id = request.get_ref().file_id.clone();
        let edit = ServerEdit::Insert { index: request.get_ref().index, text: request.get_ref().text.clone() };
        let forward =
            |mut client: DocumentsServiceClient<GrpcChannel>, request| -> forward::UnaryCall<pb::ApplyUpdateResponse> {
                Box::pin(async move { client.insert_text(request).await })
            };
        self.edit(&request, &file_id, edit, forward).await
    }
}

impl DocumentsGrpcService {
    /// A server-side edit, authorised as a collaborator's, made where the file is open.
    async fn edit<T: Clone>(
        &self,
        request: &Request<T>,
        file_id: &str,
        edit: ServerEdit,
        forward: impl Fn(DocumentsServiceClient<GrpcChannel>, Request<T>) -> forward::UnaryCall<pb::ApplyUpdateResponse>,
    ) -> Result<Response<pb::ApplyUpdateResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let context = CallContext::from_request(request, &self.tokens);
        let access = self.file_access(caller, &context, file_id).await?;
        // The same answers as rooms gives a REST caller: an outsider is told to join first.
        if !access.is_member {
            return Err(ServiceError::forbidden(ErrorCode::NotAMember, "only members of this room may do this").into());
        }
        if !access.can_write {
            return Err(ServiceError::forbidden(ErrorCode::ReadOnly, "viewers cannot edit this file").into());
        }
        self.refuse_while_draining()?;
        let (reply, answer) = oneshot::channel();
        let opening = self.opening(&context, access.room_id);
        let local = async {
            self.registry.send(file_id, &opening, Command::Edit { edit, reply }).await?;
            answer
                .await
                .map_err(|_| ServiceError::Unavailable { message: "the document was unloaded; try again".into() })?
        };
        match local.await {
            Ok(text) => Ok(Response::new(pb::ApplyUpdateResponse { text })),
            Err(error) => {
                let status = Status::from(error);
                self.forward_unary(status, request, &context, forward).await
            }
        }
    }

    /// After a local attempt failed with `status`: when it names the replica that owns the file,
    /// the call goes there (once: a forwarded call is never forwarded again) and that answer is
    /// the answer.
    async fn forward_unary<T: Clone, R>(
        &self,
        status: Status,
        request: &Request<T>,
        context: &CallContext,
        call: impl Fn(DocumentsServiceClient<GrpcChannel>, Request<T>) -> forward::UnaryCall<R>,
    ) -> Result<Response<R>, Status> {
        let Some(owner) = moved_to(&status) else { return Err(status) };
        if forward::is_forwarded(request.metadata()) {
            return Err(status);
        }
        let client = self.peers.client(&owner)?;
        call(client, forward::forwarded(context, request.get_ref().clone())).await
    }

    /// Joins the file's document in this replica, which loads it if it owns the file (or takes
    /// it over); a refusal that names another owner comes back as the error.
    async fn join_here(
        &self,
        access: &FileAccess,
        open: &pb::OpenDocument,
        context: &CallContext,
        inbound: forward::SharedInbound,
    ) -> Result<tonic::codegen::BoxStream<pb::CollaborateResponse>, Status> {
        let connection = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let share = self
            .outbound
            .clone()
            .map(|budget| (budget, codesync_common::budget::Holder::User(access.identity.user_id.clone())));
        let (outbox, mut inbox) =
            outbox::channel_in(self.config.connection_queue, self.config.connection_queue_bytes, share);
        let join = Command::Join {
            connection,
            identity: access.identity.clone(),
            can_write: access.can_write,
            wants_ack: open.acknowledge,
            outbox,
        };
        let opening = self.opening(context, access.room_id.clone());
        let mailbox = self.registry.send(&open.file_id, &opening, join).await?;
        // The first thing out is the greeting, or why the document cannot be opened here.
        let first = inbox.first().await?;
        let max_message_bytes = self.config.max_message_bytes;
        tokio::spawn(async move {
            let mut reassembly = pieces::Reassembly::new(max_message_bytes);
            let mut end = None;
            loop {
                let piece = match inbound.message().await {
                    Ok(Some(pb::CollaborateRequest { frame: Some(pb::collaborate_request::Frame::Message(last)) })) => {
                        reassembly.finish(last)
                    }
                    Ok(Some(pb::CollaborateRequest {
                        frame: Some(pb::collaborate_request::Frame::MessagePart(part)),
                    })) => match reassembly.push_part(&part) {
                        Ok(()) => continue,
                        Err(too_large) => Err(too_large),
                    },
                    Ok(Some(_)) => {
                        end = Some(Status::invalid_argument("only the first frame may open a document"));
                        break;
                    }
                    Ok(None) | Err(_) => break,
                };
                let frame = match piece {
                    Ok(frame) => frame,
                    Err(too_large) => {
                        end = Some(Status::out_of_range(format!(
                            "a message is over the limit of {} bytes",
                            too_large.limit
                        )));
                        break;
                    }
                };
                if mailbox.send(Command::ClientMessage { connection, frame }).await.is_err() {
                    break;
                }
            }
            let _ = mailbox.send(Command::Leave { connection, reason: end }).await;
        });
        let first = tokio_stream::once(Ok(first));
        // Each message goes out as its pieces; nothing is collected on the way (every relayed edit passes here).
        let stream = futures::StreamExt::flat_map(first.chain(inbox.into_stream()), |item: Result<Bytes, Status>| {
            let (message, error) = match item {
                Ok(message) => (Some(message), None),
                Err(status) => (None, Some(status)),
            };
            let responses = message.into_iter().flat_map(pieces::split).map(|(piece, last)| {
                Ok(if last {
                    pb::CollaborateResponse { message: piece, message_part: Bytes::new() }
                } else {
                    pb::CollaborateResponse { message: Bytes::new(), message_part: piece }
                })
            });
            futures::stream::iter(responses.chain(error.map(Err)))
        });
        Ok(Box::pin(stream))
    }
}
