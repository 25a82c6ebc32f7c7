//! # protoactor-testkit
//!
//! Fixtures for tests against real servers: each fixture starts its own
//! server process on free loopback ports with a temporary data directory,
//! waits until it answers, and stops it and removes the directory when
//! dropped. A missing server binary is an error that names the command that
//! installs it, never a silent skip. Servers: [`etcd`], [`zookeeper`],
//! [`redis`] and [`mongo`] (the SecantusDB stand-in, or a real MongoDB from
//! `MONGODB_URI`).
//!
//! With the `cluster` feature, [`cluster`] adds what the cluster provider
//! tests share: an echo grain kind and poll-with-deadline helpers. With
//! `persistence`, the `persistence` module is the conformance suite of
//! persistence providers; with `postgres`, the `postgres` module starts a
//! real PostgreSQL.
//! With the `lookup` feature, the `lookup` module is the identity lookup conformance suite.
//! With `provider`, the `provider` module is the cluster provider conformance suite.
//!
//! ```no_run
//! use std::time::Duration;
//! use protoactor_testkit::service::{ServiceProcess, free_port};
//!
//! let port = free_port();
//! let mut server = ServiceProcess::start("echo-server", "sleep", &["60"], "apt-get install coreutils")
//!     .expect("the binary exists");
//! server.wait_until(Duration::from_secs(5), || true).expect("ready");
//! # let _ = port;
//! ```

#![forbid(unsafe_code)]

#[cfg(feature = "cluster")]
pub mod cluster;
pub mod etcd;
#[cfg(feature = "lookup")]
pub mod lookup;
pub mod mongo;
#[cfg(feature = "persistence")]
pub mod persistence;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "provider")]
pub mod provider;
pub mod redis;
pub mod service;
pub mod zookeeper;
