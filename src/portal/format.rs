//! How the portal shows numbers, times and the spend chart. Money stays an integer count of
//! micro-units until the last moment, and is shown by integer arithmetic, never through floats.

use std::fmt::Write;

/// Micro-units as a decimal amount with at least two and at most six decimals:
/// `12_500_000` → `12.50`, `1_234` → `0.001234`.
pub fn money(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let whole = abs / 1_000_000;
    let mut fraction = format!("{:06}", abs % 1_000_000);
    while fraction.len() > 2 && fraction.ends_with('0') {
        fraction.pop();
    }
    format!("{sign}{}.{fraction}", thousands(whole))
}

/// Micro-units with all six decimals, for columns of amounts that must line up:
/// `40` → `0.000040`, `750_000` → `0.750000`.
pub fn money_column(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    format!(
        "{sign}{}.{:06}",
        thousands(abs / 1_000_000),
        abs % 1_000_000
    )
}

/// A price per one million tokens (micro-units per 1M tokens) as an amount: `2_000_000` → `2.00`.
pub fn price(micros_per_million: i64) -> String {
    money(micros_per_million)
}

/// `1234567` → `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

pub fn count(value: i64) -> String {
    let formatted = thousands(value.unsigned_abs());
    if value < 0 {
        format!("-{formatted}")
    } else {
        formatted
    }
}

pub fn tokens(value: Option<i64>) -> String {
    value.map(count).unwrap_or_else(|| "—".into())
}

/// An RFC 3339 UTC time as `2026-11-25 16:40:12`.
pub fn time(rfc3339: &str) -> String {
    rfc3339
        .get(..19)
        .map(|t| t.replace('T', " "))
        .unwrap_or_else(|| rfc3339.to_string())
}

/// One bar of the spend chart.
pub struct Bar {
    /// `YYYY-MM-DD`
    pub day: String,
    pub cost: i64,
    pub requests: i64,
}

/// The daily spend chart as inline SVG: one bar per day, the tallest bar full height, a
/// `<title>` per bar for the exact figures. Drawn here so the page needs no script.
pub fn spend_chart(bars: &[Bar], currency: &str) -> String {
    const WIDTH: i64 = 720;
    const HEIGHT: i64 = 160;
    const AXIS: i64 = 18;
    let max = bars.iter().map(|b| b.cost).max().unwrap_or(0).max(1);
    let slot = WIDTH / (bars.len().max(1) as i64);
    let bar_width = (slot - 3).max(2);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"Daily spend, last {} days\" preserveAspectRatio=\"none\">",
        HEIGHT + AXIS,
        bars.len()
    );
    let _ = write!(
        svg,
        "<line x1=\"0\" y1=\"{HEIGHT}\" x2=\"{WIDTH}\" y2=\"{HEIGHT}\" class=\"axis\"/>"
    );
    for (i, bar) in bars.iter().enumerate() {
        let x = i as i64 * slot;
        // Integer scaling; a day with any spend gets at least a visible sliver.
        let mut height = bar.cost.max(0) * (HEIGHT - 4) / max;
        if bar.cost > 0 {
            height = height.max(2);
        }
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"{bar_width}\" height=\"{height}\" class=\"bar\"><title>{}: {} {currency}, {} requests</title></rect>",
            HEIGHT - height,
            escape(&bar.day),
            money(bar.cost),
            count(bar.requests)
        );
        // A label every seventh day counted back from today, so today's is always there and
        // none sits closer than a week to another; today's ends at the chart's right edge.
        let from_end = bars.len() - 1 - i;
        if from_end.is_multiple_of(7) {
            let label = bar.day.get(5..).unwrap_or(&bar.day);
            let (anchor, at) = if from_end == 0 {
                ("end", x + bar_width)
            } else {
                ("start", x)
            };
            let _ = write!(
                svg,
                "<text x=\"{at}\" y=\"{}\" text-anchor=\"{anchor}\" class=\"label\">{}</text>",
                HEIGHT + AXIS - 4,
                escape(label)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A CSV cell safe to open in a spreadsheet: cells that start with `=`, `+`, `-`, `@` (or a tab
/// or carriage return) would run as formulas; a leading `'` keeps them text.
pub fn csv_cell(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    }
}

/// A commission rate in basis points as a percentage: 1000 → "10%", 1250 → "12.5%".
pub fn percent_bps(bps: u32) -> String {
    let whole = bps / 100;
    match bps % 100 {
        0 => format!("{whole}%"),
        rest if rest % 10 == 0 => format!("{whole}.{}%", rest / 10),
        rest => format!("{whole}.{rest:02}%"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_shown_exactly_from_integers() {
        assert_eq!(money(12_500_000), "12.50");
        assert_eq!(money(1_234), "0.001234");
        assert_eq!(money(0), "0.00");
        assert_eq!(money(-2_000_001), "-2.000001");
        assert_eq!(money(1_234_567_000_000), "1,234,567.00");
        assert_eq!(price(150_000), "0.15");
    }

    #[test]
    fn chart_bars_scale_to_the_largest_day() {
        let bars = vec![
            Bar {
                day: "2026-11-01".into(),
                cost: 0,
                requests: 0,
            },
            Bar {
                day: "2026-11-02".into(),
                cost: 500,
                requests: 3,
            },
            Bar {
                day: "2026-11-03".into(),
                cost: 1_000,
                requests: 9,
            },
        ];
        let svg = spend_chart(&bars, "USD");
        assert!(svg.contains("height=\"156\""), "{svg}");
        assert!(svg.contains("height=\"78\""), "{svg}");
        assert!(svg.contains("height=\"0\""), "{svg}");
        assert!(svg.contains("2026-11-03: 0.001 USD, 9 requests"), "{svg}");
    }

    #[test]
    fn rates_show_as_percentages() {
        assert_eq!(percent_bps(1000), "10%");
        assert_eq!(percent_bps(1250), "12.5%");
        assert_eq!(percent_bps(1205), "12.05%");
        assert_eq!(percent_bps(0), "0%");
    }
}
