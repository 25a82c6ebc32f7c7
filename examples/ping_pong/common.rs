//! What `ping_pong_member` and `ping_pong_client` share: the `Ponger`
//! service generated from `ping_pong/ponger.proto` (messages, grain trait,
//! kind, client, message registration), the cluster and kind names, and the
//! programs' `main`.

/// The generated code of `ping_pong/ponger.proto` (package `ping_pong`):
/// the messages, and the `Ponger` grain trait, actor, kind and client.
#[allow(missing_docs, unreachable_pub, dead_code)]
pub(crate) mod ponger {
    include!(concat!(env!("OUT_DIR"), "/ping_pong.rs"));
}

/// The cluster both programs join.
pub(crate) const CLUSTER: &str = "ping-pong";
/// The grain kind the member hosts.
pub(crate) const KIND: &str = ponger::PONGER_KIND;

/// Remoting on `host:port` that can carry the Ponger messages (registered
/// by the generated function, under `ping_pong.PingMessage` and so on).
pub(crate) fn remote_config(host: &str, port: u16) -> protoactor_remote::RemoteConfig {
    ponger::register_ponger_messages(protoactor_remote::RemoteConfig::bind(host, port))
}

/// Logs to stderr only when `RUST_LOG` is set: the programs' own lines are
/// the output.
pub(crate) fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// A program's `main`: parses `A` from the command line (`--help` lists
/// every flag and its default; bad arguments exit 2), then runs `run` on a
/// two-worker runtime; its error, if any, is printed and exits 1.
pub(crate) fn program<A, F>(name: &str, run: fn(A) -> F) -> std::process::ExitCode
where
    A: clap::Parser,
    F: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    let args = A::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start a tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
