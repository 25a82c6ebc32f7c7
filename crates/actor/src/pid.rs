//! Process identifiers.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};

use crate::process::ProcessRef;
use crate::proto;

/// The address of processes that live in a system without remoting.
pub const LOCAL_ADDRESS: &str = "nonhost";

/// Identifies a process (an actor, a future, a router...) by the address of
/// the system it lives in and its id there.
///
/// A `Pid` is a cheap handle (cloning bumps a reference count). It mirrors the
/// `actor.PID` protobuf message field for field; [`Pid::to_proto`] and
/// [`Pid::from_proto`] convert for the wire. The first local resolution is
/// cached inside the handle, so sending through a `Pid` you already hold
/// takes no lock and no map lookup.
#[derive(Clone)]
pub struct Pid(Arc<PidInner>);

struct PidInner {
    address: Arc<str>,
    id: Arc<str>,
    request_id: u32,
    cached: OnceLock<Cached>,
}

/// A resolved process, valid only for the system that resolved it.
struct Cached {
    system: usize,
    process: ProcessRef,
}

impl Pid {
    /// A pid for `id` at `address`.
    pub fn new(address: impl Into<Arc<str>>, id: impl Into<Arc<str>>) -> Self {
        Pid::with_request_id(address, id, 0)
    }

    /// A pid that also carries a request id.
    pub fn with_request_id(address: impl Into<Arc<str>>, id: impl Into<Arc<str>>, request_id: u32) -> Self {
        Pid(Arc::new(PidInner { address: address.into(), id: id.into(), request_id, cached: OnceLock::new() }))
    }

    pub(crate) fn resolved(address: Arc<str>, id: Arc<str>, system: usize, process: ProcessRef) -> Self {
        let cached = OnceLock::new();
        let _ = cached.set(Cached { system, process });
        Pid(Arc::new(PidInner { address, id, request_id: 0, cached }))
    }

    /// The address of the system the process lives in (`host:port`, or
    /// [`LOCAL_ADDRESS`] before remoting starts).
    pub fn address(&self) -> &str {
        &self.0.address
    }

    /// The process id, unique within its system.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The request id (0 unless this pid stands for one pending request).
    pub fn request_id(&self) -> u32 {
        self.0.request_id
    }

    /// The id as a shared string (no copy).
    pub fn id_arc(&self) -> &Arc<str> {
        &self.0.id
    }

    /// The address as a shared string (no copy).
    pub fn address_arc(&self) -> &Arc<str> {
        &self.0.address
    }

    /// The protobuf form, for the wire.
    pub fn to_proto(&self) -> proto::Pid {
        proto::Pid { address: self.0.address.to_string(), id: self.0.id.to_string(), request_id: self.0.request_id }
    }

    /// A pid from its protobuf form.
    pub fn from_proto(p: &proto::Pid) -> Self {
        Pid::with_request_id(p.address.as_str(), p.id.as_str(), p.request_id)
    }

    /// The cached process if it was resolved by `system` and is still alive.
    #[inline]
    pub(crate) fn cached_for(&self, system: usize) -> Option<&ProcessRef> {
        match self.0.cached.get() {
            Some(c) if c.system == system && !c.process.is_dead() => Some(&c.process),
            _ => None,
        }
    }

    pub(crate) fn cache(&self, system: usize, process: &ProcessRef) {
        let _ = self.0.cached.set(Cached { system, process: process.clone() });
    }
}

impl From<proto::Pid> for Pid {
    fn from(p: proto::Pid) -> Self {
        Pid(Arc::new(PidInner {
            address: p.address.into(),
            id: p.id.into(),
            request_id: p.request_id,
            cached: OnceLock::new(),
        }))
    }
}

impl From<&Pid> for proto::Pid {
    fn from(p: &Pid) -> Self {
        p.to_proto()
    }
}

impl PartialEq for Pid {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.id == other.0.id && self.0.request_id == other.0.request_id && self.0.address == other.0.address)
    }
}
impl Eq for Pid {}

impl Hash for Pid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
        self.0.request_id.hash(state);
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.request_id == 0 {
            write!(f, "{}/{}", self.0.address, self.0.id)
        } else {
            write!(f, "{}/{}#{}", self.0.address, self.0.id, self.0.request_id)
        }
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pid({self})")
    }
}
