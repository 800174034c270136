//! The gRPC side as any gRPC tool sees it: grpcurl (reflection v1alpha)
//! lists the services, health answers SERVING, later services UNIMPLEMENTED.

use std::process::Command;

use crate::harness::Cluster;

fn grpcurl(args: &[&str]) -> (bool, String) {
    let program = std::env::var("CODESYNC_TEST_GRPCURL").unwrap_or_else(|_| "grpcurl".to_string());
    let output = Command::new(&program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program} ({error}); `make test` installs grpcurl"));
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[tokio::test]
async fn grpcurl_lists_the_nine_services_health_and_reflection() {
    let cluster = Cluster::one_process(&[]).await;
    let (ok, listing) = grpcurl(&["-plaintext", &cluster.grpc_addr, "list"]);
    assert!(ok, "{listing}");
    let mut services: Vec<&str> = listing.lines().collect();
    services.sort();
    assert_eq!(
        services,
        [
            "codesync.analytics.v1.AnalyticsService",
            "codesync.assistant.v1.AssistantService",
            "codesync.auth.v1.AuthService",
            "codesync.documents.v1.DocumentsService",
            "codesync.execution.v1.ExecutionService",
            "codesync.history.v1.HistoryService",
            "codesync.notifications.v1.NotificationsService",
            "codesync.presence.v1.PresenceService",
            "codesync.rooms.v1.RoomsService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
    );

    let (ok, health) = grpcurl(&["-plaintext", &cluster.grpc_addr, "grpc.health.v1.Health/Check"]);
    assert!(ok && health.contains("SERVING"), "{health}");
    for service in ["codesync.auth.v1.AuthService", "codesync.analytics.v1.AnalyticsService"] {
        let request = format!("{{\"service\": \"{service}\"}}");
        let (ok, health) = grpcurl(&["-plaintext", "-d", &request, &cluster.grpc_addr, "grpc.health.v1.Health/Check"]);
        assert!(ok && health.contains("SERVING"), "{service}: {health}");
    }

    let (ok, described) = grpcurl(&["-plaintext", &cluster.grpc_addr, "describe", "codesync.rooms.v1.RoomsService"]);
    assert!(ok && described.contains("rpc CreateFile"), "{described}");

    let (ok, answer) =
        grpcurl(&["-plaintext", "-d", "{}", &cluster.grpc_addr, "codesync.history.v1.HistoryService/ListVersions"]);
    assert!(
        !ok && answer.contains("NotFound") && answer.contains("no such file"),
        "history answers for itself: {answer}"
    );

    // Authorisation holds on the gRPC side too, without the gateway.
    let (ok, answer) = grpcurl(&[
        "-plaintext",
        "-d",
        "{\"name\": \"x\"}",
        &cluster.grpc_addr,
        "codesync.rooms.v1.RoomsService/CreateRoom",
    ]);
    assert!(!ok && answer.contains("Unauthenticated"), "{answer}");
}

#[tokio::test]
async fn each_process_of_the_split_topology_serves_its_own_service() {
    let cluster = Cluster::ten_processes(&[]).await;
    // `grpc_addr` is the auth service's process in this topology.
    let (ok, listing) = grpcurl(&["-plaintext", &cluster.grpc_addr, "list"]);
    assert!(ok, "{listing}");
    let mut services: Vec<&str> = listing.lines().collect();
    services.sort();
    assert_eq!(
        services,
        [
            "codesync.auth.v1.AuthService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
    );
    let request = "{\"service\": \"codesync.auth.v1.AuthService\"}";
    let (ok, health) = grpcurl(&["-plaintext", "-d", request, &cluster.grpc_addr, "grpc.health.v1.Health/Check"]);
    assert!(ok && health.contains("SERVING"), "{health}");
    let request = "{\"service\": \"codesync.rooms.v1.RoomsService\"}";
    let (ok, health) = grpcurl(&["-plaintext", "-d", request, &cluster.grpc_addr, "grpc.health.v1.Health/Check"]);
    assert!(!ok && health.contains("NotFound"), "the auth process does not claim rooms: {health}");
}
