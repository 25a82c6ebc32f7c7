//! `--lookup partition|redis|mongo` and `--lookup-url URL`: which identity lookup
//! every process of the demo uses. Redis and MongoDB need a running server
//! (`--lookup-url redis://127.0.0.1:6379/` or `--lookup-url mongodb://127.0.0.1:27017/`).

use std::sync::{Arc, OnceLock};

use protoactor_cluster::IdentityLookup;
use protoactor_identity_lookup_mongo::MongoIdentityLookup;
use protoactor_identity_lookup_partition::PartitionIdentityLookup;
use protoactor_identity_lookup_redis::RedisIdentityLookup;

/// The lookup chosen on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LookupChoice {
    Partition,
    Redis(String),
    Mongo(String),
}

static CHOICE: OnceLock<LookupChoice> = OnceLock::new();

/// `--lookup` and `--lookup-url`, on the demo and on each member process.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LookupOptions {
    /// Identity lookup: where grains are found and who activates them.
    #[arg(long, value_name = "NAME", value_enum, default_value_t = LookupName::Partition)]
    lookup: LookupName,
    /// The server for `--lookup redis|mongo`, e.g. `redis://127.0.0.1:6379/` or `mongodb://127.0.0.1:27017/`.
    #[arg(long, value_name = "URL")]
    lookup_url: Option<String>,
}

/// The lookups the demo can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LookupName {
    /// Owner found by hashing over the members (no server).
    Partition,
    /// Activations stored in Redis.
    Redis,
    /// Activations stored in MongoDB.
    Mongo,
}

/// Checks the options and remembers the choice for [`build`] (and for the
/// member processes, [`member_flags`]).
pub(crate) fn choose(options: &LookupOptions) -> Result<(), String> {
    let choice = match (options.lookup, options.lookup_url.clone()) {
        (LookupName::Partition, None) => LookupChoice::Partition,
        (LookupName::Partition, Some(_)) => {
            return Err("--lookup-url needs --lookup redis or --lookup mongo".into());
        }
        (LookupName::Redis, Some(url)) => LookupChoice::Redis(url),
        (LookupName::Mongo, Some(uri)) => LookupChoice::Mongo(uri),
        (name @ (LookupName::Redis | LookupName::Mongo), None) => {
            return Err(format!("--lookup {name:?} needs --lookup-url URL (the server to use)").to_lowercase());
        }
    };
    let _ = CHOICE.set(choice);
    Ok(())
}

/// The flags that give member processes the same lookup.
pub(crate) fn member_flags() -> Vec<String> {
    match CHOICE.get() {
        Some(LookupChoice::Redis(url)) => vec!["--lookup".into(), "redis".into(), "--lookup-url".into(), url.clone()],
        Some(LookupChoice::Mongo(uri)) => vec!["--lookup".into(), "mongo".into(), "--lookup-url".into(), uri.clone()],
        _ => Vec::new(),
    }
}

/// A new lookup of the chosen kind.
pub(crate) fn build() -> Result<Arc<dyn IdentityLookup>, String> {
    Ok(match CHOICE.get().unwrap_or(&LookupChoice::Partition) {
        LookupChoice::Partition => Arc::new(PartitionIdentityLookup::new()),
        LookupChoice::Redis(url) => Arc::new(RedisIdentityLookup::new(url).map_err(|e| e.to_string())?),
        LookupChoice::Mongo(uri) => Arc::new(MongoIdentityLookup::new(uri)),
    })
}
