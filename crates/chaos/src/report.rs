//! What a run measured, the bounds its counts are checked against, and the
//! three outputs: a text summary, a JSON report and an SVG chart.
//!
//! Bounds (counts decide, never timings):
//! - `hung`: requests with no answer within `--hang-secs`: 0.
//! - `failed_outside_faults`: failed requests that were not in flight during
//!   a fault window (a fault's start to its end plus [`FAULT_GRACE`]): 0.
//! - `overlaps_outside_faults`: two live activations of one identity whose
//!   overlap begins outside every fault window: 0. The partition lookup may
//!   activate a grain twice while the topology is in flux (a member stopped
//!   but not yet declared dead keeps its activations): those overlaps are
//!   counted and reported, not failed.
//! - `stuck_members`: live member processes missing from the load client's
//!   topology 10 s after a fault ended: 0.
//! - `lost_updates` (with `--persist`): acknowledged increments missing from
//!   the store: 0.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// Time after a fault ends during which its effects are expected: twice the
/// failure-detection window plus the request timeout (5 s).
pub const FAULT_GRACE: Duration = Duration::from_secs(9);

/// One fault as it happened; times in seconds since the load started.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    /// `kill`, `stop`, `rolling`, `store`, `partition` or `oneway`.
    pub kind: crate::Fault,
    /// The member slot(s) it hit.
    pub member: String,
    /// When it started.
    pub at_s: f64,
    /// When it ended (replacement ready, SIGCONT, last member replaced).
    pub end_s: f64,
    /// From the start until throughput was back at 80 % of the 2 s before
    /// (0 if it never dipped below; `None` if it never came back).
    pub recovered_after_s: Option<f64>,
    /// The lowest 500 ms throughput during the fault and its grace, as a
    /// fraction of the 2 s before.
    pub lowest_throughput_ratio: f64,
    /// Failed requests that were in flight during this fault's window.
    pub failed_in_window: u64,
    /// From the fault's end until the load's client saw every live member
    /// in the topology (`None`: not within 10 s).
    pub converged_after_s: Option<f64>,
    /// Live member processes missing from the topology 10 s after the fault.
    pub stuck_members: u64,
    /// Members that learned the others had blocked them, exited, and were
    /// replaced by a new member (expected of the member a `stop` or
    /// `partition` fault hit: a blocked id never comes back).
    pub stepped_down: Vec<String>,
    /// Members whose process exited for another reason (then replaced).
    pub exited: Vec<String>,
    /// `partition`: requests the cut-off member answered from 1 s after the
    /// cut until the heal (nothing can reach it: any is a leak).
    pub cut_off_answered: Option<u64>,
    /// `partition`: requests the rest of the cluster answered from the
    /// failure-detection window after the cut until the heal.
    pub majority_answered: Option<u64>,
    /// `partition`: whole seconds from 1 s after the cut until the heal in
    /// which nothing at all was answered (with `--rate`, the rest's grains
    /// keep being asked, so this must stay 0).
    pub majority_silent_seconds: Option<u64>,
}

impl FaultRecord {
    /// Members that stepped down or exited other than the one a `stop` or
    /// `partition` fault hit (for other faults, every one).
    pub fn unexpected_exits(&self) -> u64 {
        let expected = |name: &String| {
            matches!(self.kind, crate::Fault::Stop | crate::Fault::Partition | crate::Fault::Oneway)
                && *name == self.member
        };
        (self.stepped_down.iter().filter(|n| !expected(n)).count() + self.exited.len()) as u64
    }
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    /// Seconds since the load started (end of this second).
    pub t: f64,
    /// Answered requests in this second.
    pub rps: u64,
    /// p99 latency of this second, ms.
    pub p99_ms: f64,
    /// `plain` or `cluster`.
    pub mode: &'static str,
}

/// Latency percentiles, ms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Requests measured.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    pub(crate) fn of(h: &hdrhistogram::Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// A steady phase: requests/s and latency.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Steady {
    /// Answered requests per second over the phase.
    pub rps: f64,
    /// Latency over the phase.
    pub latency: Latency,
}

/// Activations read from the members' journals.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Activations {
    /// Activations in all.
    pub total: u64,
    /// Identities activated at least once.
    pub identities: u64,
    /// Identities activated more than once (re-activations after faults).
    pub reactivated: u64,
    /// Most activations of one identity.
    pub max_per_identity: u64,
    /// Pairs of live activations of one identity that overlapped in time.
    pub overlaps: u64,
    /// Of those, the overlaps that began outside every fault window.
    pub overlaps_outside_faults: u64,
}

/// One member process.
#[derive(Debug, Clone, Serialize)]
pub struct MemberRecord {
    /// Slot and generation (`m2.1`).
    pub name: String,
    /// OS pid.
    pub pid: u32,
    /// Highest VmHWM seen, MiB.
    pub peak_rss_mib: f64,
    /// Activations it journaled.
    pub activations: u64,
}

/// A bound checked at the end.
#[derive(Debug, Clone, Serialize)]
pub struct Bound {
    /// What is counted.
    pub name: &'static str,
    /// The count.
    pub value: u64,
    /// The highest allowed.
    pub limit: u64,
    /// `value <= limit`.
    pub ok: bool,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The settings (members, grains, workers, backend, faults).
    pub config: serde_json::Value,
    /// The lookup keeps activations in a store (Redis, MongoDB): then no
    /// overlap is allowed, fault windows included.
    pub lookup_has_store: bool,
    /// Requests sent during the measured phases.
    pub sent: u64,
    /// Answered.
    pub answered: u64,
    /// Answered with an error after the cluster's retries.
    pub failed: u64,
    /// Never answered within the hang limit.
    pub hung: u64,
    /// Open loop (`--rate`): requests due but not sent, because 100,000
    /// were already waiting.
    pub shed: u64,
    /// Open loop: the rate asked for (requests a second).
    pub rate: Option<u64>,
    /// Failed requests not in flight during any fault window.
    pub failed_outside_faults: u64,
    /// The first few error messages.
    pub errors: Vec<String>,
    /// Cluster requests over the whole run.
    pub latency: Latency,
    /// Plain remote requests to pre-spawned actors (the baseline).
    pub plain: Option<Steady>,
    /// Cluster requests before the first fault.
    pub cluster: Steady,
    /// `cluster.rps / plain.rps`.
    pub cluster_to_plain: Option<f64>,
    /// The faults.
    pub faults: Vec<FaultRecord>,
    /// From the activation journals.
    pub activations: Activations,
    /// Acknowledged increments missing from the store (`--persist` only).
    pub lost_updates: Option<u64>,
    /// Member processes, ended ones included.
    pub members: Vec<MemberRecord>,
    /// One entry per second.
    pub series: Vec<Second>,
    /// Bounds checked.
    pub bounds: Vec<Bound>,
}

impl Report {
    /// Fills `bounds` from the counts.
    pub fn check(&mut self) {
        let mut bounds = vec![
            bound("hung requests", self.hung, 0),
            bound("failed requests outside fault windows", self.failed_outside_faults, 0),
            if self.lookup_has_store {
                bound(
                    "overlapping live activations (storage-backed lookup: faults included)",
                    self.activations.overlaps,
                    0,
                )
            } else {
                bound("overlapping activations outside fault windows", self.activations.overlaps_outside_faults, 0)
            },
            bound("live members stuck out of the topology", self.faults.iter().map(|f| f.stuck_members).sum(), 0),
            bound(
                "members that stepped down or exited, other than the one a stop/partition hit",
                self.faults.iter().map(FaultRecord::unexpected_exits).sum(),
                0,
            ),
        ];
        let partitions: Vec<&FaultRecord> = self.faults.iter().filter(|f| f.kind == crate::Fault::Partition).collect();
        if !partitions.is_empty() {
            bounds.push(bound(
                "requests a cut-off member answered while cut off",
                partitions.iter().filter_map(|f| f.cut_off_answered).sum(),
                0,
            ));
            bounds.push(bound(
                "partitions during which the rest of the cluster answered nothing",
                partitions.iter().filter(|f| f.majority_answered == Some(0)).count() as u64,
                0,
            ));
            if self.rate.is_some() {
                // Closed-loop workers all end up waiting on the silent member:
                // only an open loop keeps asking the rest.
                bounds.push(bound(
                    "seconds of a partition in which the rest answered nothing (open loop)",
                    partitions.iter().filter_map(|f| f.majority_silent_seconds).sum(),
                    0,
                ));
            }
        }
        if let Some(lost) = self.lost_updates {
            bounds.push(bound("acknowledged updates lost", lost, 0));
        }
        self.bounds = bounds;
    }

    /// True when every count is within its bound.
    pub fn passed(&self) -> bool {
        self.bounds.iter().all(|b| b.ok)
    }

    /// The text summary.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "\n== protoactor-chaos summary ==");
        let _ = writeln!(s, "config: {}", self.config);
        let _ = writeln!(
            s,
            "requests: {} sent, {} answered, {} failed ({} outside fault windows), {} hung{}",
            self.sent,
            self.answered,
            self.failed,
            self.failed_outside_faults,
            self.hung,
            self.rate.map(|r| format!("; open loop at {r} req/s, {} shed", self.shed)).unwrap_or_default()
        );
        let l = &self.latency;
        let _ = writeln!(s, "cluster latency: p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms", l.p50_ms, l.p99_ms, l.max_ms);
        if let Some(plain) = &self.plain {
            let _ = writeln!(
                s,
                "baseline (plain remote, pre-spawned actors): {:.0} req/s, p99 {:.2} ms",
                plain.rps, plain.latency.p99_ms
            );
        }
        let _ = writeln!(
            s,
            "cluster steady state: {:.0} req/s, p99 {:.2} ms{}",
            self.cluster.rps,
            self.cluster.latency.p99_ms,
            self.cluster_to_plain.map(|r| format!(" ({r:.2}x the baseline)")).unwrap_or_default()
        );
        for f in &self.faults {
            let _ = writeln!(
                s,
                "fault {:?} on {} at {:.1}s..{:.1}s: recovered after {}, lowest throughput {:.0} %, {} failed in its window, topology whole {}",
                f.kind,
                f.member,
                f.at_s,
                f.end_s,
                f.recovered_after_s.map_or("never".into(), |r| format!("{r:.1} s")),
                f.lowest_throughput_ratio * 100.0,
                f.failed_in_window,
                f.converged_after_s.map_or(format!("never ({} live members missing)", f.stuck_members), |c| {
                    format!("{c:.1} s after its end")
                })
            );
            if !f.stepped_down.is_empty() || !f.exited.is_empty() {
                let _ = writeln!(
                    s,
                    "  stepped down (blocked by the others, restarted as new members): [{}]; exited otherwise: [{}]",
                    f.stepped_down.join(", "),
                    f.exited.join(", ")
                );
            }
            if let (Some(cut), Some(rest)) = (f.cut_off_answered, f.majority_answered) {
                let _ = writeln!(
                    s,
                    "  partition: the cut-off member answered {cut} requests while cut off, the rest {rest} after detection; {} whole seconds from 1 s after the cut with nothing answered",
                    f.majority_silent_seconds.unwrap_or(0)
                );
            }
        }
        let a = &self.activations;
        let _ = writeln!(
            s,
            "activations: {} for {} identities, {} re-activated, at most {} per identity, {} overlaps ({} outside fault windows)",
            a.total, a.identities, a.reactivated, a.max_per_identity, a.overlaps, a.overlaps_outside_faults
        );
        if let Some(lost) = self.lost_updates {
            let _ = writeln!(s, "persisted counters: {lost} acknowledged updates lost");
        }
        for m in &self.members {
            let _ = writeln!(
                s,
                "member {} (pid {}): peak RSS {:.1} MiB, {} activations",
                m.name, m.pid, m.peak_rss_mib, m.activations
            );
        }
        for e in &self.errors {
            let _ = writeln!(s, "error: {e}");
        }
        for b in &self.bounds {
            let _ = writeln!(s, "{} {}: {} (bound {})", if b.ok { "ok  " } else { "FAIL" }, b.name, b.value, b.limit);
        }
        s
    }

    /// Writes the JSON report.
    pub fn write_json(&self, path: &Path) -> Result<(), crate::Error> {
        let json = serde_json::to_string_pretty(self).map_err(|e| crate::Error::Report(e.to_string()))?;
        std::fs::write(path, json).map_err(|e| crate::Error::Io(format!("cannot write {}", path.display()), e))
    }

    /// Writes the SVG chart: throughput and p99 per second, faults marked.
    pub fn write_svg(&self, path: &Path) -> Result<(), crate::Error> {
        crate::chart::draw(self, path).map_err(|e| crate::Error::Report(format!("{}: {e}", path.display())))
    }
}

fn bound(name: &'static str, value: u64, limit: u64) -> Bound {
    Bound { name, value, limit, ok: value <= limit }
}

/// One activation from a journal: start and end in unix µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

/// Reads one member's journal; activations without a stop line end at
/// `ended_at` (its kill or exit). Returns (identity, span) pairs.
pub(crate) fn read_journal(text: &str, ended_at: u64) -> Vec<(String, Span)> {
    let mut open: HashMap<(String, u64), u64> = HashMap::new();
    let mut spans = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["A", id, act, t] => {
                if let (Ok(act), Ok(t)) = (act.parse(), t.parse()) {
                    open.insert(((*id).to_string(), act), t);
                }
            }
            ["S", id, act, t, _count] => {
                if let (Ok(act), Ok(t)) = (act.parse::<u64>(), t.parse::<u64>())
                    && let Some(start) = open.remove(&((*id).to_string(), act))
                {
                    spans.push(((*id).to_string(), Span { start, end: t }));
                }
            }
            // A torn last line of a killed member: its activation is lost
            // only if the `A` line itself was torn.
            _ => {}
        }
    }
    spans.extend(open.into_iter().map(|((id, _), start)| (id, Span { start, end: ended_at.max(start) })));
    spans
}

/// Counts activations and overlaps; `windows` are the fault windows (unix µs).
pub(crate) fn activations(spans: &[(String, Span)], windows: &[(u64, u64)]) -> Activations {
    let mut by_id: HashMap<&str, Vec<Span>> = HashMap::new();
    for (id, span) in spans {
        by_id.entry(id.as_str()).or_default().push(*span);
    }
    let mut a = Activations { total: spans.len() as u64, identities: by_id.len() as u64, ..Default::default() };
    for list in by_id.values_mut() {
        let n = list.len() as u64;
        a.max_per_identity = a.max_per_identity.max(n);
        if n > 1 {
            a.reactivated += 1;
        }
        list.sort_by_key(|s| s.start);
        for (i, x) in list.iter().enumerate() {
            for y in &list[i + 1..] {
                if y.start < x.end {
                    a.overlaps += 1;
                    if !windows.iter().any(|(from, to)| (*from..=*to).contains(&y.start)) {
                        a.overlaps_outside_faults += 1;
                    }
                }
            }
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_spans_end_at_stop_or_at_process_end() {
        let text = "A g1 7 100\nA g2 8 110\nS g1 7 200 5\nA g3 9 12";
        let mut spans = read_journal(text, 500);
        spans.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            spans,
            vec![
                ("g1".to_string(), Span { start: 100, end: 200 }),
                ("g2".to_string(), Span { start: 110, end: 500 }),
                ("g3".to_string(), Span { start: 12, end: 500 }),
            ]
        );
    }

    #[test]
    fn overlaps_inside_fault_windows_are_allowed_outside_counted() {
        let s = |start, end| Span { start, end };
        let spans = vec![
            ("a".to_string(), s(0, 100)),
            ("a".to_string(), s(100, 200)), // back to back: no overlap
            ("b".to_string(), s(0, 100)),
            ("b".to_string(), s(50, 150)), // overlap from 50: inside the window
            ("c".to_string(), s(0, 400)),
            ("c".to_string(), s(300, 500)), // overlap from 300: outside
        ];
        let a = activations(&spans, &[(40, 60)]);
        assert_eq!(a.total, 6);
        assert_eq!(a.identities, 3);
        assert_eq!(a.reactivated, 3);
        assert_eq!(a.overlaps, 2);
        assert_eq!(a.overlaps_outside_faults, 1);
    }

    #[test]
    fn a_count_over_its_bound_fails_the_run() {
        assert!(bound("x", 0, 0).ok);
        assert!(!bound("x", 1, 0).ok);
    }
}
