//! A stable-toolchain stand-in for the `decode_batch` cargo-fuzz target
//! (crates/remote/fuzz): random and mutated-valid frames through the server's
//! decode path must never panic.

use prost::Message as _;
use protoactor_actor::proto as actor_proto;
use protoactor_remote::fuzz_decode_batch;
use protoactor_remote::proto::{ActorPidRequest, MessageBatch, MessageEnvelope, MessageHeader};

const CASES: usize = 20_000;

fn pid(rng: &mut fastrand::Rng) -> actor_proto::Pid {
    let address = if rng.bool() { String::new() } else { "10.0.0.1:4020".into() };
    actor_proto::Pid { address, id: format!("actor-{}", rng.u8(..)), request_id: rng.u32(..) }
}

/// A batch the server accepts, built from every kind of type it knows:
/// built-in system messages, registered JSON and protobuf types, an unknown name.
fn valid_batch(rng: &mut fastrand::Rng) -> Vec<u8> {
    let type_names: Vec<String> = [
        "actor.Watch",
        "actor.Unwatch",
        "actor.Terminated",
        "actor.Stop",
        "actor.PoisonPill",
        "actor.DeadLetterResponse",
        "fuzz.Json",
        "remote.ActorPidRequest",
        "nobody.Knows",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let targets = (0..rng.usize(1..4)).map(|i| format!("target-{i}")).collect::<Vec<_>>();
    let senders = (0..rng.usize(0..3)).map(|_| pid(rng)).collect::<Vec<_>>();
    let envelopes = (0..rng.usize(1..8))
        .map(|_| {
            let type_id = rng.usize(..type_names.len());
            let (message_data, serializer_id) = match type_names[type_id].as_str() {
                "actor.Watch" => (actor_proto::Watch { watcher: Some(pid(rng)) }.encode_to_vec(), 0),
                "actor.Unwatch" => (actor_proto::Unwatch { watcher: Some(pid(rng)) }.encode_to_vec(), 0),
                "actor.Terminated" => {
                    (actor_proto::Terminated { who: Some(pid(rng)), why: rng.i32(-1..5) }.encode_to_vec(), 0)
                }
                "actor.DeadLetterResponse" => {
                    (actor_proto::DeadLetterResponse { target: Some(pid(rng)) }.encode_to_vec(), 0)
                }
                "fuzz.Json" => (format!(r#"{{"n":{},"s":"x","v":[1,2]}}"#, rng.u32(..)).into_bytes(), 1),
                "remote.ActorPidRequest" => {
                    (ActorPidRequest { name: "n".into(), kind: "k".into() }.encode_to_vec(), rng.i32(0..2))
                }
                _ => (Vec::new(), 0),
            };
            MessageEnvelope {
                type_id: type_id as i32,
                message_data,
                target: rng.i32(0..targets.len() as i32),
                sender: rng.i32(0..=senders.len() as i32),
                serializer_id,
                message_header: rng.bool().then(|| MessageHeader {
                    header_data: [("trace".to_string(), "abc".to_string())].into_iter().collect(),
                }),
                target_request_id: rng.u32(..),
                sender_request_id: rng.u32(..),
            }
        })
        .collect();
    MessageBatch { type_names, targets, envelopes, senders }.encode_to_vec()
}

fn mutate(rng: &mut fastrand::Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.usize(1..4) {
        match rng.u8(0..5) {
            0 if !bytes.is_empty() => {
                let i = rng.usize(..bytes.len());
                bytes[i] ^= 1 << rng.u8(0..8);
            }
            1 if !bytes.is_empty() => {
                let i = rng.usize(..bytes.len());
                bytes[i] = rng.u8(..);
            }
            2 => bytes.truncate(rng.usize(..=bytes.len())),
            3 => {
                let i = rng.usize(..=bytes.len());
                bytes.insert(i, rng.u8(..));
            }
            _ if !bytes.is_empty() => {
                // Varints and lengths are where decoders go wrong: make one huge.
                let i = rng.usize(..bytes.len());
                bytes[i] = 0xFF;
            }
            _ => {}
        }
    }
    bytes
}

#[test]
fn random_and_mutated_frames_never_panic() {
    let mut rng = fastrand::Rng::with_seed(0x5EED_F0CC);
    let (mut valid, mut mutated_decoded) = (0, 0);
    for case in 0..CASES {
        let bytes = match case % 4 {
            0 => (0..rng.usize(0..256)).map(|_| rng.u8(..)).collect(),
            1 => valid_batch(&mut rng),
            _ => {
                let valid = valid_batch(&mut rng);
                mutate(&mut rng, valid)
            }
        };
        if MessageBatch::decode(bytes.as_slice()).is_ok_and(|b| !b.envelopes.is_empty()) {
            match case % 4 {
                1 => valid += 1,
                0 => {}
                _ => mutated_decoded += 1,
            }
        }
        let _ = fuzz_decode_batch(&bytes);
    }
    // Guards against a generator that never reaches the per-envelope decoding.
    assert_eq!(valid, CASES / 4, "every generated valid batch decodes");
    assert!(mutated_decoded > CASES / 20, "only {mutated_decoded} mutated inputs still decoded to a batch");
}

/// `sender` is a 1-based index on the wire (0: no sender); the most negative
/// i32 must be refused like any other bad index, not overflow while
/// subtracting one. The in-range indexes beside them are delivered, so the
/// refusals are for the index, not for the rest of the envelope.
#[test]
fn most_negative_sender_index_is_rejected() {
    let decode = |sender: i32| {
        let batch = MessageBatch {
            type_names: vec!["actor.Stop".into()],
            targets: vec!["t".into()],
            envelopes: vec![MessageEnvelope { sender, ..Default::default() }],
            senders: vec![actor_proto::Pid { address: String::new(), id: "s".into(), request_id: 0 }],
        };
        let outcomes = fuzz_decode_batch(&batch.encode_to_vec()).expect("the frame is a batch");
        assert_eq!(outcomes.len(), 1);
        outcomes.into_iter().next().expect("one outcome")
    };
    for sender in [0, 1] {
        assert_eq!(decode(sender), Ok(()), "sender index {sender} is in range");
    }
    for sender in [i32::MIN, -1, 2, i32::MAX] {
        let refused = decode(sender).expect_err("an out-of-range sender index is refused");
        assert!(refused.contains("sender index out of range"), "sender {sender}: {refused}");
    }
}
