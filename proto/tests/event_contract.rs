//! The event contract between versions. Within one build, producers and consumers share the
//! generated types, so a field renamed on one side does not compile. Across versions (a rolling
//! upgrade: a new producer, an old consumer, or an old event kept by Kafka or the outbox), they
//! agree only while the wire format only grows. `events.contract` records every field as it has
//! shipped: a field whose number or type changed, or that went away, fails here.

use std::collections::BTreeSet;
use std::path::PathBuf;

use codesync_proto::events::v1::{self as schema, KIND_NAMES, TOPICS};
use prost::Message as _;

const PROTO: &str = include_str!("../codesync/events/v1/events.proto");

fn contract_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("codesync/events/v1/events.contract")
}

/// One field of the proto as `Message.field = number type`, with the comment line above it that
/// names a topic, for the oneof's kinds.
#[derive(Debug)]
struct Field {
    message: String,
    name: String,
    number: u32,
    type_name: String,
    in_oneof: bool,
    topic_above: Option<String>,
}

fn fields() -> Vec<Field> {
    let mut fields = Vec::new();
    let (mut message, mut in_oneof, mut topic_above) = (None::<String>, false, None::<String>);
    for line in PROTO.lines().map(str::trim) {
        if let Some(comment) = line.strip_prefix("//") {
            if let Some(topic) = TOPICS.iter().find(|topic| comment.trim_start().starts_with(*topic)) {
                topic_above = Some(topic.to_string());
            }
            continue;
        }
        let words: Vec<&str> = line.trim_end_matches(';').split_whitespace().collect();
        match words.as_slice() {
            ["message", name, "{"] => message = Some(name.to_string()),
            ["oneof", _, "{"] => in_oneof = true,
            ["}"] if in_oneof => in_oneof = false,
            ["}"] => message = None,
            [field_type @ .., name, "=", number] if !field_type.is_empty() => {
                let message = message.clone().unwrap_or_else(|| panic!("a field outside a message: {line}"));
                fields.push(Field {
                    message,
                    name: name.to_string(),
                    number: number.parse().unwrap_or_else(|_| panic!("a field number: {line}")),
                    type_name: field_type.join(" "),
                    in_oneof,
                    topic_above: topic_above.clone(),
                });
            }
            _ => {}
        }
    }
    fields
}

fn contract_lines(fields: &[Field]) -> BTreeSet<String> {
    fields
        .iter()
        .map(|field| {
            let oneof = if field.in_oneof { " (kind)" } else { "" };
            format!("{}.{} = {} {}{oneof}", field.message, field.name, field.number, field.type_name)
        })
        .collect()
}

#[test]
fn the_event_contract_only_grows() {
    let now = contract_lines(&fields());
    assert!(now.len() > 50, "the proto was read: {now:?}");
    let path = contract_path();
    let shipped: BTreeSet<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect();
    let broken: Vec<&String> = shipped.difference(&now).collect();
    assert!(
        broken.is_empty(),
        "these fields shipped and are now changed or gone; consumers of other versions would misread \
         them (retire a field with `reserved`, add a new one with a new number): {broken:#?}"
    );
    let added: Vec<&String> = now.difference(&shipped).collect();
    if !added.is_empty() {
        if std::env::var_os("CODESYNC_BLESS").is_some() {
            let mut text = String::from(
                "# Every field of events.proto as it has shipped (proto/tests/event_contract.rs).\n\
                 # Lines are only ever added (CODESYNC_BLESS=1 cargo test -p codesync-proto).\n",
            );
            for line in shipped.union(&now) {
                text.push_str(line);
                text.push('\n');
            }
            std::fs::write(&path, text).expect("write the contract");
        } else {
            panic!(
                "new fields are not in {} yet; once they are right, record them with \
                 CODESYNC_BLESS=1 cargo test -p codesync-proto: {added:#?}",
                path.display()
            );
        }
    }
}

#[test]
fn every_kind_is_named_as_in_the_proto_and_goes_to_its_topic() {
    let kinds: Vec<Field> = fields().into_iter().filter(|field| field.in_oneof).collect();
    assert_eq!(kinds.len(), KIND_NAMES.len(), "KIND_NAMES lists every kind once");
    for kind in &kinds {
        // The envelope with this kind's field present (an empty message): what a producer of
        // any language would send.
        let mut bytes = schema::Event { id: "e".into(), ..Default::default() }.encode_to_vec();
        prost::encoding::encode_key(kind.number, prost::encoding::WireType::LengthDelimited, &mut bytes);
        bytes.push(0);
        let decoded = schema::Event::decode(bytes.as_slice()).expect("an envelope");
        let decoded = decoded.kind.unwrap_or_else(|| panic!("field {} is a kind", kind.number));
        assert_eq!(decoded.name(), kind.name, "the name of field {}", kind.number);
        assert!(KIND_NAMES.contains(&decoded.name()), "{} is in KIND_NAMES", kind.name);
        assert_eq!(Some(decoded.topic()), kind.topic_above.as_deref(), "the topic of {}", kind.name);
    }
}
