//! `bootwave wave summary --svg FILE`: a wave drawn as hosts × time.
//!
//! One row per host (ordered by the time it first reached a stage), one
//! bar per stage from the moment the host reached it to the moment it
//! reached the next; DONE is a tick, FAILED a red cross at the moment the
//! host failed, and hosts still waiting are a grey row. Pure: a `Wave` in,
//! the SVG text out.

use std::fmt::Write as _;

use bootwave_proto::v1::{self, WaveStage};

/// Width of the plot area, in pixels.
const PLOT_WIDTH: f64 = 900.0;
/// Left margin (host labels are not drawn; the axis label is).
const LEFT: f64 = 60.0;
/// Top margin (title and legend).
const TOP: f64 = 56.0;
/// Bottom margin (time axis).
const BOTTOM: f64 = 40.0;
/// Right margin.
const RIGHT: f64 = 20.0;
/// Tallest row, for small waves.
const MAX_ROW: f64 = 8.0;
/// Tallest plot area: large waves get thinner rows, not a taller picture.
const MAX_PLOT_HEIGHT: f64 = 800.0;

/// Colour of each stage's bar, in flow order.
const STAGE_COLOURS: [(WaveStage, &str); 7] = [
    (WaveStage::Waiting, "#d0d0d0"),
    (WaveStage::DhcpFirmware, "#4e79a7"),
    (WaveStage::FirmwareFile, "#f28e2b"),
    (WaveStage::DhcpIpxe, "#76b7b2"),
    (WaveStage::Script, "#edc948"),
    (WaveStage::BootFiles, "#b07aa1"),
    (WaveStage::Done, "#59a14f"),
];
/// Colour of the failure marks.
const FAILED_COLOUR: &str = "#e15759";

/// The SVG picture of `wave`.
pub(super) fn wave_svg(wave: &v1::Wave) -> String {
    let mut hosts: Vec<&v1::WaveHost> = wave.hosts.iter().collect();
    hosts.sort_by_key(|h| {
        (
            h.timeline.first().map_or(u32::MAX, |m| m.at_ms),
            h.mac.clone(),
        )
    });
    let end_ms = wave_end_ms(wave).max(1);
    let rows = hosts.len().max(1) as f64;
    let row = (MAX_PLOT_HEIGHT / rows).min(MAX_ROW);
    let plot_height = row * rows;
    let width = LEFT + PLOT_WIDTH + RIGHT;
    let height = TOP + plot_height + BOTTOM;
    let x = |ms: u32| LEFT + f64::from(ms) / f64::from(end_ms) * PLOT_WIDTH;

    let mut svg = String::with_capacity(256 + hosts.len() * 400);
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let done = hosts
        .iter()
        .filter(|h| h.stage() == WaveStage::Done)
        .count();
    let failed = hosts
        .iter()
        .filter(|h| h.stage() == WaveStage::Failed)
        .count();
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="16" font-size="13">wave {} {}: {} hosts, {done} done, {failed} failed, {:.1} s</text>"#,
        escape(&wave.id),
        escape(&wave.name),
        hosts.len(),
        f64::from(end_ms) / 1e3
    );
    legend(&mut svg);

    for (i, host) in hosts.iter().enumerate() {
        let y = TOP + i as f64 * row;
        let _ = write!(
            svg,
            r#"<g><title>{} {} {}{}</title>"#,
            escape(&host.mac),
            escape(&host.hostname),
            host.stage().as_str_name(),
            if host.error.is_empty() {
                String::new()
            } else {
                format!(": {}", escape(&host.error))
            }
        );
        if host.timeline.is_empty() {
            rect(
                &mut svg,
                x(0),
                y,
                PLOT_WIDTH,
                row,
                colour(WaveStage::Waiting),
            );
        }
        for (k, mark) in host.timeline.iter().enumerate() {
            let from = x(mark.at_ms);
            match mark.stage() {
                WaveStage::Done => {
                    rect(&mut svg, from, y, 2.0, row, colour(WaveStage::Done));
                }
                WaveStage::Failed => cross(&mut svg, from, y, row),
                stage => {
                    let to = host.timeline.get(k + 1).map_or(end_ms, |next| next.at_ms);
                    let w = (x(to) - from).max(0.5);
                    rect(&mut svg, from, y, w, row, colour(stage));
                }
            }
        }
        if host.stage() == WaveStage::Failed
            && !host.timeline.iter().any(|m| m.stage() == WaveStage::Failed)
        {
            cross(&mut svg, x(end_ms), y, row);
        }
        svg.push_str("</g>\n");
    }
    axis(&mut svg, end_ms, TOP + plot_height);
    svg.push_str("</svg>\n");
    svg
}

/// The last moment the picture must show: the wave's end, or the latest
/// mark of any host while it runs.
fn wave_end_ms(wave: &v1::Wave) -> u32 {
    let latest = wave
        .hosts
        .iter()
        .flat_map(|h| h.timeline.iter().map(|m| m.at_ms))
        .max()
        .unwrap_or(0);
    let span = (wave.finished_unix_ms - wave.started_unix_ms).max(0);
    let finished = if wave.finished {
        u32::try_from(span).unwrap_or(u32::MAX)
    } else {
        0
    };
    latest.max(finished)
}

fn colour(stage: WaveStage) -> &'static str {
    STAGE_COLOURS
        .iter()
        .find(|(s, _)| *s == stage)
        .map_or(FAILED_COLOUR, |(_, c)| c)
}

fn rect(svg: &mut String, x: f64, y: f64, w: f64, h: f64, fill: &str) {
    let _ = write!(
        svg,
        r#"<rect x="{x:.1}" y="{y:.2}" width="{w:.1}" height="{h:.2}" fill="{fill}"/>"#
    );
}

/// A failure mark: a cross the height of the row (at least 4 px).
fn cross(svg: &mut String, x: f64, y: f64, row: f64) {
    let half = (row / 2.0).max(2.0);
    let cy = y + row / 2.0;
    let _ = write!(
        svg,
        r#"<path d="M{:.1} {:.2}L{:.1} {:.2}M{:.1} {:.2}L{:.1} {:.2}" stroke="{FAILED_COLOUR}" stroke-width="1.5"/>"#,
        x - half,
        cy - half,
        x + half,
        cy + half,
        x - half,
        cy + half,
        x + half,
        cy - half
    );
}

fn legend(svg: &mut String) {
    let mut x = LEFT;
    let entries = STAGE_COLOURS
        .iter()
        .map(|(s, c)| (s.as_str_name(), *c))
        .chain([("FAILED", FAILED_COLOUR)]);
    for (name, fill) in entries {
        rect(svg, x, 28.0, 10.0, 10.0, fill);
        let _ = write!(svg, r#"<text x="{:.0}" y="37">{name}</text>"#, x + 14.0);
        x += 14.0 + 7.0 * name.len() as f64 + 14.0;
    }
    svg.push('\n');
}

/// The time axis under the plot, with about ten labelled ticks.
fn axis(svg: &mut String, end_ms: u32, y: f64) {
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#000000"/>"##,
        LEFT + PLOT_WIDTH
    );
    let step = tick_step(end_ms);
    let mut t = 0u32;
    while t <= end_ms {
        let tx = LEFT + f64::from(t) / f64::from(end_ms) * PLOT_WIDTH;
        let _ = write!(
            svg,
            r##"<line x1="{tx:.1}" y1="{y:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#000000"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            y + 4.0,
            y + 16.0,
            seconds(t)
        );
        let Some(next) = t.checked_add(step) else {
            break;
        };
        t = next;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since the wave started</text>"#,
        LEFT + PLOT_WIDTH / 2.0,
        y + 32.0
    );
}

/// A round tick interval (1, 2 or 5 × 10^k ms) giving at most ~10 ticks.
fn tick_step(end_ms: u32) -> u32 {
    let target = (end_ms / 10).max(1);
    let mut magnitude = 1u32;
    loop {
        for m in [1, 2, 5] {
            let step = magnitude.saturating_mul(m);
            if step >= target {
                return step;
            }
        }
        magnitude = magnitude.saturating_mul(10);
    }
}

fn seconds(ms: u32) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}", ms / 1000)
    } else {
        format!("{:.1}", f64::from(ms) / 1e3)
    }
}

/// Text escaped for SVG content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(stage: WaveStage, at_ms: u32) -> v1::StageMark {
        v1::StageMark {
            stage: stage.into(),
            at_ms,
            detail: String::new(),
        }
    }

    fn host(mac: &str, stage: WaveStage, timeline: Vec<v1::StageMark>) -> v1::WaveHost {
        v1::WaveHost {
            mac: mac.into(),
            hostname: format!("<{mac}>"),
            stage: stage.into(),
            timeline,
            error: String::new(),
        }
    }

    fn wave(hosts: Vec<v1::WaveHost>) -> v1::Wave {
        v1::Wave {
            id: "w1".into(),
            name: "demo & test".into(),
            started_unix_ms: 1_000,
            finished_unix_ms: 9_000,
            finished: true,
            hosts,
            ..Default::default()
        }
    }

    #[test]
    fn every_host_is_a_row_with_a_bar_per_stage_and_failures_are_crossed() {
        let done = host(
            "02:00:00:00:00:01",
            WaveStage::Done,
            vec![
                mark(WaveStage::DhcpFirmware, 100),
                mark(WaveStage::FirmwareFile, 200),
                mark(WaveStage::DhcpIpxe, 1_200),
                mark(WaveStage::Script, 1_300),
                mark(WaveStage::BootFiles, 1_400),
                mark(WaveStage::Done, 2_000),
            ],
        );
        let mut failed = host(
            "02:00:00:00:00:02",
            WaveStage::Failed,
            vec![mark(WaveStage::DhcpFirmware, 50)],
        );
        failed.error = "timed out".into();
        let waiting = host("02:00:00:00:00:03", WaveStage::Waiting, vec![]);
        let svg = wave_svg(&wave(vec![done, failed, waiting]));

        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<g>").count(), 3, "one group per host");
        assert_eq!(svg.matches("</g>").count(), 3);
        // Five stage bars and a DONE tick for the first host, a bar for
        // the failed one, a grey row for the waiting one, plus the legend.
        for (stage, fill) in STAGE_COLOURS {
            assert!(
                svg.contains(&format!("fill=\"{fill}\"")),
                "{stage:?} missing"
            );
        }
        assert_eq!(
            svg.matches(&format!("stroke=\"{FAILED_COLOUR}\"")).count(),
            1,
            "one failure cross"
        );
        // Ordered by first mark: the failed host (50 ms) comes first.
        let first = svg.find("02:00:00:00:00:02").unwrap_or(usize::MAX);
        let second = svg.find("02:00:00:00:00:01").unwrap_or(usize::MAX);
        assert!(first < second);
        assert!(svg.contains("timed out"));
        // The wave lasted 8 s: the axis reaches 8.
        assert!(svg.contains(">8</text>"), "{svg}");
        assert!(svg.contains("3 hosts, 1 done, 1 failed, 8.0 s"), "{svg}");
    }

    #[test]
    fn text_is_escaped() {
        let svg = wave_svg(&wave(vec![host("m", WaveStage::Waiting, vec![])]));
        assert!(svg.contains("demo &amp; test"));
        assert!(svg.contains("&lt;m&gt;"));
        assert!(!svg.contains("<m>"));
    }

    #[test]
    fn large_waves_keep_the_picture_bounded() {
        let hosts = (0..10_000)
            .map(|i| {
                host(
                    &format!("h{i}"),
                    WaveStage::Done,
                    vec![
                        mark(WaveStage::DhcpFirmware, i),
                        mark(WaveStage::Done, i + 5),
                    ],
                )
            })
            .collect();
        let svg = wave_svg(&wave(hosts));
        let height: f64 = svg
            .split("height=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::MAX);
        assert!(height <= TOP + MAX_PLOT_HEIGHT + BOTTOM + 1.0, "{height}");
        assert_eq!(svg.matches("<g>").count(), 10_000);
    }

    #[test]
    fn ticks_are_round_and_few() {
        assert_eq!(tick_step(8_000), 1_000);
        assert_eq!(tick_step(25_000), 5_000);
        assert_eq!(tick_step(3), 1);
        assert_eq!(tick_step(u32::MAX), 500_000_000);
        assert_eq!(seconds(1_500), "1.5");
        assert_eq!(seconds(2_000), "2");
    }
}
