//! What `ping_pong_member` and `ping_pong_client` share: the `Ponger`
//! service generated from `ping_pong/ponger.proto` (messages, grain trait,
//! kind, client, message registration), the cluster and kind names, and a
//! little command-line parsing.

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

/// The value of `--flag VALUE`, else of the environment variable `env`,
/// else `None`. Flags are read from `args` (program name skipped).
pub(crate) fn flag_or_env(args: &[String], flag: &str, env: &str) -> Option<String> {
    let from_flag = args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    from_flag.or_else(|| std::env::var(env).ok().filter(|v| !v.is_empty()))
}

/// `flag_or_env` parsed as a number.
pub(crate) fn number<T: std::str::FromStr>(args: &[String], flag: &str, env: &str) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    match flag_or_env(args, flag, env) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|e| format!("{flag} (or {env}) `{v}`: {e}")),
    }
}

/// Refuses flags this program does not know (and flags missing their value).
pub(crate) fn check_flags(args: &[String], known: &[&str]) -> Result<(), String> {
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if !known.contains(&arg.as_str()) {
            return Err(format!("unknown argument `{arg}`"));
        }
        if args.get(i + 1).is_none() {
            return Err(format!("{arg} needs a value"));
        }
        i += 2;
    }
    Ok(())
}

/// A program's `main`: `--help` prints `usage`; arguments that do not parse
/// exit 2; otherwise `run` runs on a two-worker runtime and its error, if
/// any, is printed and exits 1.
pub(crate) fn program<A, F>(
    name: &str,
    usage: &str,
    parse: fn() -> Result<A, String>,
    run: fn(A) -> F,
) -> std::process::ExitCode
where
    F: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("{usage}");
        return std::process::ExitCode::SUCCESS;
    }
    let args = match parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{name}: {e}\n{usage}");
            return std::process::ExitCode::from(2);
        }
    };
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
