//! Integration tests: the real `codesync` binary, started on 127.0.0.1 with
//! ephemeral ports, driven over HTTP and gRPC exactly as clients drive it.

mod analytics;
mod api_contract;
mod assistant;
mod auth;
mod authorization_matrix;
mod bench;
mod cli;
mod cluster;
mod collaboration;
mod deployment;
mod executions;
mod grpc;
mod harness;
mod history;
mod hostile_input;
mod interop;
mod notifications;
mod presence;
mod projects;
mod resources;
mod rooms;
mod scenario;
mod security;
mod telemetry;
mod web;
mod yjs_client;
