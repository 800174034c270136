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

        impl Role {
            /// The roles a member can have, in order of power.
            pub const NAMED: [Self; 3] = [Self::Owner, Self::Editor, Self::Viewer];

            /// How the REST API, the database and `room-events` spell a role (none for
            /// `Unspecified`, which is no role: not a member).
            pub fn name(self) -> Option<&'static str> {
                match self {
                    Self::Owner => Some("owner"),
                    Self::Editor => Some("editor"),
                    Self::Viewer => Some("viewer"),
                    Self::Unspecified => None,
                }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                Self::NAMED.into_iter().find(|role| role.name() == Some(name))
            }

            /// The role of a wire value, `Unspecified` for an unknown one.
            pub fn of(value: i32) -> Self {
                Self::try_from(value).unwrap_or(Self::Unspecified)
            }

            /// Owners and editors write; viewers (and non-members) only read.
            pub fn can_write(self) -> bool {
                matches!(self, Self::Owner | Self::Editor)
            }
        }
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

        impl ExecutionStatus {
            /// How the REST API, the `executions` table and `execution-events` spell a status.
            pub fn api_name(self) -> &'static str {
                match self {
                    Self::Ok => "ok",
                    Self::CompileError => "compile_error",
                    Self::RuntimeError => "runtime_error",
                    Self::TimeLimit => "time_limit",
                    Self::MemoryLimit => "memory_limit",
                    Self::OutputLimit => "output_limit",
                    Self::InternalError | Self::Unspecified => "internal_error",
                }
            }

            /// The status of a wire value; an unknown one is an internal error.
            pub fn api_name_of(value: i32) -> &'static str {
                Self::try_from(value).unwrap_or(Self::InternalError).api_name()
            }

            pub fn from_api_name(name: &str) -> Self {
                [
                    Self::Ok,
                    Self::CompileError,
                    Self::RuntimeError,
                    Self::TimeLimit,
                    Self::MemoryLimit,
                    Self::OutputLimit,
                ]
                .into_iter()
                .find(|status| status.api_name() == name)
                .unwrap_or(Self::InternalError)
            }
        }
    }
}
pub mod assistant {
    pub mod v1 {
        tonic::include_proto!("codesync.assistant.v1");

        impl Mode {
            /// Every mode a request may name, in the order the web app lists them.
            pub const ALL: [Self; 8] = [
                Self::Chat,
                Self::Explain,
                Self::Generate,
                Self::Complete,
                Self::Review,
                Self::Debug,
                Self::Refactor,
                Self::Docs,
            ];

            /// How the REST API, the `ai_interactions` table and `ai-events` spell a mode.
            pub fn api_name(self) -> &'static str {
                match self {
                    Self::Generate => "generate",
                    Self::Chat => "chat",
                    Self::Review => "review",
                    Self::Debug => "debug",
                    Self::Explain => "explain",
                    Self::Refactor => "refactor",
                    Self::Complete => "complete",
                    Self::Docs => "docs",
                    Self::Unspecified => "unspecified",
                }
            }

            pub fn from_api_name(name: &str) -> Option<Self> {
                Self::ALL.into_iter().find(|mode| mode.api_name() == name)
            }
        }
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

#[cfg(test)]
mod tests {
    use super::rooms::v1::Role;

    #[test]
    fn roles_have_one_spelling_each_way() {
        for role in Role::NAMED {
            let name = role.name().expect("a named role");
            assert_eq!(Role::from_name(name), Some(role));
            assert_eq!(Role::of(role as i32), role);
        }
        assert_eq!(Role::Unspecified.name(), None);
        assert_eq!(Role::from_name("admin"), None);
        assert_eq!(Role::of(99), Role::Unspecified);
        assert!(Role::Owner.can_write() && Role::Editor.can_write());
        assert!(!Role::Viewer.can_write() && !Role::Unspecified.can_write());
    }
}
