//! The gRPC contract of CodeSync: one module per service, package
//! `codesync.<service>.v1`, plus the file descriptor set that reflection serves.

pub mod pieces;
pub mod rpcs;

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

        impl VersionKind {
            /// How the REST API, the `file_versions` table and the room log spell a kind.
            pub fn name(self) -> &'static str {
                match self {
                    Self::Checkpoint => "checkpoint",
                    Self::Restore => "restore",
                    Self::Save | Self::Unspecified => "save",
                }
            }
        }
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

/// The events the services publish on the bus (SPEC "Events"), package `codesync.events.v1`.
pub mod events {
    pub mod v1 {
        tonic::include_proto!("codesync.events.v1");

        pub const ROOM_EVENTS: &str = "room-events";
        pub const COLLABORATION_EVENTS: &str = "collaboration-events";
        pub const EXECUTION_EVENTS: &str = "execution-events";
        pub const AI_EVENTS: &str = "ai-events";
        pub const NOTIFICATION_EVENTS: &str = "notification-events";
        pub const ANALYTICS_EVENTS: &str = "analytics-events";
        pub const DEAD_LETTER_EVENTS: &str = "dead-letter-events";

        /// Every topic, as SPEC "Events" lists them.
        pub const TOPICS: [&str; 7] = [
            ROOM_EVENTS,
            COLLABORATION_EVENTS,
            EXECUTION_EVENTS,
            AI_EVENTS,
            NOTIFICATION_EVENTS,
            ANALYTICS_EVENTS,
            DEAD_LETTER_EVENTS,
        ];

        /// Every kind's name, as [`event::Kind::name`] spells it (the test
        /// `every_kind_is_named_as_in_the_proto` holds both to the proto's oneof).
        pub const KIND_NAMES: [&str; 19] = [
            "member_joined",
            "member_role_changed",
            "member_removed",
            "room_created",
            "room_deleted",
            "file_created",
            "file_renamed",
            "file_deleted",
            "version_created",
            "activity",
            "room_presence",
            "execution_finished",
            "ai_request_finished",
            "system_notice",
            "notification_created",
            "user_registered",
            "session_started",
            "session_ended",
            "dead_letter",
        ];

        impl event::Kind {
            /// The kind's name: the oneof field's name, as logs, the room log and analytics
            /// spell it.
            pub fn name(&self) -> &'static str {
                use event::Kind;
                match self {
                    Kind::MemberJoined(_) => "member_joined",
                    Kind::MemberRoleChanged(_) => "member_role_changed",
                    Kind::MemberRemoved(_) => "member_removed",
                    Kind::RoomCreated(_) => "room_created",
                    Kind::RoomDeleted(_) => "room_deleted",
                    Kind::FileCreated(_) => "file_created",
                    Kind::FileRenamed(_) => "file_renamed",
                    Kind::FileDeleted(_) => "file_deleted",
                    Kind::VersionCreated(_) => "version_created",
                    Kind::Activity(_) => "activity",
                    Kind::RoomPresence(_) => "room_presence",
                    Kind::ExecutionFinished(_) => "execution_finished",
                    Kind::AiRequestFinished(_) => "ai_request_finished",
                    Kind::SystemNotice(_) => "system_notice",
                    Kind::NotificationCreated(_) => "notification_created",
                    Kind::UserRegistered(_) => "user_registered",
                    Kind::SessionStarted(_) => "session_started",
                    Kind::SessionEnded(_) => "session_ended",
                    Kind::DeadLetter(_) => "dead_letter",
                }
            }

            /// Activity and analytics events: a full queue may drop them, counted, because a
            /// later event says as much (a file's next edits announce its activity again) or
            /// the loss only makes a count run low. Every other kind is durable: never dropped.
            pub fn may_be_dropped(&self) -> bool {
                use event::Kind;
                matches!(
                    self,
                    Kind::Activity(_)
                        | Kind::RoomPresence(_)
                        | Kind::AiRequestFinished(_)
                        | Kind::NotificationCreated(_)
                        | Kind::UserRegistered(_)
                        | Kind::SessionStarted(_)
                )
            }

            /// The topic every event of this kind goes to.
            pub fn topic(&self) -> &'static str {
                use event::Kind;
                match self {
                    Kind::MemberJoined(_)
                    | Kind::MemberRoleChanged(_)
                    | Kind::MemberRemoved(_)
                    | Kind::RoomCreated(_)
                    | Kind::RoomDeleted(_)
                    | Kind::FileCreated(_)
                    | Kind::FileRenamed(_)
                    | Kind::FileDeleted(_)
                    | Kind::VersionCreated(_) => ROOM_EVENTS,
                    Kind::Activity(_) | Kind::RoomPresence(_) => COLLABORATION_EVENTS,
                    Kind::ExecutionFinished(_) => EXECUTION_EVENTS,
                    Kind::AiRequestFinished(_) => AI_EVENTS,
                    Kind::SystemNotice(_) | Kind::NotificationCreated(_) => NOTIFICATION_EVENTS,
                    Kind::UserRegistered(_) | Kind::SessionStarted(_) | Kind::SessionEnded(_) => ANALYTICS_EVENTS,
                    Kind::DeadLetter(_) => DEAD_LETTER_EVENTS,
                }
            }
        }
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
