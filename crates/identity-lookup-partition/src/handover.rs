//! Collecting one member's handover: chunks numbered 1..n, the last marked
//! final, possibly repeated (the request was re-sent) or out of order.

use std::collections::BTreeSet;

/// Tracks the chunks received from one member for one topology.
#[derive(Debug, Default, Clone)]
pub(crate) struct HandoverSink {
    received: BTreeSet<i32>,
    final_chunk: Option<i32>,
}

impl HandoverSink {
    /// Records chunk `id`; true if it is new (its activations should be
    /// taken over), false for a repeat.
    pub(crate) fn receive(&mut self, id: i32, is_final: bool) -> bool {
        if is_final {
            self.final_chunk = Some(id);
        }
        self.received.insert(id)
    }

    /// True once the final chunk and every chunk before it arrived.
    pub(crate) fn is_complete(&self) -> bool {
        match self.final_chunk {
            Some(last) => (1..=last).all(|i| self.received.contains(&i)),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HandoverSink;

    #[test]
    fn completes_on_empty_handover() {
        // Nothing to hand over: a single final chunk with no activations.
        let mut sink = HandoverSink::default();
        assert!(sink.receive(1, true));
        assert!(sink.is_complete());
    }

    #[test]
    fn completes_on_non_chunked() {
        let mut sink = HandoverSink::default();
        assert!(!sink.is_complete());
        sink.receive(1, true);
        assert!(sink.is_complete());
    }

    #[test]
    fn completes_on_chunked() {
        let mut sink = HandoverSink::default();
        sink.receive(1, false);
        sink.receive(2, false);
        assert!(!sink.is_complete());
        sink.receive(3, true);
        assert!(sink.is_complete());
    }

    #[test]
    fn does_not_complete_when_missing_chunk() {
        let mut sink = HandoverSink::default();
        sink.receive(1, false);
        sink.receive(3, true);
        assert!(!sink.is_complete());
    }

    #[test]
    fn completes_with_out_of_order_chunks() {
        let mut sink = HandoverSink::default();
        sink.receive(3, true);
        sink.receive(1, false);
        assert!(!sink.is_complete());
        sink.receive(2, false);
        assert!(sink.is_complete());
    }

    #[test]
    fn duplicates_are_filtered() {
        let mut sink = HandoverSink::default();
        assert!(sink.receive(1, false));
        assert!(!sink.receive(1, false));
        assert!(sink.receive(2, true));
        assert!(!sink.receive(2, true));
        assert!(sink.is_complete());
    }
}
