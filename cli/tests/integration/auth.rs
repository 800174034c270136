//! Every auth flow: registration rules, login, the access token's checks,
//! refresh rotation with reuse detection, expiry, logout and rate limits.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Cluster, Session};

fn credentials(name: &str) -> Value {
    json!({"username": name, "email": format!("{name}@example.com"), "password": "correct horse battery"})
}

#[tokio::test]
async fn registration_validates_and_refuses_duplicates() {
    let cluster = Cluster::one_process(&[]).await;
    let (status, body) = cluster.post("/api/auth/register", None, credentials("ada")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["user"]["username"], "ada");
    assert_eq!(body["user"]["email"], "ada@example.com");
    assert_eq!(body["user"]["is_admin"], true, "the first account administers the installation");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["user"].get("password_hash").is_none() && !body.to_string().contains("argon2"));

    let (status, second) = cluster.post("/api/auth/register", None, credentials("bob")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(second["user"]["is_admin"], false);

    let cases = [
        (
            json!({"username": "ADA", "email": "other@example.com", "password": "12345678"}),
            StatusCode::CONFLICT,
            "username_taken",
        ),
        (
            json!({"username": "ada2", "email": "Ada@Example.com", "password": "12345678"}),
            StatusCode::CONFLICT,
            "email_taken",
        ),
        (
            json!({"username": "ab", "email": "ab@example.com", "password": "12345678"}),
            StatusCode::BAD_REQUEST,
            "invalid_username",
        ),
        (
            json!({"username": "a/b", "email": "ab@example.com", "password": "12345678"}),
            StatusCode::BAD_REQUEST,
            "invalid_username",
        ),
        (
            json!({"username": "carol", "email": "not-an-email", "password": "12345678"}),
            StatusCode::BAD_REQUEST,
            "invalid_email",
        ),
        (
            json!({"username": "carol", "email": "carol@example.com", "password": "1234567"}),
            StatusCode::BAD_REQUEST,
            "weak_password",
        ),
    ];
    for (body, expected_status, expected_code) in cases {
        let (status, answer) = cluster.post("/api/auth/register", None, body.clone()).await;
        assert_eq!(status, expected_status, "{body} → {answer}");
        assert_eq!(answer["error"]["code"], expected_code, "{body} → {answer}");
    }
}

#[tokio::test]
async fn login_and_me() {
    let cluster = Cluster::one_process(&[]).await;
    let registered = cluster.register("ada").await;
    let (status, body) = cluster
        .post("/api/auth/login", None, json!({"email": "ADA@example.com", "password": "correct horse battery"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = Session::from_body(&body);
    assert_eq!(session.user_id, registered.user_id);

    let (status, me) = cluster.get("/api/auth/me", session.token()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], registered.user_id.as_str());
    assert_eq!(me["username"], "ada");
    assert_eq!(me["email"], "ada@example.com");

    for (email, password) in [("ada@example.com", "wrong password"), ("nobody@example.com", "correct horse battery")] {
        let (status, body) = cluster.post("/api/auth/login", None, json!({"email": email, "password": password})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "invalid_credentials", "wrong password and unknown account look alike");
    }
    let (status, body) = cluster.get("/api/auth/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "authentication_required");
}

fn tamper(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut claims);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn tampered_forged_and_malformed_tokens_are_refused() {
    let cluster = Cluster::one_process(&[]).await;
    let ada = cluster.register("ada").await;
    let bob = cluster.register("bob").await;
    // A token from another installation: well-formed, but signed with another key.
    let elsewhere = Cluster::one_process(&[]).await;
    let stranger = elsewhere.register("ada").await;

    let unsigned_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = ada.access_token.split('.').nth(1).unwrap();
    let forged_tokens = [
        tamper(&bob.access_token, |claims| claims["sub"] = json!(ada.user_id)),
        tamper(&bob.access_token, |claims| claims["adm"] = json!(true)),
        tamper(&ada.access_token, |claims| claims["exp"] = json!(4_102_444_800_i64)),
        stranger.access_token.clone(),
        format!("{unsigned_header}.{payload}."),
        "not.a.token".to_string(),
        "garbage".to_string(),
        ada.refresh_token.clone(),
    ];
    for token in &forged_tokens {
        let (status, body) = cluster.get("/api/auth/me", Some(token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token}: {body}");
        assert_eq!(body["error"]["code"], "invalid_token");
    }
    for header in ["Basic YWRhOnB3", "Bearer", "Bearer    ", "bearer"] {
        let response = cluster
            .http
            .get(format!("{}/api/auth/me", cluster.base_url))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{header}");
    }
    // An invalid token is refused even where no token is needed.
    let (status, _) = cluster.get("/api/rooms", Some("garbage")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let cluster = Cluster::one_process(&[]).await;
    let first = cluster.register("ada").await;
    let (status, other_login) = cluster
        .post("/api/auth/login", None, json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let other_login = Session::from_body(&other_login);

    let (status, rotated) =
        cluster.post("/api/auth/refresh", None, json!({"refresh_token": first.refresh_token})).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let second_refresh = rotated["refresh_token"].as_str().unwrap().to_string();
    let second_access = rotated["access_token"].as_str().unwrap().to_string();
    assert_ne!(second_refresh, first.refresh_token, "every use rotates the refresh token");
    let (status, _) = cluster.get("/api/auth/me", Some(&second_access)).await;
    assert_eq!(status, StatusCode::OK);

    let (status, rotated_again) =
        cluster.post("/api/auth/refresh", None, json!({"refresh_token": second_refresh})).await;
    assert_eq!(status, StatusCode::OK);
    let third_refresh = rotated_again["refresh_token"].as_str().unwrap().to_string();

    // The first token is presented again: somebody copied it. The whole family goes.
    let (status, body) = cluster.post("/api/auth/refresh", None, json!({"refresh_token": first.refresh_token})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "refresh_token_reused");
    let (status, body) = cluster.post("/api/auth/refresh", None, json!({"refresh_token": third_refresh})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the newest token of the family is revoked too");
    assert_eq!(body["error"]["code"], "refresh_token_revoked");

    // Another login of the same account is another family, untouched.
    let (status, _) =
        cluster.post("/api/auth/refresh", None, json!({"refresh_token": other_login.refresh_token})).await;
    assert_eq!(status, StatusCode::OK);

    for bogus in ["", "nope", &"x".repeat(10_000)] {
        let (status, body) = cluster.post("/api/auth/refresh", None, json!({"refresh_token": bogus})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "invalid_refresh_token");
    }
}

#[tokio::test]
async fn concurrent_use_of_one_refresh_token_yields_one_winner() {
    let cluster = Cluster::one_process(&[]).await;
    let ada = cluster.register("ada").await;
    let attempts = (0..8).map(|_| cluster.post("/api/auth/refresh", None, json!({"refresh_token": ada.refresh_token})));
    let outcomes = futures::future::join_all(attempts).await;
    let winners = outcomes.iter().filter(|(status, _)| *status == StatusCode::OK).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|(status, _)| *status == StatusCode::OK || *status == StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn logout_revokes_the_refresh_token() {
    let cluster = Cluster::one_process(&[]).await;
    let ada = cluster.register("ada").await;
    let (status, body) = cluster.post("/api/auth/logout", None, json!({"refresh_token": ada.refresh_token})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = cluster.post("/api/auth/refresh", None, json!({"refresh_token": ada.refresh_token})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "refresh_token_revoked");
    let (status, _) = cluster.post("/api/auth/logout", None, json!({"refresh_token": ada.refresh_token})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "logging out twice is harmless");
    let (status, body) = cluster.post("/api/auth/logout", None, json!({"refresh_token": ""})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn tokens_expire() {
    let cluster =
        Cluster::one_process(&[("CODESYNC_ACCESS_TOKEN_TTL_SECS", "1"), ("CODESYNC_REFRESH_TOKEN_TTL_SECS", "1")])
            .await;
    let ada = cluster.register("ada").await;
    let (status, _) = cluster.get("/api/auth/me", ada.token()).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = cluster.get("/api/auth/me", ada.token()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "token_expired");
    let (status, body) = cluster.post("/api/auth/refresh", None, json!({"refresh_token": ada.refresh_token})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "refresh_token_expired");
}

#[tokio::test]
async fn logins_are_rate_limited_per_account() {
    let cluster = Cluster::one_process(&[("CODESYNC_LOGIN_FAILURES_PER_ACCOUNT", "3")]).await;
    cluster.register("ada").await;
    for _ in 0..3 {
        let (status, _) = cluster
            .post("/api/auth/login", None, json!({"email": "ada@example.com", "password": "wrong password"}))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let response = cluster
        .http
        .post(format!("{}/api/auth/login", cluster.base_url))
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password waits");
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Other accounts are not locked out by it.
    cluster.register("bob").await;
    let (status, _) = cluster
        .post("/api/auth/login", None, json!({"email": "bob@example.com", "password": "correct horse battery"}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn logins_are_rate_limited_per_ip() {
    let cluster = Cluster::one_process(&[("CODESYNC_LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", "4")]).await;
    cluster.register("ada").await;
    for _ in 0..4 {
        let (status, _) = cluster
            .post("/api/auth/login", None, json!({"email": "ada@example.com", "password": "correct horse battery"}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, body) =
        cluster.post("/api/auth/login", None, json!({"email": "other@example.com", "password": "whatever1"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

#[tokio::test]
async fn the_api_is_rate_limited_per_ip_with_retry_after() {
    let cluster = Cluster::one_process(&[("CODESYNC_RATE_LIMIT_PER_MINUTE", "10")]).await;
    for _ in 0..10 {
        let (status, _) = cluster.get("/api/rooms", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let response = cluster.http.get(format!("{}/api/rooms", cluster.base_url)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=6).contains(&retry_after), "one token comes back every 6 s: {retry_after}");
    let (status, body) = crate::harness::read(response).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "rate_limited");
    // Probes are never limited.
    let (status, _) = cluster.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_signing_key_is_generated_private_and_kept() {
    use std::os::unix::fs::PermissionsExt;
    let cluster = Cluster::one_process(&[]).await;
    let ada = cluster.register("ada").await;
    let key_path = cluster.data_dir.path().join("data/secrets/jwt-signing-key");
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key = std::fs::read_to_string(&key_path).unwrap();
    assert!(key.trim().len() >= 43, "at least 32 random bytes");
    assert!(!ada.access_token.is_empty());
}
