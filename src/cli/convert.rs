//! `litequant convert MODEL.keras -o MODEL.tflite`: the float32 graph TF's converter would write.

use super::{print_error, EXIT_BAD_INPUT, EXIT_FAILED};
use std::path::Path;

pub fn run(source: &Path, output: &Path) -> i32 {
    let bytes = match litequant::engine::read_file(source) {
        Ok(b) => b,
        Err(e) => {
            print_error(&e.to_string());
            return EXIT_BAD_INPUT;
        }
    };
    let graph = match litequant::engine::source_graph(source, &bytes) {
        Ok(g) => g,
        Err(e) => {
            print_error(&e.to_string());
            return EXIT_BAD_INPUT;
        }
    };
    let out = graph.to_bytes();
    if let Err(e) = std::fs::write(output, &out) {
        print_error(&format!("{}: {e}", output.display()));
        return EXIT_FAILED;
    }
    let ops = graph.ops().len();
    println!(
        "{} -> {} ({} ops, {} bytes)",
        source.display(),
        output.display(),
        ops,
        out.len()
    );
    0
}
