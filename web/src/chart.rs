//! The chart view: a bar, line or scatter chart of two of a result's
//! columns, drawn as SVG.

use dioxus::prelude::*;

use crate::result_table::ResultTable;

/// Chart kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    /// One bar per row, labelled by the x column.
    Bar,
    /// Points joined in x order.
    Line,
    /// Points.
    Scatter,
}

impl ChartKind {
    const ALL: [Self; 3] = [Self::Bar, Self::Line, Self::Scatter];

    fn label(self) -> &'static str {
        match self {
            Self::Bar => "Bar",
            Self::Line => "Line",
            Self::Scatter => "Scatter",
        }
    }
}

/// Bars drawn at most (the first rows).
pub const MAX_BARS: usize = 60;
/// Points drawn at most (the first rows).
pub const MAX_POINTS: usize = 5_000;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 340.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 48.0;

/// One mark of a chart, in SVG coordinates.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// A bar: left, top, width, height, and its label.
    Bar(f64, f64, f64, f64, String),
    /// A point: x, y.
    Point(f64, f64),
}

/// A chart laid out: its marks, the range of y, and of x when numeric.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// Marks, in drawing order (line points in x order).
    pub marks: Vec<Mark>,
    /// Smallest and largest y shown.
    pub y_range: (f64, f64),
    /// Smallest and largest x, for numeric x.
    pub x_range: Option<(f64, f64)>,
    /// Rows left out (beyond the chart's limit, or without a number).
    pub skipped: usize,
}

/// Lays out `table`'s column `y` against column `x` as a `kind` chart.
pub fn plot(table: &ResultTable, kind: ChartKind, x: usize, y: usize) -> Result<Plot, String> {
    let (Some(x_column), Some(y_column)) = (table.columns.get(x), table.columns.get(y)) else {
        return Err("Choose the columns to chart.".into());
    };
    if !y_column.numeric {
        return Err(format!(
            "{} is not a number column: choose another for y.",
            y_column.name
        ));
    }
    let limit = if kind == ChartKind::Bar {
        MAX_BARS
    } else {
        MAX_POINTS
    };
    let number = |text: &Option<String>| text.as_deref().and_then(|t| t.parse::<f64>().ok());
    let numeric_x = x_column.numeric && kind != ChartKind::Bar;
    let mut points: Vec<(f64, f64, String)> = Vec::new();
    let mut skipped = 0;
    for (index, row) in table.rows.iter().enumerate() {
        let value = row.get(y).and_then(number);
        let label = row
            .get(x)
            .cloned()
            .flatten()
            .unwrap_or_else(|| "NULL".into());
        let position = if numeric_x {
            row.get(x).and_then(number)
        } else {
            Some(index as f64)
        };
        match (position, value) {
            (Some(p), Some(v)) if points.len() < limit && v.is_finite() && p.is_finite() => {
                points.push((p, v, label));
            }
            _ => skipped += 1,
        }
    }
    if points.is_empty() {
        return Err("No rows with numbers to chart.".into());
    }
    if kind == ChartKind::Line {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let (mut low, mut high) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    if kind == ChartKind::Bar {
        low = low.min(0.0);
        high = high.max(0.0);
    }
    if high == low {
        // One value: a flat series, drawn across the middle.
        let pad = (low.abs() * 0.1).max(1.0);
        low -= pad;
        high += pad;
    }
    let (x_low, x_high) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
    let x_span = if x_high > x_low { x_high - x_low } else { 1.0 };
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let y_of = |v: f64| TOP + plot_height * (1.0 - (v - low) / (high - low));
    let marks = match kind {
        ChartKind::Bar => {
            let slot = plot_width / points.len() as f64;
            points
                .iter()
                .enumerate()
                .map(|(i, (_, v, label))| {
                    let (top, bottom) = (y_of(v.max(0.0)), y_of(v.min(0.0)));
                    Mark::Bar(
                        LEFT + slot * (i as f64 + 0.1),
                        top,
                        slot * 0.8,
                        bottom - top,
                        label.clone(),
                    )
                })
                .collect()
        }
        ChartKind::Line | ChartKind::Scatter => points
            .iter()
            .map(|(p, v, _)| {
                let x = if points.len() == 1 {
                    0.5
                } else {
                    (p - x_low) / x_span
                };
                Mark::Point(LEFT + plot_width * x, y_of(*v))
            })
            .collect(),
    };
    Ok(Plot {
        marks,
        y_range: (low, high),
        x_range: numeric_x.then_some((x_low, x_high)),
        skipped,
    })
}

/// A number for an axis label: short, without needless decimals.
fn axis_label(value: f64) -> String {
    if value.abs() >= 1e6 || (value != 0.0 && value.abs() < 1e-3) {
        format!("{value:.2e}")
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// The chart view of a result, with its kind and columns to choose.
#[component]
pub fn ChartView(table: ResultTable) -> Element {
    let numeric: Vec<usize> = (0..table.columns.len())
        .filter(|&i| table.columns[i].numeric)
        .collect();
    let first_y = numeric
        .iter()
        .copied()
        .find(|&i| i != 0)
        .or(numeric.first().copied())
        .unwrap_or(0);
    let mut kind = use_signal(|| ChartKind::Bar);
    let mut x = use_signal(|| 0usize);
    let mut y = use_signal(move || first_y);
    // A new result may not have the columns chosen for the last one.
    let x_now = if x() < table.columns.len() { x() } else { 0 };
    let y_now = if numeric.contains(&y()) { y() } else { first_y };
    let laid_out = plot(&table, kind(), x_now, y_now);
    let columns = table.columns.clone();
    rsx! {
        div { class: "chart",
            div { class: "chart-controls",
                for choice in ChartKind::ALL {
                    button { key: "{choice.label()}",
                        class: if kind() == choice { "view current" } else { "view" },
                        onclick: move |_| kind.set(choice),
                        "{choice.label()}"
                    }
                }
                label { "x "
                    select { class: "chart-x", onchange: move |e| x.set(e.value().parse().unwrap_or(0)),
                        for (index, column) in columns.iter().enumerate() {
                            option { key: "{index}", value: "{index}", selected: index == x_now, "{column.name}" }
                        }
                    }
                }
                label { "y "
                    select { class: "chart-y", onchange: move |e| y.set(e.value().parse().unwrap_or(0)),
                        for index in numeric.iter().copied() {
                            option { key: "{index}", value: "{index}", selected: index == y_now, "{columns[index].name}" }
                        }
                    }
                }
            }
            match laid_out {
                Err(why) => rsx! { p { class: "chart-empty", "{why}" } },
                Ok(plot) => rsx! { ChartSvg { plot, kind: kind() } },
            }
        }
    }
}

/// A laid-out chart as SVG.
#[component]
fn ChartSvg(plot: Plot, kind: ChartKind) -> Element {
    let (low, high) = plot.y_range;
    let bottom = HEIGHT - BOTTOM;
    let line: String = plot
        .marks
        .iter()
        .filter_map(|m| match m {
            Mark::Point(x, y) => Some(format!("{x:.1},{y:.1}")),
            Mark::Bar(..) => None,
        })
        .collect::<Vec<_>>()
        .join(" ");
    let x_labels = plot.x_range.map(|(a, b)| (axis_label(a), axis_label(b)));
    rsx! {
        svg { class: "chart-svg", view_box: "0 0 {WIDTH} {HEIGHT}", role: "img",
            line { x1: "{LEFT}", y1: "{TOP}", x2: "{LEFT}", y2: "{bottom}", class: "axis" }
            line { x1: "{LEFT}", y1: "{bottom}", x2: "{WIDTH - RIGHT}", y2: "{bottom}", class: "axis" }
            text { x: "{LEFT - 6.0}", y: "{TOP + 4.0}", text_anchor: "end", "{axis_label(high)}" }
            text { x: "{LEFT - 6.0}", y: "{bottom}", text_anchor: "end", "{axis_label(low)}" }
            if let Some((first, last)) = x_labels {
                text { x: "{LEFT}", y: "{bottom + 16.0}", "{first}" }
                text { x: "{WIDTH - RIGHT}", y: "{bottom + 16.0}", text_anchor: "end", "{last}" }
            }
            if kind == ChartKind::Line {
                polyline { class: "series", fill: "none", points: "{line}" }
            }
            for (index, mark) in plot.marks.iter().enumerate() {
                match mark {
                    Mark::Bar(x, y, w, h, label) => rsx! {
                        g { key: "{index}",
                            rect { class: "bar", x: "{x:.1}", y: "{y:.1}", width: "{w:.1}", height: "{h:.1}",
                                title { "{label}" }
                            }
                            if plot.marks.len() <= 24 {
                                text { class: "bar-label", x: "{x + w / 2.0:.1}", y: "{bottom + 16.0}",
                                    text_anchor: "middle", "{label}" }
                            }
                        }
                    },
                    Mark::Point(x, y) => rsx! {
                        circle { key: "{index}", class: "point", cx: "{x:.1}", cy: "{y:.1}",
                            r: if kind == ChartKind::Scatter { "3" } else { "2" } }
                    },
                }
            }
        }
        if plot.skipped > 0 {
            p { class: "chart-note", "{plot.skipped} rows not drawn (no number, or beyond the chart's limit)." }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result_table::Column;

    fn table() -> ResultTable {
        let column = |name: &str, numeric| Column {
            name: name.into(),
            data_type: if numeric {
                "Int64".into()
            } else {
                "Utf8".into()
            },
            numeric,
        };
        ResultTable {
            columns: vec![
                column("city", false),
                column("trips", true),
                column("fare", true),
            ],
            rows: vec![
                vec![Some("Oslo".into()), Some("30".into()), Some("2.5".into())],
                vec![Some("Lima".into()), Some("10".into()), Some("-1".into())],
                vec![Some("Rome".into()), None, Some("4".into())],
            ],
        }
    }

    #[test]
    fn bars_start_at_zero_and_skip_rows_without_numbers() {
        let plot = plot(&table(), ChartKind::Bar, 0, 1).unwrap();
        assert_eq!(plot.y_range, (0.0, 30.0));
        assert_eq!(plot.marks.len(), 2);
        assert_eq!(plot.skipped, 1);
        let Mark::Bar(_, top, _, height, label) = &plot.marks[0] else {
            panic!()
        };
        assert_eq!(label, "Oslo");
        assert!((top - TOP).abs() < 1e-9, "the tallest bar reaches the top");
        assert!(
            (top + height - (HEIGHT - BOTTOM)).abs() < 1e-9,
            "and stands on the axis"
        );
    }

    #[test]
    fn lines_run_in_x_order_and_scatter_spans_the_axis() {
        let line = plot(&table(), ChartKind::Line, 1, 2).unwrap();
        assert_eq!(line.x_range, Some((10.0, 30.0)));
        let xs: Vec<f64> = line
            .marks
            .iter()
            .map(|m| match m {
                Mark::Point(x, _) => *x,
                _ => panic!(),
            })
            .collect();
        assert!(xs[0] < xs[1], "{xs:?}");
        let scatter = plot(&table(), ChartKind::Scatter, 2, 2).unwrap();
        assert_eq!(scatter.y_range, (-1.0, 4.0));
        assert_eq!(scatter.marks.len(), 3);
    }

    #[test]
    fn text_cannot_be_the_y_axis() {
        assert!(
            plot(&table(), ChartKind::Bar, 1, 0)
                .unwrap_err()
                .contains("not a number")
        );
        assert!(plot(&ResultTable::default(), ChartKind::Bar, 0, 0).is_err());
    }

    #[test]
    fn the_view_draws_svg_bars() {
        let html = crate::render_ssr(|| rsx! { ChartView { table: table() } });
        assert_eq!(html.matches("class=\"bar\"").count(), 2, "{html}");
        assert!(html.contains(">Oslo<"), "{html}");
    }
}
