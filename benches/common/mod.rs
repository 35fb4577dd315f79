//! Helpers shared by the benchmarks: the Python with LiteRT, the machine line, Markdown tables.

use std::path::PathBuf;
use std::process::Command;

/// The Python that runs LiteRT: `LITEQUANT_TEST_PYTHON`, else `.venv/bin/python`, if it imports LiteRT.
pub fn find_python() -> Result<PathBuf, String> {
    let mut tried = Vec::new();
    let candidates = std::env::var("LITEQUANT_TEST_PYTHON")
        .ok()
        .into_iter()
        .chain([".venv/bin/python".to_string()]);
    for candidate in candidates {
        let ok = Command::new(&candidate)
            .args(["-c", "import ai_edge_litert.interpreter, numpy"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(PathBuf::from(candidate));
        }
        tried.push(candidate);
    }
    Err(format!(
        "no Python with ai-edge-litert and numpy: tried {} (set LITEQUANT_TEST_PYTHON, or run ./scripts/test.sh once)",
        tried.join(", ")
    ))
}

/// A rate for a table cell (`n/a` when there is none).
pub fn rate_cell(rate: &Result<f64, String>) -> String {
    match rate {
        Ok(r) if *r >= 100.0 => format!("{r:.0}"),
        Ok(r) => format!("{r:.1}"),
        Err(_) => "n/a".into(),
    }
}

/// Prints rows as a Markdown table with aligned columns (first column left, the others right).
pub fn print_aligned(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: &Vec<String>| {
        let cells: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(c, &w)| {
                let s = r.get(c).map_or("", String::as_str);
                if c == 0 {
                    format!("{s:<w$}")
                } else {
                    format!("{s:>w$}")
                }
            })
            .collect();
        format!("| {} |", cells.join(" | "))
    };
    for (i, r) in rows.iter().enumerate() {
        println!("{}", line(r));
        if i == 0 {
            // Markdown: a colon at the right end of the rule right-aligns the column.
            let rule: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, &w)| {
                    if c == 0 {
                        "-".repeat(w + 2)
                    } else {
                        format!("{}:", "-".repeat(w + 1))
                    }
                })
                .collect();
            println!("|{}|", rule.join("|"));
        }
    }
}

/// CPU model, core count and load, so a pasted table says where it was measured.
pub fn machine_line() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |s| s.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "machine: {cpu}, {cores} cores available, load average {}",
        load.join(" ")
    )
}

/// The median (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
