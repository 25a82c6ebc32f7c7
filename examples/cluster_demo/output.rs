//! Printing: a progress line rewritten in place on a terminal (one line per
//! second otherwise, e.g. in CI logs), events printed above it, and number
//! formatting.

use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Where the demo prints.
pub(crate) struct Output {
    live: bool,
    progress_shown: bool,
}

impl Output {
    pub(crate) fn new() -> Self {
        Output { live: std::io::stdout().is_terminal(), progress_shown: false }
    }

    /// The progress line: replaces the previous one on a terminal.
    pub(crate) fn progress(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        if self.live {
            let _ = write!(out, "\r\x1b[2K{line}");
            self.progress_shown = true;
        } else {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    /// A line that stays.
    pub(crate) fn event(&mut self, line: &str) {
        let mut out = std::io::stdout().lock();
        if self.progress_shown {
            let _ = write!(out, "\r\x1b[2K");
            self.progress_shown = false;
        }
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    /// Ends a progress line left on screen, so later output starts on a new line.
    pub(crate) fn finish_progress(&mut self) {
        if self.progress_shown {
            println!();
            self.progress_shown = false;
        }
    }
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A latency in microseconds as milliseconds, e.g. `3.2 ms`.
pub(crate) fn ms(micros: u64) -> String {
    format!("{:.1} ms", Duration::from_micros(micros).as_secs_f64() * 1000.0)
}

/// A duration in seconds with one decimal, e.g. `2.4 s`.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
