//! The gRPC contract of CodeSync: one module per service, package
//! `codesync.<service>.v1`, plus the file descriptor set that reflection serves.

pub mod pieces;

pub mod auth {
    pub mod v1 {
        tonic::include_proto!("codesync.auth.v1");
    }
}
pub mod rooms {
    pub mod v1 {
        tonic::include_proto!("codesync.rooms.v1");
    }
}
pub mod documents {
    pub mod v1 {
        tonic::include_proto!("codesync.documents.v1");
    }
}
pub mod presence {
    pub mod v1 {
        tonic::include_proto!("codesync.presence.v1");
    }
}
pub mod history {
    pub mod v1 {
        tonic::include_proto!("codesync.history.v1");
    }
}
pub mod execution {
    pub mod v1 {
        tonic::include_proto!("codesync.execution.v1");
    }
}
pub mod assistant {
    pub mod v1 {
        tonic::include_proto!("codesync.assistant.v1");
    }
}
pub mod notifications {
    pub mod v1 {
        tonic::include_proto!("codesync.notifications.v1");
    }
}
pub mod analytics {
    pub mod v1 {
        tonic::include_proto!("codesync.analytics.v1");
    }
}

/// The encoded `FileDescriptorSet` of every CodeSync proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("codesync_descriptor");
