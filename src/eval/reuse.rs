//! What successive evaluations of quantized models of one float model share (an accuracy target's rounds,
//! each keeping one more op float): every tensor of a quantized model is named by a digest of what computes
//! it (its op, the op's options, constants and parameters, and recursively its inputs' digests, as a Merkle
//! tree). Two models' tensors with the same digest hold the same values on the same sample, so an op whose
//! outputs were all computed in the previous round is not run again, and their accuracy is not measured
//! again: a round costs what changed, the ops downstream of the one newly kept float.

use super::Energy;
use crate::graph::{Graph, OpIndex, TensorId};
use crate::interp::Tensor;
use crate::tflite::fb;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What a tensor's values follow from.
pub(super) type Key = [u8; 32];

/// Bytes of activations kept from one round for the next (past it, the next round computes everything).
const MEMO_BUDGET: usize = 512 << 20;

/// The previous round: each sample's op outputs and each compared tensor's accuracy, by key.
#[derive(Default)]
pub(super) struct Memo {
    /// Per evaluation sample: every op output of the main subgraph.
    pub samples: Vec<HashMap<Key, Arc<Tensor>>>,
    /// Per (op output, float tensor compared with it): the energy over all samples.
    pub energies: HashMap<(Key, usize), Energy>,
}

impl Memo {
    /// Whether the memo holds every sample's values (a round computing fewer samples keeps none).
    fn complete(&self, samples: usize) -> bool {
        self.samples.len() == samples
    }

    /// The memo to keep, or `None` when its activations exceed [`MEMO_BUDGET`].
    pub fn within_budget(self) -> Option<Memo> {
        let bytes: usize = self
            .samples
            .iter()
            .flat_map(HashMap::values)
            .map(|t| bytes(t))
            .sum();
        (bytes <= MEMO_BUDGET).then_some(self)
    }
}

/// Bytes a tensor's elements take.
fn bytes(t: &Tensor) -> usize {
    use crate::interp::TensorData as D;
    let size = match &t.data {
        D::F32(_) | D::I32(_) => 4,
        D::I64(_) => 8,
        D::F16(_) | D::I16(_) => 2,
        _ => 1,
    };
    t.data.len() * size
}

/// Which ops of a model a round runs, and which reused values it reads.
pub(super) struct Plan {
    /// Per tensor of the main subgraph.
    pub keys: Vec<Key>,
    /// Per op: its outputs were all computed (and measured) in the previous round.
    pub skip: Vec<bool>,
    /// Outputs of skipped ops that a computed op or the caller (model outputs) reads.
    pub load: Vec<TensorId>,
}

impl Plan {
    /// The plan for `g` (the tensors compared with float tensors are `compared`: quantized id and float id)
    /// against the previous round's `memo` over `samples` samples; `round` makes the keys of ops whose
    /// values keys cannot vouch for (control flow, resource variables) differ from every earlier round's.
    pub fn new(
        g: &Graph,
        compared: &[(TensorId, usize)],
        memo: Option<&Memo>,
        samples: usize,
        round: u64,
    ) -> Plan {
        let keys = tensor_keys(g, round);
        let n_ops = g.ops().len();
        let memo = memo.filter(|m| m.complete(samples) && samples > 0);
        let Some(memo) = memo else {
            return Plan {
                keys,
                skip: vec![false; n_ops],
                load: Vec::new(),
            };
        };
        let known = &memo.samples[0];
        let mut compared_with: HashMap<usize, Vec<usize>> = HashMap::new();
        for &(q, f) in compared {
            compared_with.entry(q.0).or_default().push(f);
        }
        let skip: Vec<bool> = (0..n_ops)
            .map(|i| {
                g.op_outputs(OpIndex(i)).iter().all(|t| {
                    let key = keys[t.0];
                    known.contains_key(&key)
                        && compared_with.get(&t.0).is_none_or(|floats| {
                            floats
                                .iter()
                                .all(|&f| memo.energies.contains_key(&(key, f)))
                        })
                })
            })
            .collect();
        let mut read: HashSet<usize> = g.outputs().iter().map(|t| t.0).collect();
        for i in (0..n_ops).filter(|&i| !skip[i]) {
            read.extend(g.op_inputs(OpIndex(i)).into_iter().flatten().map(|t| t.0));
        }
        let load = (0..n_ops)
            .filter(|&i| skip[i])
            .flat_map(|i| g.op_outputs(OpIndex(i)))
            .filter(|t| read.contains(&t.0))
            .collect();
        Plan { keys, skip, load }
    }
}

/// Ops whose outputs follow from more than their inputs and their own description.
fn volatile(code: fb::BuiltinOperator) -> bool {
    use fb::BuiltinOperator as B;
    matches!(
        code,
        B::WHILE
            | B::IF
            | B::CALL_ONCE
            | B::VAR_HANDLE
            | B::READ_VARIABLE
            | B::ASSIGN_VARIABLE
            | B::RANDOM_UNIFORM
            | B::RANDOM_STANDARD_NORMAL
            | B::MULTINOMIAL
    )
}

/// A tensor's description without its name and buffer index.
fn describe(t: &fb::TensorT) -> String {
    let mut t = t.clone();
    t.name = None;
    t.buffer = 0;
    format!("{t:?}")
}

/// The key of every tensor of the main subgraph of `g`, in one pass over the ops.
fn tensor_keys(g: &Graph, round: u64) -> Vec<Key> {
    let n = g.tensors().len();
    let leaf = |tag: &[u8], t: TensorId, extra: &[u8]| -> Key {
        let mut h = Sha256::new();
        h.update(tag);
        h.update(describe(g.tensor(t)).as_bytes());
        h.update(extra);
        h.finalize().into()
    };
    let inputs = g.inputs();
    let mut keys: Vec<Key> = (0..n)
        .map(|t| {
            let id = TensorId(t);
            if let Some(data) = g.buffer_data(id) {
                leaf(b"constant", id, data)
            } else if let Some(i) = inputs.iter().position(|&x| x == id) {
                leaf(b"input", id, &i.to_le_bytes())
            } else if g.tensor(id).is_variable {
                leaf(b"variable", id, &[])
            } else {
                // Read before anything writes it (the interpreter refuses that): never the same twice.
                leaf(b"unwritten", id, &round.to_le_bytes())
            }
        })
        .collect();
    for i in 0..g.ops().len() {
        let op = OpIndex(i);
        let mut h = Sha256::new();
        h.update(b"op");
        h.update(format!("{:?}", g.op_code_entry(op)).as_bytes());
        let mut desc = g.op(op).clone();
        desc.opcode_index = 0;
        desc.inputs = None;
        desc.outputs = None;
        desc.intermediates = None;
        desc.debug_metadata_index = 0;
        h.update(format!("{desc:?}").as_bytes());
        if volatile(g.op_code(op)) || !g.called_subgraphs(op).is_empty() {
            h.update(round.to_le_bytes());
        }
        for t in g.op_inputs(op) {
            match t {
                Some(t) => h.update(keys[t.0]),
                None => h.update([0u8; 32]),
            }
        }
        for &t in g.op(op).intermediates.as_deref().unwrap_or(&[]) {
            if let Ok(t) = usize::try_from(t) {
                if t < n {
                    h.update(describe(g.tensor(TensorId(t))).as_bytes());
                }
            }
        }
        for (k, t) in g.op_outputs(op).into_iter().enumerate() {
            let mut out = h.clone();
            out.update(b"output");
            out.update(k.to_le_bytes());
            out.update(describe(g.tensor(t)).as_bytes());
            keys[t.0] = out.finalize().into();
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::versions::testing::ModelBuilder;
    use fb::TensorType as T;

    /// x -> RELU -> a -> RELU -> b; with `scale` the quantization of `a`.
    fn chain(scale: f32) -> Graph {
        let mut m = ModelBuilder::new();
        let x = m.input("x", &[1, 4]);
        let a = m.tensor("a", T::FLOAT32, &[1, 4]);
        let b = m.tensor("b", T::FLOAT32, &[1, 4]);
        m.quantize(a, vec![scale], 0);
        for (i, o) in [(x, a), (a, b)] {
            m.op(
                fb::BuiltinOperator::RELU,
                &[Some(i)],
                &[o],
                fb::BuiltinOptionsT::NONE,
            );
        }
        m.output(b);
        m.build()
    }

    #[test]
    fn a_changed_op_changes_its_outputs_key_and_everything_downstream_only() {
        let (g1, g2) = (chain(0.1), chain(0.2));
        let (k1, k2) = (tensor_keys(&g1, 0), tensor_keys(&g2, 1));
        let ids = |g: &Graph, name: &str| {
            (0..g.tensors().len())
                .find(|&t| g.tensor_name(TensorId(t)) == name)
                .unwrap()
        };
        assert_eq!(k1[ids(&g1, "x")], k2[ids(&g2, "x")]);
        assert_ne!(k1[ids(&g1, "a")], k2[ids(&g2, "a")]);
        assert_ne!(k1[ids(&g1, "b")], k2[ids(&g2, "b")]);
        assert_eq!(tensor_keys(&g1, 0), tensor_keys(&chain(0.1), 7));
    }

    #[test]
    fn ops_with_known_outputs_are_skipped_and_their_read_outputs_loaded() {
        let g = chain(0.1);
        let keys = tensor_keys(&g, 0);
        let a = g.op_outputs(OpIndex(0))[0];
        let mut memo = Memo::default();
        let value = Arc::new(Tensor::f32(vec![1, 4], vec![0.0; 4]).unwrap());
        memo.samples = vec![HashMap::from([(keys[a.0], value)])];
        let plan = Plan::new(&g, &[], Some(&memo), 1, 1);
        assert_eq!(plan.skip, [true, false]);
        assert_eq!(plan.load, [a]);
        // An energy the previous round did not measure makes the op run again.
        let plan = Plan::new(&g, &[(a, 0)], Some(&memo), 1, 1);
        assert_eq!(plan.skip, [false, false]);
        // A memo of other samples is not used.
        assert!(!Plan::new(&g, &[], Some(&memo), 2, 1).skip.contains(&true));
    }

    /// x -> MUL 0.5 -> a -> MUL `c` -> b -> MUL 2 -> y, float.
    fn scaled(c: f32) -> Graph {
        let mut m = ModelBuilder::new();
        let x = m.input("x", &[1, 8]);
        let mut last = x;
        for (name, factor) in [("a", 0.5), ("b", c), ("y", 2.0)] {
            let w = m.weights(&format!("{name}_w"), &[1], |_| factor);
            let out = m.tensor(name, T::FLOAT32, &[1, 8]);
            m.op(
                fb::BuiltinOperator::MUL,
                &[Some(last), Some(w)],
                &[out],
                fb::BuiltinOptionsT::MulOptions(Box::default()),
            );
            last = out;
        }
        m.output(last);
        m.build()
    }

    #[test]
    fn each_round_of_an_evaluator_reports_what_a_fresh_evaluation_does() {
        use crate::dataset::{DatasetFormat, DatasetSpec};
        use crate::eval::{evaluate_against, EvalData, EvalOptions, Evaluator, FloatReference};
        let float = scaled(1.0);
        let spec = DatasetSpec {
            name: "eval".into(),
            format: DatasetFormat::Random,
            path: None,
            samples: Some(20),
            resize: None,
            mean: Vec::new(),
            std: Vec::new(),
            inputs: Default::default(),
            feeds: Default::default(),
            range: None,
            seed: 3,
            labels: None,
            label_output: None,
            origin: Default::default(),
        };
        let data = EvalData::load(&spec, &float).unwrap();
        let mut evaluator = Evaluator::new(FloatReference::new(&float, &data).unwrap());
        for (c, skipped) in [(1.1, 0), (1.1, 3), (0.9, 1), (1.3, 1)] {
            let bytes = scaled(c).to_bytes();
            for threads in [1, 2] {
                let opts = EvalOptions { threads };
                let fresh = evaluate_against(evaluator.reference(), &bytes, &opts).unwrap();
                let reused = evaluator.evaluate(&bytes, &opts).unwrap();
                assert_eq!(reused, fresh, "factor {c}, {threads} thread(s)");
                assert!(fresh.tensors.len() >= 3);
                if threads == 1 {
                    assert_eq!(evaluator.skipped, skipped, "factor {c}");
                }
            }
        }
    }
}
