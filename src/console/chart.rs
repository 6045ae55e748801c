//! Charts as SVG drawn on the server: series in, SVG out. Knows nothing of reports, so any
//! breakdown (per group, agent, vendor, period) plugs in by building [`Series`]. Every bar
//! carries its series, label and exact value as `data-*` attributes and its figure as text,
//! so the chart reads without colour and a test can compare it with the report API.

use maud::{Markup, html};

/// One value of a series: the category it belongs to, the number drawn, the text shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub label: String,
    pub value: f64,
    pub text: String,
}

/// A named list of points; several series share the categories of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

impl Series {
    /// A series from `(label, value, text)` rows.
    pub fn of(name: &str, rows: impl IntoIterator<Item = (String, f64, String)>) -> Series {
        Series {
            name: name.to_string(),
            points: rows
                .into_iter()
                .map(|(label, value, text)| Point { label, value, text })
                .collect(),
        }
    }
}

const ROW: f64 = 18.0;
const GAP: f64 = 6.0;
const LABEL: f64 = 180.0;
const WIDTH: f64 = 360.0;
/// Room right of the longest bar for its figure.
const FIGURE: f64 = 90.0;

/// A horizontal bar chart: one group per category (in first-seen order), one bar per series
/// in it, scaled to the largest value; a legend names the series when there are several.
/// Nothing is drawn for no points.
pub fn bars(title: &str, series: &[Series]) -> Markup {
    let mut labels: Vec<&str> = Vec::new();
    for p in series.iter().flat_map(|s| &s.points) {
        if !labels.contains(&p.label.as_str()) {
            labels.push(&p.label);
        }
    }
    let max = series
        .iter()
        .flat_map(|s| &s.points)
        .map(|p| p.value)
        .fold(0.0_f64, f64::max);
    let n = series.len().max(1) as f64;
    let group = ROW * n + GAP;
    let legend = if series.len() > 1 { ROW + GAP } else { 0.0 };
    let height = legend + group * labels.len() as f64 + 2.0;
    let width = LABEL + WIDTH + FIGURE;
    html! {
        @if !labels.is_empty() {
            svg.chart xmlns="http://www.w3.org/2000/svg" role="img" width=(width) height=(height)
                viewBox=(format!("0 0 {width} {height}")) preserveAspectRatio="xMinYMin meet" {
                title { (title) }
                @if series.len() > 1 {
                    @for (si, s) in series.iter().enumerate() {
                        @let x = LABEL + si as f64 * 120.0;
                        rect class=(format!("bar s{}", si % 4)) x=(x) y="3" width="12" height="12" {}
                        text.legend x=(x + 16.0) y="14" { (s.name) }
                    }
                }
                @for (li, label) in labels.iter().enumerate() {
                    @let y0 = legend + li as f64 * group;
                    text.label x=(LABEL - 6.0) y=(y0 + ROW * n / 2.0 + 4.0) text-anchor="end" { (label) }
                    @for (si, s) in series.iter().enumerate() {
                        @if let Some(p) = s.points.iter().find(|p| p.label == *label) {
                            @let y = y0 + si as f64 * ROW;
                            @let w = if max > 0.0 { (p.value / max * WIDTH).max(1.0) } else { 1.0 };
                            rect class=(format!("bar s{}", si % 4)) x=(LABEL) y=(y + 2.0) width=(w) height=(ROW - 4.0)
                                data-series=(s.name) data-label=(p.label) data-value=(p.value) {
                                title { (s.name) ", " (p.label) ": " (p.text) }
                            }
                            text.value x=(LABEL + w + 6.0) y=(y + 13.0) { (p.text) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_carry_their_values_and_escape_labels() {
        let svg = bars(
            "t",
            &[
                Series::of("opened", [("a<b".to_string(), 2.0, "2".to_string())]),
                Series::of("closed", [("a<b".to_string(), 1.0, "1".to_string())]),
            ],
        )
        .into_string();
        assert!(svg.contains("a&lt;b") && svg.contains("<svg"), "{svg}");
        assert!(svg.contains(r#"data-series="opened" data-label="a&lt;b" data-value="2""#));
        assert!(svg.contains(r#"data-series="closed" data-label="a&lt;b" data-value="1""#));
        // The longer bar spans the chart, the other half of it.
        assert!(svg.contains(r#"width="360""#) && svg.contains(r#"width="180""#));
        assert!(svg.contains(">closed</text>"), "a legend for two series");
        assert_eq!(bars("t", &[Series::of("x", [])]).into_string(), "");
    }
}
