//! TF's folds of a scalar affine `x * scale + offset` (Rescaling, Average's division, hard_sigmoid's `/ 6`) into
//! the convolution or Dense next to it: into the weights and bias of the producer before it, or of the Dense or
//! convolution reading it (whose ops are then taken out again).

use super::activation::folds_batch_norm;
use super::{Lowering, Value};
use crate::graph::{OpIndex, TensorId};
use crate::keras::config::LayerCall;

/// Ops computing `input * scale + offset` that a Dense or convolution reading their output may absorb.
#[derive(Debug, Clone)]
pub struct ScalarAffine {
    /// The tensor the ops read.
    pub input: TensorId,
    /// The factor.
    pub scale: f32,
    /// The term added after scaling.
    pub offset: f32,
    /// The ops (MUL, ADD), in order.
    pub ops: Vec<OpIndex>,
}

impl Lowering<'_> {
    /// Folds `v * scale + offset` into the convolution or Dense producing `v` when only `call` reads it (and no
    /// activation is fused there); whether it did.
    pub(super) fn fold_into_producer(
        &mut self,
        call: &LayerCall,
        v: &Value,
        scale: f32,
        offset: f32,
    ) -> bool {
        let Some(p) = self.producers.get(&v.tensor).copied() else {
            return false;
        };
        if !self.sole_reader(call) || v.pad.is_some() || !folds_batch_norm(p.kind) {
            return false;
        }
        let tfl = v.tfl_shape();
        let channels = tfl[tfl.len() - 1];
        self.fold_batch_norm(call, p, &vec![scale; channels], &vec![offset; channels]);
        true
    }

    /// The scalar affine behind `v`, its ops removed, when `call` is its only reader: the Dense or
    /// convolution of `call` then reads `input` and scales its own weights.
    pub(super) fn absorb_scalar(&mut self, call: &LayerCall, v: &Value) -> Option<ScalarAffine> {
        if !self.sole_reader(call) || v.pad.is_some() {
            return None;
        }
        let affine = self.scalars.remove(&v.tensor)?;
        self.remove_ops(&affine.ops);
        Some(affine)
    }

    /// Takes ops out of the graph, renumbering the ops recorded after them.
    pub(super) fn remove_ops(&mut self, ops: &[OpIndex]) {
        let mut sorted: Vec<usize> = ops.iter().map(|o| o.0).collect();
        sorted.sort_unstable();
        for &i in sorted.iter().rev() {
            if let Some(list) = self.b.graph.main_mut().operators.as_mut() {
                list.remove(i);
            }
        }
        let shift = |o: OpIndex| OpIndex(o.0 - sorted.iter().filter(|&&r| r < o.0).count());
        self.producers.retain(|_, p| !sorted.contains(&p.op.0));
        for p in self.producers.values_mut() {
            p.op = shift(p.op);
        }
        for s in self.scalars.values_mut() {
            s.ops = s.ops.iter().map(|&o| shift(o)).collect();
        }
        self.sequences.retain(|_, (_, o)| !sorted.contains(&o.0));
        for (_, o) in self.sequences.values_mut() {
            *o = shift(*o);
        }
    }
}

/// A Keras kernel whose last axis is the output channel, absorbing a scalar affine of its input: the kernel
/// scaled by `scale`, and `offset` times each output's kernel sum added to the bias (`bias` of `units` values,
/// zeros when absent).
pub fn absorb_into_kernel(
    kernel: &mut [f32],
    bias: Option<Vec<f32>>,
    units: usize,
    affine: &ScalarAffine,
) -> Option<Vec<f32>> {
    let mut sums = vec![0.0f32; units];
    for (i, w) in kernel.iter_mut().enumerate() {
        sums[i % units] += *w;
        *w *= affine.scale;
    }
    if affine.offset == 0.0 {
        return bias;
    }
    let mut bias = bias.unwrap_or_else(|| vec![0.0; units]);
    for (b, s) in bias.iter_mut().zip(&sums) {
        *b += affine.offset * s;
    }
    Some(bias)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorbed_affine_gives_the_same_dense_output() {
        // Dense of x * 2 + 1 with kernel [in 2, out 2] equals Dense of x with the absorbed kernel and bias.
        let kernel = vec![1.0, 2.0, 3.0, 4.0];
        let affine = ScalarAffine {
            input: TensorId(0),
            scale: 2.0,
            offset: 1.0,
            ops: Vec::new(),
        };
        let mut absorbed = kernel.clone();
        let bias = absorb_into_kernel(&mut absorbed, Some(vec![0.5, -0.5]), 2, &affine).unwrap();
        let x = [0.25f32, -1.0];
        for o in 0..2 {
            let direct: f32 = (0..2)
                .map(|i| (x[i] * 2.0 + 1.0) * kernel[i * 2 + o])
                .sum::<f32>()
                + [0.5, -0.5][o];
            let folded: f32 = (0..2).map(|i| x[i] * absorbed[i * 2 + o]).sum::<f32>() + bias[o];
            assert!((direct - folded).abs() < 1e-6, "{direct} vs {folded}");
        }
    }
}
