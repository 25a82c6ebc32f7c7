//! `--lookup partition|redis|mongo` and `--store URL`: which identity lookup
//! every process of the demo uses. Redis and MongoDB need a running server
//! (`--store redis://127.0.0.1:6379/` or `--store mongodb://127.0.0.1:27017/`).

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

/// Help text for the two flags.
pub(crate) const USAGE: &str = "  --lookup NAME   identity lookup: partition (default), redis or mongo\n  --store URL     the Redis or MongoDB server for --lookup redis|mongo";

/// Removes `--lookup NAME` and `--store URL` from `args` and remembers the
/// choice for [`build`] (and for the member processes, [`member_flags`]).
pub(crate) fn take_flags(args: &mut Vec<String>) -> Result<(), String> {
    let mut take = |flag: &str| -> Result<Option<String>, String> {
        let Some(i) = args.iter().position(|a| a == flag) else { return Ok(None) };
        if i + 1 >= args.len() {
            return Err(format!("{flag} needs a value"));
        }
        let value = args.remove(i + 1);
        args.remove(i);
        Ok(Some(value))
    };
    let lookup = take("--lookup")?;
    let store = take("--store")?;
    let choice = match (lookup.as_deref(), store) {
        (None | Some("partition"), None) => LookupChoice::Partition,
        (None | Some("partition"), Some(_)) => return Err("--store needs --lookup redis or --lookup mongo".into()),
        (Some("redis"), Some(url)) => LookupChoice::Redis(url),
        (Some("mongo"), Some(uri)) => LookupChoice::Mongo(uri),
        (Some(name @ ("redis" | "mongo")), None) => {
            return Err(format!("--lookup {name} needs --store URL (the server to use)"));
        }
        (Some(other), _) => return Err(format!("unknown lookup `{other}`; use partition, redis or mongo")),
    };
    let _ = CHOICE.set(choice);
    Ok(())
}

/// The flags that give member processes the same lookup.
pub(crate) fn member_flags() -> Vec<String> {
    match CHOICE.get() {
        Some(LookupChoice::Redis(url)) => vec!["--lookup".into(), "redis".into(), "--store".into(), url.clone()],
        Some(LookupChoice::Mongo(uri)) => vec!["--lookup".into(), "mongo".into(), "--store".into(), uri.clone()],
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
