//! The two messages of the tool: a request to count one more, and the answer.

/// Asks a counter (grain or plain actor) to count one more request.
#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct Increment {
    /// Unique per request; a persisted counter counts a retried request once.
    #[prost(uint64, tag = "1")]
    pub(crate) request: u64,
}

impl Increment {
    /// A request with a new id.
    pub(crate) fn next() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Increment { request: (u64::from(std::process::id()) << 32) | n }
    }
}

impl ::prost::Name for Increment {
    const NAME: &'static str = "Increment";
    const PACKAGE: &'static str = "chaos";
    fn full_name() -> String {
        "chaos.Increment".into()
    }
}

/// A counter's answer.
#[derive(Clone, PartialEq, ::prost::Message)]
pub(crate) struct CountReply {
    /// Requests counted by this activation (or in total, when persisted).
    #[prost(uint64, tag = "1")]
    pub(crate) count: u64,
    /// The hosting member's address.
    #[prost(string, tag = "2")]
    pub(crate) member: String,
}

impl ::prost::Name for CountReply {
    const NAME: &'static str = "CountReply";
    const PACKAGE: &'static str = "chaos";
    fn full_name() -> String {
        "chaos.CountReply".into()
    }
}
