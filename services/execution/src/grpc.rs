//! The gRPC adapter: `codesync.execution.v1.ExecutionService` on [`ExecutionGrpcService`]; a
//! streamed run's output goes out as it comes, and the run dies when its caller goes away.

use std::pin::Pin;

use codesync_proto::execution::v1 as pb;
use codesync_proto::execution::v1::execution_service_server::ExecutionService;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use crate::sandbox::Stream;
use crate::{ExecutionGrpcService, unavailable};

/// Live events of one streamed run; dropping it (the client went away) kills the run.
pub struct RunEvents {
    events: tokio_stream::wrappers::ReceiverStream<Result<pb::ExecutionEvent, Status>>,
    run: tokio::task::JoinHandle<()>,
    forwarder: tokio::task::JoinHandle<()>,
}

impl Drop for RunEvents {
    fn drop(&mut self) {
        // Dropping the run's future kills its processes (kill_on_drop, the cgroup's drop) and
        // removes its work directory.
        self.run.abort();
        self.forwarder.abort();
    }
}

impl futures::Stream for RunEvents {
    type Item = Result<pb::ExecutionEvent, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        Pin::new(&mut self.events).poll_next(context)
    }
}

/// Sends a streamed run's output as it comes, then its result once the run has ended.
async fn forward_output(
    mut output: crate::sandbox::LiveChunks,
    mut result: tokio::sync::oneshot::Receiver<pb::ExecutionResult>,
    events: mpsc::Sender<Result<pb::ExecutionEvent, Status>>,
) {
    let output_event = |(stream, bytes): (Stream, Vec<u8>)| {
        let event = match stream {
            Stream::Stdout => pb::execution_event::Event::Stdout(bytes),
            Stream::Stderr => pb::execution_event::Event::Stderr(bytes),
        };
        Ok(pb::ExecutionEvent { event: Some(event) })
    };
    let result = loop {
        tokio::select! {
            biased;
            Some(chunk) = output.recv() => {
                if events.send(output_event(chunk)).await.is_err() {
                    return;
                }
            }
            result = &mut result => match result {
                Ok(result) => break result,
                // The run was aborted: nobody is listening any more.
                Err(_) => return,
            },
        }
    };
    // The run's readers finished before its result was made: what they sent is all here.
    while let Some(chunk) = output.try_recv() {
        if events.send(output_event(chunk)).await.is_err() {
            return;
        }
    }
    let _ = events.send(Ok(pb::ExecutionEvent { event: Some(pb::execution_event::Event::Result(result)) })).await;
}

#[tonic::async_trait]
impl ExecutionService for ExecutionGrpcService {
    async fn execute(&self, request: Request<pb::ExecuteRequest>) -> Result<Response<pb::ExecutionResult>, Status> {
        let admitted = self.admit(request).await?;
        Ok(Response::new(self.finish(admitted, None).await))
    }

    async fn execute_stream(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<Pin<Box<dyn futures::Stream<Item = Result<pb::ExecutionEvent, Status>> + Send>>>, Status> {
        let admitted = self.admit(request).await?;
        let (sender, receiver) = mpsc::channel(64);
        let (live, output) = crate::sandbox::LiveOutput::channel();
        let (finished, result) = tokio::sync::oneshot::channel();
        let service = self.clone();
        // The run goes on in its own task, so that a slow client never holds up its time limit;
        // its output waits in `live` (at most the capped output of one run).
        let run = tokio::spawn(async move {
            let result = service.finish(admitted, Some(&live)).await;
            let _ = finished.send(result);
        });
        let forwarder = tokio::spawn(forward_output(output, result, sender));
        let events = tokio_stream::wrappers::ReceiverStream::new(receiver);
        Ok(Response::new(Box::pin(RunEvents { events, run, forwarder })))
    }

    async fn list_executions(
        &self,
        request: Request<pb::ListExecutionsRequest>,
    ) -> Result<Response<pb::ListExecutionsResponse>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        let request = request.into_inner();
        let executions = self.store.latest(&caller.user_id, &request.room_id, request.limit).await?;
        Ok(Response::new(pb::ListExecutionsResponse { executions }))
    }

    async fn list_languages(
        &self,
        request: Request<pb::ListLanguagesRequest>,
    ) -> Result<Response<pb::ListLanguagesResponse>, Status> {
        // The gateway asks too, for the API document's list of languages.
        self.tokens.require_caller_or_service(request.metadata())?;
        let languages = self.listed.get_or_init(|| self.list()).await.clone();
        let unavailable_reason = self.sandbox.as_ref().err().map(String::as_str).map(unavailable).unwrap_or_default();
        Ok(Response::new(pb::ListLanguagesResponse { languages, unavailable_reason }))
    }
}
