//! `litequant check`: validate a config without building.

use super::{print_error, print_warning, EXIT_BAD_INPUT};
use litequant::engine::{self, Plan};
use litequant::quantize::ExcludeSet;
use std::path::Path;

pub fn run(path: &Path) -> i32 {
    let config = match litequant::config::load(path) {
        Ok(c) => c,
        Err(e) => {
            print_error(&e.to_string());
            return EXIT_BAD_INPUT;
        }
    };
    let plan = Plan::new(&config, None);
    let mut errors = 0;
    for (name, model) in &config.models {
        match engine::load_source(&model.source) {
            Ok((graph, _)) => {
                for w in ExcludeSet::new(&model.exclude).unmatched_warnings(&graph) {
                    print_warning(&format!("model `{name}`: {w}"));
                }
                for w in &graph.warnings {
                    print_warning(&format!("{}: {w}", model.source.display()));
                }
            }
            Err(e) => {
                print_error(&format!("model `{name}`: {e}"));
                errors += 1;
            }
        }
    }
    for file in plan.inputs() {
        if !file.exists() {
            print_error(&format!("{}: no such file or folder", file.display()));
            errors += 1;
        }
    }
    if errors > 0 {
        return EXIT_BAD_INPUT;
    }
    println!(
        "{}: ok ({} models, {} datasets, {} jobs)",
        path.display(),
        config.models.len(),
        config.datasets.len(),
        plan.jobs.len()
    );
    0
}
