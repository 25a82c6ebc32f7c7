//! # protoactor-codegen
//!
//! Typed grains from .proto services, at build time. In `build.rs`:
//!
//! ```no_run
//! use std::time::Duration;
//! use protoactor_codegen::MethodOptions;
//!
//! fn main() -> std::io::Result<()> {
//!     protoactor_codegen::configure()
//!         // Per-rpc options, by full name: `package.Service/Method`.
//!         .method("demo.Ponger/Relay", MethodOptions::default().reentrant().timeout(Duration::from_secs(2)))
//!         .compile(&["protos/ponger.proto"], &["protos"])
//! }
//! ```
//!
//! where `protos/ponger.proto` is
//!
//! ```text
//! syntax = "proto3";
//! package demo;
//! message PingMessage { uint64 cnt = 1; }
//! message PongMessage { uint64 cnt = 1; }
//! service Ponger {
//!   rpc Ping(PingMessage) returns (PongMessage);
//!   rpc Relay(PingMessage) returns (PongMessage);
//! }
//! ```
//!
//! compiles the messages with prost (a vendored protoc: no system protoc
//! needed) and, for every service, writes next to them:
//!
//! * `trait PongerGrain` — what the grain implements: one method per rpc,
//!   `async fn ping(&mut self, request: PingMessage, ctx: &mut Context) ->
//!   Result<PongMessage, GrainError>`, and the hooks `init` (with the grain's
//!   `ClusterIdentity`), `terminate` (passivation or shutdown) and
//!   `receive_default` (any other message). A [reentrant](MethodOptions::reentrant)
//!   rpc's method instead returns a future that does not borrow the grain:
//!   the grain handles other messages while it runs;
//! * `PongerActor<G>` — the actor that dispatches requests to the methods and
//!   answers with the response or a `GrainErrorResponse`, so a caller gets
//!   the grain's error at once, not a timeout. A panicking method is answered
//!   with reason `panic` and is then a failure the supervisor handles (the
//!   grain restarts);
//! * `PongerKind::new(|| MyPonger::default()).with_idle_timeout(d).into_kind()`
//!   — the cluster `Kind` named `PONGER_KIND` (`"Ponger"`);
//! * `PongerClient::new(&cluster, "ponger-1").ping(request, &CallOptions::default())`
//!   — one async method per rpc, through `Cluster::request_with` (per-call
//!   timeout, deadline and retries; an rpc's [`MethodOptions`] give the
//!   defaults), returning `Result<_, CallError>`;
//! * `register_ponger_messages(remote_config)` — registers every message of
//!   the service's package (and the rpc types) with the remote serializer.
//!
//! The rustdoc of each generated item comes from the .proto comments.
//! Streaming rpcs are refused at build time.
//!
//! The generated code calls the run-time crate `protoactor-grain` (as
//! `::protoactor_grain`): the crate using it depends on `protoactor-grain`
//! and `prost`, and on `protoactor-codegen` only under
//! `[build-dependencies]`, as with tonic and tonic-build.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod generator;

pub use generator::MethodOptions;

/// A user adjustment of the prost-build configuration.
type Tweak = Box<dyn FnOnce(&mut prost_build::Config)>;

/// A code generation run; see [`configure`].
pub struct Builder {
    out_dir: Option<PathBuf>,
    tweaks: Vec<Tweak>,
    methods: HashMap<String, MethodOptions>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("out_dir", &self.out_dir)
            .field("tweaks", &self.tweaks.len())
            .field("methods", &self.methods)
            .finish()
    }
}

/// Starts a code generation run with the defaults: output to `OUT_DIR`,
/// prost type names on (the remote registry needs them).
pub fn configure() -> Builder {
    Builder { out_dir: None, tweaks: Vec::new(), methods: HashMap::new() }
}

impl Builder {
    /// Writes the generated files to `dir` instead of `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Adjusts the prost-build configuration (extern paths, attributes…)
    /// before the run. The service generator, protoc and type names are set
    /// by the builder.
    pub fn prost_config(mut self, tweak: impl FnOnce(&mut prost_build::Config) + 'static) -> Self {
        self.tweaks.push(Box::new(tweak));
        self
    }

    /// Sets the options of one rpc, named `package.Service/Method` as in the
    /// .proto (`Method` as declared, e.g. `tests.bank.Account/Deposit`).
    /// [`compile`](Self::compile) fails if no compiled service has that rpc.
    pub fn method(mut self, rpc: impl Into<String>, options: MethodOptions) -> Self {
        self.methods.insert(rpc.into(), options);
        self
    }

    /// Compiles `protos` (found under `includes`; the well-known types are
    /// always available) into one Rust file per package. Fails, naming the
    /// rpc, if a service has a streaming rpc or uses `google.protobuf.Empty`,
    /// or if a [`method`](Self::method) names an rpc that does not exist.
    pub fn compile(self, protos: &[impl AsRef<Path>], includes: &[impl AsRef<Path>]) -> std::io::Result<()> {
        let protoc = protoc_bin_vendored::protoc_bin_path().map_err(std::io::Error::other)?;
        let well_known = protoc_bin_vendored::include_path().map_err(std::io::Error::other)?;
        let mut config = prost_build::Config::new();
        config.protoc_executable(protoc);
        config.enable_type_names();
        if let Some(dir) = &self.out_dir {
            config.out_dir(dir);
        }
        for tweak in self.tweaks {
            tweak(&mut config);
        }
        let mut include_dirs: Vec<PathBuf> = includes.iter().map(|p| p.as_ref().to_path_buf()).collect();
        include_dirs.push(well_known);
        if std::env::var_os("CARGO_MANIFEST_DIR").is_some() && self.out_dir.is_none() {
            for p in protos {
                println!("cargo:rerun-if-changed={}", p.as_ref().display());
            }
        }
        let fds = config.load_fds(protos, &include_dirs)?;
        let mut problems = generator::unsupported_rpcs(&fds);
        problems.extend(generator::unknown_methods(&fds, self.methods.keys()));
        if !problems.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("protoactor-codegen: {}", problems.join("; ")),
            ));
        }
        let messages = generator::messages_by_package(&fds);
        config.service_generator(Box::new(generator::GrainGenerator { messages, methods: self.methods }));
        config.compile_fds(fds)
    }
}
