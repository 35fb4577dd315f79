//! `litequant inspect MODEL.tflite` (or `MODEL.keras`: the float graph it lowers to).

use super::{print_error, print_warning, EXIT_BAD_INPUT};
use std::path::Path;

pub fn run(path: &Path, json: bool) -> i32 {
    // The same bounded, regular-files-only read as `build`: `inspect /dev/zero` or a FIFO is refused at once.
    let bytes = match litequant::engine::read_file(path) {
        Ok(b) => b,
        Err(e) => {
            print_error(&e.to_string());
            return EXIT_BAD_INPUT;
        }
    };
    // A `.keras` source is shown as the float graph it lowers to.
    let graph = match litequant::engine::source_graph(path, &bytes) {
        Ok(g) => g,
        Err(e) => {
            print_error(&e.to_string());
            return EXIT_BAD_INPUT;
        }
    };
    for w in &graph.warnings {
        print_warning(&format!("{}: {w}", path.display()));
    }
    let report = litequant::inspect::inspect(&graph, bytes.len() as u64);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{report}");
    }
    0
}
