//! Multi-member cluster tests, one module per subject, in one test binary
//! (one link instead of one per file: faster and smaller builds).

#![forbid(unsafe_code)]
mod activation;
mod churn;
mod clients;
mod graceful_leave;
mod handover_chunks;
mod join_rebalance;
mod member_kill;
mod node_loss;
mod ordering;
mod passivation;
mod persistence;
mod pid_cache;
mod process_kill;
mod provider_expiry;
mod requests;
mod restarts_under_load;
mod smoke;
mod suspicion;
