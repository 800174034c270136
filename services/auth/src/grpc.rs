//! The gRPC adapter: `codesync.auth.v1.AuthService` on [`AuthGrpcService`].

use codesync_common::rate_limit::address_key;
use codesync_proto::auth::v1 as pb;
use codesync_proto::auth::v1::auth_service_server::AuthService;
use tonic::{Request, Response, Status};

use crate::AuthGrpcService;

#[tonic::async_trait]
impl AuthService for AuthGrpcService {
    async fn register(&self, request: Request<pb::RegisterRequest>) -> Result<Response<pb::AuthSession>, Status> {
        let ip_key = self.tokens.client_ip(&request).map_or_else(|| "unknown".to_string(), address_key);
        Ok(Response::new(self.register(request.into_inner(), ip_key).await?))
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> Result<Response<pb::AuthSession>, Status> {
        let ip_key = self.tokens.client_ip(&request).map_or_else(|| "unknown".to_string(), address_key);
        Ok(Response::new(self.login(request.into_inner(), ip_key).await?))
    }

    async fn refresh(&self, request: Request<pb::RefreshRequest>) -> Result<Response<pb::TokenPair>, Status> {
        Ok(Response::new(self.refresh(request.into_inner()).await?))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Result<Response<pb::LogoutResponse>, Status> {
        Ok(Response::new(self.logout(request.into_inner()).await?))
    }

    async fn get_current_user(
        &self,
        request: Request<pb::GetCurrentUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let caller = self.tokens.require_caller(request.metadata())?;
        Ok(Response::new(self.current_user(caller).await?))
    }

    async fn get_user_profiles(
        &self,
        request: Request<pb::GetUserProfilesRequest>,
    ) -> Result<Response<pb::GetUserProfilesResponse>, Status> {
        // Usernames are for signed-in users and the other services, not for anyone on the network.
        self.tokens.require_caller_or_service(request.metadata())?;
        Ok(Response::new(self.user_profiles(request.into_inner()).await?))
    }

    async fn get_token_keys(
        &self,
        _request: Request<pb::GetTokenKeysRequest>,
    ) -> Result<Response<pb::TokenKeys>, Status> {
        Ok(Response::new(pb::TokenKeys { ed25519_public_keys: vec![self.tokens.public_key().encode()] }))
    }
}
