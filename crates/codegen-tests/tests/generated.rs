//! The generator's output: a reviewed snapshot, and the build-time errors.

#![forbid(unsafe_code)]
use std::path::{Path, PathBuf};

/// The generated code of `protos/bank.proto` must match the checked-in
/// snapshot, so every change to the generator shows up in review.
/// `UPDATE_SNAPSHOTS=1 cargo test -p protoactor-codegen-tests --test generated`
/// rewrites the snapshot.
#[test]
fn generated_code_matches_the_snapshot() {
    let snapshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/tests.bank.rs");
    let generated = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/tests.bank.rs")).expect("generated file");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &generated).expect("write the snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&snapshot).expect("snapshot file (UPDATE_SNAPSHOTS=1 creates it)");
    if generated != expected {
        let first = generated.lines().zip(expected.lines()).position(|(g, e)| g != e);
        panic!(
            "the generated code changed (first differing line: {}); review it and run with UPDATE_SNAPSHOTS=1",
            first.map_or_else(|| "past the end of one file".to_string(), |i| (i + 1).to_string())
        );
    }
}

/// A fresh temp directory holding `name` with `content`.
fn proto_in_temp_dir(test: &str, name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("protoactor-codegen-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join(name), content).expect("write proto");
    dir
}

fn compile(dir: &Path, name: &str) -> std::io::Result<()> {
    protoactor_codegen::configure().out_dir(dir).compile(&[dir.join(name)], &[dir])
}

#[test]
fn a_streaming_rpc_is_refused_naming_it() {
    let dir = proto_in_temp_dir(
        "streaming",
        "chat.proto",
        r#"syntax = "proto3";
package chat;
message Line { string text = 1; }
service Room {
  rpc Say(Line) returns (Line);
  rpc Listen(Line) returns (stream Line);
}
"#,
    );
    let error = compile(&dir, "chat.proto").expect_err("streaming rpcs are refused");
    let text = error.to_string();
    assert!(text.contains("chat.Room/Listen"), "{text}");
    assert!(text.contains("stream"), "{text}");
    assert!(!text.contains("chat.Room/Say"), "only the streaming rpc is named: {text}");
    assert!(!dir.join("chat.rs").exists(), "nothing generated");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_unary_service_in_a_temp_dir_generates_its_grain_code() {
    let dir = proto_in_temp_dir(
        "unary",
        "echo.proto",
        r#"syntax = "proto3";
package echo;
message Text { string text = 1; }
// Says things back.
service Echo {
  rpc Say(Text) returns (Text);
}
"#,
    );
    compile(&dir, "echo.proto").expect("a unary service compiles");
    let code = std::fs::read_to_string(dir.join("echo.rs")).expect("generated file");
    for item in [
        "pub trait EchoGrain",
        "pub struct EchoActor",
        "pub struct EchoKind",
        "pub struct EchoClient",
        "pub fn register_echo_messages",
        "/// Says things back.",
    ] {
        assert!(code.contains(item), "missing `{item}` in:\n{code}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn method_options_for_an_rpc_that_does_not_exist_are_refused_naming_it() {
    let dir = proto_in_temp_dir(
        "unknown-method",
        "echo.proto",
        r#"syntax = "proto3";
package echo;
message Text { string text = 1; }
service Echo {
  rpc Say(Text) returns (Text);
}
"#,
    );
    let error = protoactor_codegen::configure()
        .out_dir(&dir)
        .method("echo.Echo/Shout", protoactor_codegen::MethodOptions::default().reentrant())
        .compile(&[dir.join("echo.proto")], &[&dir])
        .expect_err("a typo in a method name is an error, not a silently ignored option");
    let text = error.to_string();
    assert!(text.contains("echo.Echo/Shout") && text.contains("echo.Echo/Say"), "{text}");
    assert!(!dir.join("echo.rs").exists(), "nothing generated");
    let _ = std::fs::remove_dir_all(&dir);
}
