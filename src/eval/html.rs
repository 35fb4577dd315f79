//! The accuracy report as one self-contained HTML page: no script, no external file, readable offline.
//!
//! The per-layer chart is inline SVG with one `<rect class="bar">` per tensor, in execution order, its length
//! the tensor's SQNR and its colour the band it falls in; hovering a bar shows its name and numbers.

use super::{db, Accuracy, TensorAccuracy};

/// Bar height and gap in the chart, in pixels.
const BAR: f64 = 14.0;
const GAP: f64 = 3.0;
/// Width of the label column and of the bar area.
const LABEL_W: f64 = 330.0;
const PLOT_W: f64 = 520.0;
/// Below this SQNR a tensor is drawn red, below [`WARN_DB`] amber.
const BAD_DB: f64 = 20.0;
const WARN_DB: f64 = 30.0;

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"))
}

/// The chart's axis maximum: the largest finite SQNR rounded up to 10 dB (at least 10).
fn axis_max(tensors: &[TensorAccuracy]) -> f64 {
    let top = tensors
        .iter()
        .filter_map(|t| t.sqnr_db)
        .filter(|v| v.is_finite())
        .fold(10.0f64, f64::max);
    (top / 10.0).ceil() * 10.0
}

/// The per-layer SQNR chart: one bar per tensor, in execution order.
pub fn chart(acc: &Accuracy) -> String {
    let tensors = &acc.tensors;
    let max = axis_max(tensors);
    let height = tensors.len() as f64 * (BAR + GAP) + 40.0;
    let width = LABEL_W + PLOT_W + 90.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"SQNR per tensor\">\n"
    );
    // Grid lines every 10 dB, labelled at the top.
    let mut tick = 0.0;
    while tick <= max {
        let x = LABEL_W + tick / max * PLOT_W;
        svg.push_str(&format!(
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"18\" x2=\"{x:.1}\" y2=\"{:.1}\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"12\">{tick:.0}</text>\n",
            height - 10.0
        ));
        tick += 10.0;
    }
    for (i, t) in tensors.iter().enumerate() {
        let y = 22.0 + i as f64 * (BAR + GAP);
        let (len, class) = match t.sqnr_db {
            None => (PLOT_W, "exact"),
            Some(v) => {
                let v = v.clamp(0.0, max);
                let class = if v < BAD_DB {
                    "bad"
                } else if v < WARN_DB {
                    "warn"
                } else {
                    "good"
                };
                (v / max * PLOT_W, class)
            }
        };
        // TF's converter joins the names of fused ops with `;`: the first is the layer's own.
        let label = super::short_name(&t.name, 48);
        svg.push_str(&format!(
            "<g><title>{name}\n{op} -> {dtype}: SQNR {sqnr}, max abs error {err:.3e}</title>\
             <text class=\"label\" x=\"{lx:.1}\" y=\"{ty:.1}\">{label}</text>\
             <rect class=\"bar {class}\" x=\"{LABEL_W}\" y=\"{y:.1}\" width=\"{len:.1}\" height=\"{BAR}\"/>\
             <text class=\"value\" x=\"{vx:.1}\" y=\"{ty:.1}\">{sqnr}</text></g>\n",
            name = esc(&t.name),
            op = esc(&t.op),
            dtype = esc(&t.dtype),
            sqnr = db(t.sqnr_db),
            err = t.max_abs_error,
            lx = LABEL_W - 8.0,
            ty = y + BAR - 3.0,
            label = esc(&label),
            vx = LABEL_W + len + 6.0,
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// The whole page for artifact `job` (`model.mode`); `details` are extra `(label, value)` rows for the header
/// table (sizes, ops kept float, ...).
pub fn render(job: &str, details: &[(String, String)], acc: &Accuracy) -> String {
    let mut rows = String::new();
    let mut row = |k: &str, v: String| {
        rows.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            esc(k),
            esc(&v)
        ));
    };
    row(
        "evaluation dataset",
        format!("{} ({} samples)", acc.dataset, acc.samples),
    );
    row("output SQNR", db(acc.sqnr_db));
    row(
        "max / mean abs error",
        format!("{:.3e} / {:.3e}", acc.max_abs_error, acc.mean_abs_error),
    );
    row("top-1 agreement", opt(acc.top1_agreement, 4));
    if let Some(out) = &acc.label_output {
        row(
            "accuracy (quantized / float)",
            format!(
                "{} / {} on {out}",
                opt(acc.accuracy_quant, 4),
                opt(acc.accuracy_float, 4)
            ),
        );
    }
    for (k, v) in details {
        row(k, v.clone());
    }
    let mut outputs = String::new();
    for o in &acc.outputs {
        outputs.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{:.3e}</td><td>{}</td></tr>\n",
            esc(&o.name),
            db(o.sqnr_db),
            o.max_abs_error,
            opt(o.top1_agreement, 4)
        ));
    }
    let mut worst = String::new();
    for t in acc.worst_tensors() {
        worst.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.3e}</td></tr>\n",
            esc(&t.name),
            esc(&t.op),
            esc(&t.dtype),
            db(t.sqnr_db),
            t.max_abs_error
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>litequant accuracy: {job}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <h1>{job}</h1>\n<p class=\"sub\">quantized model vs its float source, litequant {version}</p>\n\
         <table class=\"facts\">\n{rows}</table>\n\
         <h2>Outputs</h2>\n<table>\n<tr><th>output</th><th>SQNR</th><th>max abs error</th><th>top-1 agreement</th></tr>\n{outputs}</table>\n\
         <h2>SQNR per tensor, in execution order</h2>\n\
         <p class=\"sub\">float model tensor vs the quantized model's (dequantized) tensor of the same name; \
         red below {BAD_DB} dB, amber below {WARN_DB} dB; hover a bar for details</p>\n{chart}\n\
         <h2>Tensors, worst first</h2>\n<table>\n<tr><th>tensor</th><th>op</th><th>type</th><th>SQNR</th><th>max abs error</th></tr>\n{worst}</table>\n\
         </body>\n</html>\n",
        job = esc(job),
        version = crate::VERSION,
        chart = chart(acc),
    )
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1000px}
h1{font-size:1.5em;margin-bottom:0}h2{font-size:1.15em;margin-top:1.6em}
.sub{color:#666;margin-top:.2em}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:2px 10px;text-align:left;border-bottom:1px solid #eee}
table.facts th{color:#555;font-weight:normal}
svg.chart{font:11px monospace}
.label{text-anchor:end;fill:#333}.value{fill:#555}.tick{text-anchor:middle;fill:#888}
.grid{stroke:#ddd;stroke-width:1}
.bar.good{fill:#4c9a5f}.bar.warn{fill:#e0a030}.bar.bad{fill:#d04a3a}.bar.exact{fill:#9ab}
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{OutputAccuracy, TensorAccuracy};

    fn accuracy(sqnrs: &[Option<f64>]) -> Accuracy {
        Accuracy {
            dataset: "eval".into(),
            samples: 4,
            sqnr_db: Some(40.0),
            max_abs_error: 0.01,
            mean_abs_error: 0.001,
            top1_agreement: Some(1.0),
            label_output: None,
            accuracy_float: None,
            accuracy_quant: None,
            outputs: vec![OutputAccuracy {
                name: "out".into(),
                sqnr_db: Some(40.0),
                max_abs_error: 0.01,
                top1_agreement: Some(1.0),
            }],
            tensors: sqnrs
                .iter()
                .enumerate()
                .map(|(i, &s)| TensorAccuracy {
                    name: format!("layer<{i}>"),
                    op: "CONV_2D".into(),
                    op_index: Some(i),
                    dtype: "int8".into(),
                    sqnr_db: s,
                    max_abs_error: 0.1,
                })
                .collect(),
        }
    }

    #[test]
    fn the_chart_has_one_bar_per_tensor_coloured_by_band() {
        let page = render(
            "m.int8",
            &[],
            &accuracy(&[Some(12.0), Some(25.0), Some(45.0), None]),
        );
        assert_eq!(page.matches("<rect class=\"bar ").count(), 4);
        for class in ["bar bad", "bar warn", "bar good", "bar exact"] {
            assert_eq!(page.matches(class).count(), 1, "{class}");
        }
    }

    #[test]
    fn names_are_escaped_and_nothing_is_loaded_from_outside() {
        let page = render("m.int8", &[], &accuracy(&[Some(30.0)]));
        assert!(page.contains("layer&lt;0&gt;"));
        assert!(!page.contains("layer<0>"));
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="));
    }
}
