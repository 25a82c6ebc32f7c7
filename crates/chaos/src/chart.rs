//! The SVG chart: requests/s (top) and p99 latency (bottom) per second,
//! with each fault's window shaded and named.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;

type DrawResult = Result<(), Box<dyn std::error::Error>>;

pub(crate) fn draw(report: &Report, path: &Path) -> DrawResult {
    let root = SVGBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(340);
    let t_max = report.series.last().map_or(1.0, |s| s.t).max(1.0);
    let rps_max = report.series.iter().map(|s| s.rps).max().unwrap_or(1).max(1) as f64 * 1.1 / 1000.0;
    // Log scale: a fault's seconds-long stall and a steady millisecond both show.
    let p99_max = report.series.iter().map(|s| s.p99_ms).fold(1.0, f64::max) * 1.5;
    const P99_MIN: f64 = 0.1;

    let title = format!("protoactor-chaos: {} members, {} grains", report.config["members"], report.config["grains"]);
    let mut rps = ChartBuilder::on(&top)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..rps_max)?;
    rps.configure_mesh().x_desc("seconds").y_desc("k requests/s").draw()?;
    let mut p99 = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, (P99_MIN..p99_max).log_scale())?;
    p99.configure_mesh().x_desc("seconds").y_desc("p99 ms (log)").draw()?;

    for f in &report.faults {
        let shade = RED.mix(0.15).filled();
        rps.draw_series(std::iter::once(Rectangle::new([(f.at_s, 0.0), (f.end_s.max(f.at_s + 0.2), rps_max)], shade)))?;
        p99.draw_series(std::iter::once(Rectangle::new(
            [(f.at_s, P99_MIN), (f.end_s.max(f.at_s + 0.2), p99_max)],
            shade,
        )))?;
        rps.draw_series(std::iter::once(Text::new(
            format!("{:?} {}", f.kind, f.member),
            (f.at_s, rps_max * 0.97),
            ("sans-serif", 13).into_font().color(&RED),
        )))?;
    }
    for (mode, color) in [("plain", &BLUE), ("cluster", &GREEN)] {
        // One line per contiguous run of the mode.
        let mut runs: Vec<Vec<(f64, f64, f64)>> = Vec::new();
        let mut last_mode = "";
        for s in &report.series {
            if s.mode == mode {
                if last_mode != mode {
                    runs.push(Vec::new());
                }
                if let Some(run) = runs.last_mut() {
                    run.push((s.t, s.rps as f64 / 1000.0, s.p99_ms));
                }
            }
            last_mode = s.mode;
        }
        for (i, run) in runs.iter().enumerate() {
            let series =
                rps.draw_series(LineSeries::new(run.iter().map(|(t, r, _)| (*t, *r)), color.stroke_width(2)))?;
            if i == 0 {
                series
                    .label(format!("{mode} requests"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
            p99.draw_series(LineSeries::new(run.iter().map(|(t, _, p)| (*t, p.max(P99_MIN))), color.stroke_width(2)))?;
        }
    }
    rps.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
