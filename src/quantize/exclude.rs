//! `exclude`: ops kept float, by op type or by glob over the parts of the op's output tensor names.

use crate::graph::{Graph, OpIndex};

/// The compiled `exclude` list of a model.
#[derive(Debug, Clone)]
pub struct ExcludeSet {
    entries: Vec<(String, Option<glob::Pattern>)>,
}

impl ExcludeSet {
    /// Compiles the patterns; a pattern that is not a valid glob is matched literally.
    pub fn new(patterns: &[String]) -> ExcludeSet {
        ExcludeSet {
            entries: patterns
                .iter()
                .map(|p| (p.clone(), glob::Pattern::new(p).ok()))
                .collect(),
        }
    }

    /// Whether `pattern` matches op `i`: its type name (`SOFTMAX`, `CUSTOM(name)`), or any `;`-separated part
    /// of any of its output tensor names.
    fn matches_one(graph: &Graph, i: OpIndex, pattern: &str, glob: Option<&glob::Pattern>) -> bool {
        let type_name = graph.op_type_name(i);
        if type_name == pattern {
            return true;
        }
        graph.op_outputs(i).iter().any(|&t| {
            graph
                .tensor_name(t)
                .split(';')
                .any(|part| glob.map_or(part == pattern, |g| g.matches(part)))
        })
    }

    /// Whether op `i` is excluded.
    pub fn matches(&self, graph: &Graph, i: OpIndex) -> bool {
        self.entries
            .iter()
            .any(|(p, g)| Self::matches_one(graph, i, p, g.as_ref()))
    }

    /// Patterns that match no op of the graph (worth a warning: probably a typo).
    pub fn unmatched(&self, graph: &Graph) -> Vec<String> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        // Every subgraph's ops count (a loop body's ops can be excluded too).
        let views: Vec<Graph> = (1..graph.subgraph_count()).map(|s| graph.view(s)).collect();
        let graphs: Vec<&Graph> = std::iter::once(graph).chain(views.iter()).collect();
        self.entries
            .iter()
            .filter(|(p, g)| {
                !graphs.iter().any(|graph| {
                    (0..graph.ops().len())
                        .any(|i| Self::matches_one(graph, OpIndex(i), p, g.as_ref()))
                })
            })
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// One warning per pattern that matches no op, for the job's report.
    pub fn unmatched_warnings(&self, graph: &Graph) -> Vec<String> {
        self.unmatched(graph)
            .into_iter()
            .map(|p| format!("exclude pattern {p:?} matches no op of the model"))
            .collect()
    }
}
