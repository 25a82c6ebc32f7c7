//! The cluster's wire format is frozen: each message below must encode to
//! the bytes checked in under `tests/golden/`. A failure means the protos
//! changed incompatibly (a renumbered field, a changed type). If the change
//! is intended, regenerate with `UPDATE_GOLDEN=1 cargo test -p
//! protoactor-cluster --test golden` and say so in the change.

#![forbid(unsafe_code)]
use std::collections::HashMap;
use std::path::PathBuf;

use prost::Message;
use protoactor_actor::proto::Pid as PidProto;
use protoactor_cluster::proto::*;

fn pid() -> PidProto {
    PidProto { address: "10.0.0.1:8090".into(), id: "echo/a$1".into(), request_id: 7 }
}

fn ci() -> ClusterIdentity {
    ClusterIdentity { identity: "a".into(), kind: "echo".into() }
}

fn member(n: u8) -> Member {
    Member { host: format!("10.0.0.{n}"), port: 8090, id: format!("member-{n}"), kinds: vec!["echo".into()] }
}

fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let mut state = HashMap::new();
    let mut values = HashMap::new();
    values.insert(
        "cluster:heartbeat".to_string(),
        GossipKeyValue {
            sequence_number: 3,
            value: Some(prost_types::Any {
                type_url: "type.googleapis.com/cluster.MemberHeartbeat".into(),
                value: MemberHeartbeat {
                    actor_statistics: Some(ActorStatistics { actor_count: HashMap::from([("echo".into(), 2)]) }),
                }
                .encode_to_vec(),
            }),
            local_timestamp_unix_milliseconds: 1_700_000_000_000,
        },
    );
    state.insert("member-1".to_string(), gossip_state::GossipMemberState { values });
    vec![
        ("cluster_identity", ci().encode_to_vec()),
        ("member", member(1).encode_to_vec()),
        (
            "cluster_topology",
            ClusterTopology {
                topology_hash: 0x54d4_deef_bcee_2976,
                members: vec![member(1), member(2)],
                joined: vec![member(2)],
                left: vec![member(3)],
                blocked: vec!["member-3".into()],
            }
            .encode_to_vec(),
        ),
        (
            "activation_request",
            ActivationRequest { cluster_identity: Some(ci()), request_id: "r1".into(), topology_hash: 42 }
                .encode_to_vec(),
        ),
        (
            "activation_response",
            ActivationResponse {
                pid: Some(pid()),
                failed: false,
                topology_hash: 42,
                invalid_identity: false,
                error: String::new(),
            }
            .encode_to_vec(),
        ),
        (
            "activation_terminated",
            ActivationTerminated { pid: Some(pid()), cluster_identity: Some(ci()) }.encode_to_vec(),
        ),
        (
            "identity_handover_request",
            IdentityHandoverRequest {
                current_topology: Some(identity_handover_request::Topology {
                    topology_hash: 42,
                    members: vec![member(1)],
                }),
                address: "10.0.0.1:8090".into(),
                delta_topology: None,
            }
            .encode_to_vec(),
        ),
        (
            "identity_handover",
            IdentityHandover {
                actors: vec![Activation { pid: Some(pid()), cluster_identity: Some(ci()) }],
                chunk_id: 1,
                r#final: true,
                topology_hash: 42,
                skipped: 0,
                sent: 1,
            }
            .encode_to_vec(),
        ),
        (
            "gossip_request",
            // One member state only: map order is not deterministic.
            GossipRequest {
                state: Some(GossipState { members: state }),
                member_id: "member-2".into(),
                request_id: "g1".into(),
            }
            .encode_to_vec(),
        ),
        ("gossip_response", GossipResponse { state: None, rejected: true }.encode_to_vec()),
        (
            "member_suspicions",
            MemberSuspicions { member_ids: vec!["member-2".into(), "member-3".into()] }.encode_to_vec(),
        ),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn encodings_match_the_checked_in_bytes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for (name, bytes) in samples() {
        let path = dir.join(format!("{name}.hex"));
        if update {
            std::fs::write(&path, hex(&bytes) + "\n").expect("write golden file");
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1 to create it", path.display()));
        if expected.trim() != hex(&bytes) {
            mismatches.push(format!("{name}: expected {} got {}", expected.trim(), hex(&bytes)));
        }
    }
    assert!(mismatches.is_empty(), "wire format changed:\n{}", mismatches.join("\n"));
}

#[test]
fn golden_bytes_decode_back() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let read = |name: &str| -> Vec<u8> {
        let text = std::fs::read_to_string(dir.join(format!("{name}.hex"))).expect("golden file");
        let text = text.trim();
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
    };
    assert_eq!(ClusterIdentity::decode(&*read("cluster_identity")).expect("decode"), ci());
    let t = ClusterTopology::decode(&*read("cluster_topology")).expect("decode");
    assert_eq!(t.members, vec![member(1), member(2)]);
    assert_eq!(t.blocked, vec!["member-3".to_string()]);
    let h = IdentityHandover::decode(&*read("identity_handover")).expect("decode");
    assert_eq!(h.actors[0].pid, Some(pid()));
    assert!(h.r#final);
}
