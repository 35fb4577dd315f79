//! `litequant check`: every validation `build` runs, short of calibrating and quantizing.
//!
//! The config is parsed and validated; every model is read and verified exactly as `build` reads it
//! ([`engine::load_source`]); every dataset a job reads is opened against the model's inputs as calibration
//! opens it (file type, headers, array names, shapes, dtypes, sample counts, `inputs` maps), and evaluation
//! datasets have their labels checked as evaluation checks them. Exit code 2 when anything is wrong, every
//! problem printed; 0 and one summary line otherwise.

use super::{print_error, print_warning, EXIT_BAD_INPUT};
use litequant::config::{Config, ModelConfig};
use litequant::dataset::{self, DatasetSpec, InputSpec};
use litequant::engine::{self, Plan};
use litequant::graph::Graph;
use litequant::quantize::ExcludeSet;
use std::collections::BTreeSet;
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
    // Conversion notes are said once per dataset, however many models read it.
    let mut said = BTreeSet::new();
    for (name, model) in &config.models {
        let graph = match engine::load_source(&model.source) {
            Ok((graph, _)) => graph,
            Err(e) => {
                print_error(&format!("model `{name}`: {e}"));
                errors += 1;
                continue;
            }
        };
        for w in ExcludeSet::new(&model.exclude).unmatched_warnings(&graph) {
            print_warning(&format!("model `{name}`: {w}"));
        }
        for w in &graph.warnings {
            print_warning(&format!("{}: {w}", model.source.display()));
        }
        for problem in check_datasets(&config, model, &graph, &mut said) {
            print_error(&format!("model `{name}`: {problem}"));
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

/// Opens the datasets `build` would read for `model` (calibration, when a mode calibrates; evaluation) as it
/// reads them, printing their conversion notes; returns the problems found.
fn check_datasets(
    config: &Config,
    model: &ModelConfig,
    graph: &Graph,
    said: &mut BTreeSet<String>,
) -> Vec<String> {
    let inputs = engine::input_specs(graph);
    let calibrates = model.modes.iter().any(|mode| mode.needs_calibration());
    let calibration = model.dataset.as_ref().filter(|_| calibrates);
    let mut problems = Vec::new();
    for (name, is_eval) in calibration
        .map(|d| (d, false))
        .into_iter()
        .chain(model.eval.as_ref().map(|d| (d, true)))
    {
        // Validation guarantees the name is declared; a dataset with errors never gets here.
        let Some(spec) = config.datasets.get(name) else {
            continue;
        };
        if let Err(e) = check_dataset(spec, &inputs, graph, is_eval, said) {
            problems.push(e.to_string());
        }
    }
    problems
}

fn check_dataset(
    spec: &DatasetSpec,
    inputs: &[InputSpec],
    graph: &Graph,
    is_eval: bool,
    said: &mut BTreeSet<String>,
) -> Result<(), dataset::DatasetError> {
    let stream = dataset::open(spec, inputs)?;
    for note in stream.conversions() {
        if said.insert(note.clone()) {
            print_warning(&note);
        }
    }
    if is_eval {
        litequant::eval::check_labels(spec, stream.len(), graph)?;
    }
    Ok(())
}
