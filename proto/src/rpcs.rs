//! Every RPC of the contract with its shape, read from the descriptor set that `build.rs` made
//! from the `.proto` files, so that which calls stream is written down once, in the contract.

use prost::Message;

/// One RPC: its HTTP/2 path and which sides stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rpc {
    /// `/codesync.rooms.v1.RoomsService/ImportFiles`.
    pub path: String,
    pub client_streaming: bool,
    pub server_streaming: bool,
}

impl Rpc {
    /// A call that stays open for as long as its client wants (a document's collaboration, a
    /// room's presence, a notification feed, an answer or a run streaming back): what the
    /// gateway counts as a WebSocket or an event stream.
    pub fn is_long_lived(&self) -> bool {
        self.client_streaming || self.server_streaming
    }
}

/// The RPCs of every CodeSync service (not health or reflection).
pub fn all() -> Vec<Rpc> {
    let Ok(set) = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET) else {
        return Vec::new();
    };
    let mut rpcs = Vec::new();
    for file in set.file {
        let package = file.package.clone().unwrap_or_default();
        if !package.starts_with("codesync.") {
            continue;
        }
        for service in &file.service {
            let service_name = service.name.clone().unwrap_or_default();
            for method in &service.method {
                rpcs.push(Rpc {
                    path: format!("/{package}.{service_name}/{}", method.name.clone().unwrap_or_default()),
                    client_streaming: method.client_streaming.unwrap_or(false),
                    server_streaming: method.server_streaming.unwrap_or(false),
                });
            }
        }
    }
    rpcs
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_contract_s_rpcs_and_their_shapes_are_read_from_the_descriptors() {
        let rpcs = super::all();
        let find = |path: &str| rpcs.iter().find(|rpc| rpc.path == path).unwrap_or_else(|| panic!("{path}"));
        let collaborate = find("/codesync.documents.v1.DocumentsService/Collaborate");
        assert!(collaborate.client_streaming && collaborate.server_streaming);
        assert!(find("/codesync.notifications.v1.NotificationsService/Subscribe").is_long_lived());
        assert!(!find("/codesync.rooms.v1.RoomsService/ImportFiles").is_long_lived());
        let long_lived: Vec<&str> =
            rpcs.iter().filter(|rpc| rpc.is_long_lived()).map(|rpc| rpc.path.rsplit('/').next().unwrap()).collect();
        let mut long_lived = long_lived;
        long_lived.sort_unstable();
        assert_eq!(long_lived, ["Ask", "Collaborate", "ExecuteStream", "JoinRoom", "Subscribe"]);
    }
}
