//! Cross-layer equalization: per-channel scale migration between a convolution and the convolution that
//! reads its output, keeping the float function.
//!
//! A producer `CONV_2D` or `DEPTHWISE_CONV_2D` (fused activation NONE or RELU, both commute with a positive
//! per-channel scale) whose output is read only by one `CONV_2D` or `DEPTHWISE_CONV_2D`, as its data input:
//! output channel `c` of the producer (its weights and bias) is divided by `s[c]` and the consumer's weights
//! on input channel `c` are multiplied by it, so the consumer computes the same function. With
//! `s[c] = sqrt(r1[c] / r2[c])` (`r1`: the producer's weight range on output channel `c`, `r2`: the
//! consumer's weight range on input channel `c`) both ranges become `sqrt(r1 * r2)` (Nagel et al., 2019,
//! "Data-free quantization through weight equalization and bias correction"). What it buys: a channel whose
//! activations dwarf every other channel's (MediaPipe's face detector has one at -322 where the others stay
//! within 26) no longer sets the per-tensor activation scale, nor turns the consumer's small weights on that
//! channel into the largest error of its per-channel weight quantization.

use super::{Graph, OpIndex, TensorId};
use crate::tflite::fb;

/// Where a constant's channels are: the axis and, for a depthwise consumer, the depth multiplier.
struct Weights {
    tensor: TensorId,
    values: Vec<f32>,
    shape: Vec<usize>,
}

impl Weights {
    fn read(g: &Graph, t: TensorId) -> Option<Weights> {
        let values = g.const_f32(t)?;
        let shape: Vec<usize> = g
            .shape(t)
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect::<Option<_>>()?;
        (shape.len() == 4 && shape.iter().product::<usize>() == values.len()).then_some(Weights {
            tensor: t,
            values,
            shape,
        })
    }

    /// Channel `c` (of `n`) of element `i`: along axis 0 or along the last axis (grouped by `per`).
    fn channel(&self, i: usize, last_axis: bool, per: usize) -> usize {
        if last_axis {
            (i % self.shape[3]) / per
        } else {
            i / (self.values.len() / self.shape[0])
        }
    }

    fn abs_max(&self, n: usize, last_axis: bool, per: usize) -> Vec<f32> {
        let mut r = vec![0f32; n];
        for (i, v) in self.values.iter().enumerate() {
            let c = self.channel(i, last_axis, per);
            r[c] = r[c].max(v.abs());
        }
        r
    }

    fn scale(&mut self, s: &[f32], last_axis: bool, per: usize, divide: bool) {
        for i in 0..self.values.len() {
            let c = self.channel(i, last_axis, per);
            if divide {
                self.values[i] /= s[c];
            } else {
                self.values[i] *= s[c];
            }
        }
    }

    fn write(self, g: &mut Graph) {
        let bytes = self.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        g.set_tensor_data(self.tensor, bytes);
    }
}

/// One producer -> consumer pair to equalize.
struct Pair {
    producer: OpIndex,
    consumer: OpIndex,
}

fn fused_activation(g: &Graph, op: OpIndex) -> Option<fb::ActivationFunctionType> {
    let o = &g.op(op).builtin_options;
    match g.op_code(op) {
        fb::BuiltinOperator::CONV_2D => o.as_conv_2_doptions().map(|o| o.fused_activation_function),
        fb::BuiltinOperator::DEPTHWISE_CONV_2D => o
            .as_depthwise_conv_2_doptions()
            .map(|o| o.fused_activation_function),
        _ => None,
    }
}

fn is_conv(g: &Graph, op: OpIndex) -> bool {
    matches!(
        g.op_code(op),
        fb::BuiltinOperator::CONV_2D | fb::BuiltinOperator::DEPTHWISE_CONV_2D
    )
}

/// The pairs of the focused subgraph that can be equalized, in execution order, each op in at most one.
fn pairs(g: &Graph) -> Vec<Pair> {
    let consumers = g.consumers();
    let outputs = g.outputs();
    let mut used = vec![false; g.ops().len()];
    let mut found = Vec::new();
    for p in (0..g.ops().len()).map(OpIndex) {
        if used[p.0] || !is_conv(g, p) {
            continue;
        }
        if !matches!(
            fused_activation(g, p),
            Some(fb::ActivationFunctionType::NONE | fb::ActivationFunctionType::RELU)
        ) {
            continue;
        }
        let [y] = g.op_outputs(p)[..] else { continue };
        if outputs.contains(&y) {
            continue;
        }
        let [c] = consumers[y.0][..] else { continue };
        if used[c.0] || !is_conv(g, c) {
            continue;
        }
        let inputs = g.op_inputs(c);
        // The data input only: a tensor that is also the consumer's weights or bias is not an activation.
        if inputs.first() != Some(&Some(y)) || inputs[1..].contains(&Some(y)) {
            continue;
        }
        // Weights and biases read by one op only: scaling them must not change another op.
        let own = |op: OpIndex| {
            g.op_inputs(op)[1..]
                .iter()
                .flatten()
                .all(|t| consumers[t.0].len() == 1 && g.tensor(*t).type_ == fb::TensorType::FLOAT32)
        };
        if !own(p) || !own(c) {
            continue;
        }
        used[p.0] = true;
        used[c.0] = true;
        found.push(Pair {
            producer: p,
            consumer: c,
        });
    }
    found
}

/// Equalizes every eligible convolution pair of every subgraph (see the module doc). Returns how many pairs
/// changed. Tensor ids do not change; the rescaled constants get buffers of their own.
pub fn equalize_cross_layer(g: &mut Graph) -> usize {
    let focused = g.focused();
    let mut n = 0;
    for sg in 0..g.subgraph_count() {
        g.focus(sg);
        for pair in pairs(g) {
            n += usize::from(equalize_pair(g, &pair));
        }
    }
    g.focus(focused);
    n
}

fn equalize_pair(g: &mut Graph, pair: &Pair) -> bool {
    let p_in = g.op_inputs(pair.producer);
    let c_in = g.op_inputs(pair.consumer);
    let (Some(Some(pw)), Some(Some(cw))) = (p_in.get(1).copied(), c_in.get(1).copied()) else {
        return false;
    };
    let (Some(mut pw), Some(mut cw)) = (Weights::read(g, pw), Weights::read(g, cw)) else {
        return false;
    };
    let p_depthwise = g.op_code(pair.producer) == fb::BuiltinOperator::DEPTHWISE_CONV_2D;
    let channels = if p_depthwise {
        pw.shape[3]
    } else {
        pw.shape[0]
    };
    // The consumer's input channel of each weight: axis 3 for CONV_2D (no groups), output channel / depth
    // multiplier for DEPTHWISE_CONV_2D.
    let per = if g.op_code(pair.consumer) == fb::BuiltinOperator::DEPTHWISE_CONV_2D {
        if channels == 0 || cw.shape[3] % channels != 0 {
            return false;
        }
        cw.shape[3] / channels
    } else {
        if cw.shape[3] != channels {
            return false;
        }
        1
    };
    let bias = match p_in.get(2).copied().flatten() {
        Some(b) => match g.const_f32(b) {
            Some(v) if v.len() == channels => Some((b, v)),
            _ => return false,
        },
        None => None,
    };
    let r1 = pw.abs_max(channels, p_depthwise, 1);
    let r2 = cw.abs_max(channels, true, per);
    let s: Vec<f32> = r1
        .iter()
        .zip(&r2)
        .map(|(&a, &b)| {
            let s = (a / b).sqrt();
            if a > 0.0 && b > 0.0 && s.is_finite() && s > 0.0 {
                s
            } else {
                1.0
            }
        })
        .collect();
    if s.iter().all(|&v| v == 1.0) {
        return false;
    }
    pw.scale(&s, p_depthwise, 1, true);
    cw.scale(&s, true, per, false);
    pw.write(g);
    cw.write(g);
    if let Some((b, v)) = bias {
        let bytes = v
            .iter()
            .zip(&s)
            .flat_map(|(x, s)| (x / s).to_le_bytes())
            .collect();
        g.set_tensor_data(b, bytes);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tflite::fb::{BuiltinOperator as Op, TensorType};

    fn tensor(g: &mut Graph, name: &str, shape: &[i32]) -> TensorId {
        g.add_tensor(fb::TensorT {
            name: Some(name.into()),
            shape: Some(shape.to_vec()),
            type_: TensorType::FLOAT32,
            ..Default::default()
        })
    }

    fn constant(g: &mut Graph, name: &str, shape: &[i32], values: &[f32]) -> TensorId {
        let t = tensor(g, name, shape);
        g.set_tensor_data(t, values.iter().flat_map(|v| v.to_le_bytes()).collect());
        t
    }

    /// `x -> DEPTHWISE_CONV_2D (act) -> CONV_2D 1x1 -> y` over 2 channels, plus the ids of the four constants.
    fn pair(act: fb::ActivationFunctionType) -> (Graph, [TensorId; 4]) {
        let mut g = Graph::from_model(fb::ModelT {
            version: 3,
            buffers: Some(vec![fb::BufferT::default()]),
            subgraphs: Some(vec![fb::SubGraphT::default()]),
            ..Default::default()
        });
        let x = tensor(&mut g, "x", &[1, 2, 2, 2]);
        // Depthwise ranges per channel: 8 and 1; pointwise ranges per input channel: 0.5 and 4.
        let dw_w = constant(&mut g, "dw/w", &[1, 1, 2, 2], &[8.0, -1.0, -2.0, 0.5]);
        let dw_b = constant(&mut g, "dw/b", &[2], &[4.0, 1.0]);
        let h = tensor(&mut g, "h", &[1, 2, 2, 2]);
        let pw_w = constant(
            &mut g,
            "pw/w",
            &[3, 1, 1, 2],
            &[0.5, 4.0, -0.25, 1.0, 0.1, -2.0],
        );
        let pw_b = constant(&mut g, "pw/b", &[3], &[1.0, 2.0, 3.0]);
        let y = tensor(&mut g, "y", &[1, 2, 2, 3]);
        let mut dw = g.new_op(Op::DEPTHWISE_CONV_2D, 1, &[x, dw_w, dw_b], &[h]);
        dw.builtin_options =
            fb::BuiltinOptionsT::DepthwiseConv2DOptions(Box::new(fb::DepthwiseConv2DOptionsT {
                depth_multiplier: 1,
                fused_activation_function: act,
                ..Default::default()
            }));
        let mut pw = g.new_op(Op::CONV_2D, 1, &[h, pw_w, pw_b], &[y]);
        pw.builtin_options = fb::BuiltinOptionsT::Conv2DOptions(Box::default());
        let sg = g.main_mut();
        sg.operators = Some(vec![dw, pw]);
        sg.inputs = Some(vec![x.0 as i32]);
        sg.outputs = Some(vec![y.0 as i32]);
        (g, [dw_w, dw_b, pw_w, pw_b])
    }

    #[test]
    fn equalized_pair_has_equal_ranges_per_channel_and_the_same_products() {
        let (mut g, [dw_w, dw_b, pw_w, pw_b]) = pair(fb::ActivationFunctionType::NONE);
        assert_eq!(equalize_cross_layer(&mut g), 1);
        // s = sqrt(8 / 0.5) = 4 on channel 0, sqrt(1 / 4) = 0.5 on channel 1: both ranges become 2.
        assert_eq!(g.const_f32(dw_w).unwrap(), vec![2.0, -2.0, -0.5, 1.0]);
        assert_eq!(g.const_f32(dw_b).unwrap(), vec![1.0, 2.0]);
        assert_eq!(
            g.const_f32(pw_w).unwrap(),
            vec![2.0, 2.0, -1.0, 0.5, 0.4, -1.0]
        );
        // The consumer's bias does not move.
        assert_eq!(g.const_f32(pw_b).unwrap(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn relu_commutes_with_the_scale_relu6_does_not() {
        let (mut g, _) = pair(fb::ActivationFunctionType::RELU);
        assert_eq!(equalize_cross_layer(&mut g), 1);
        let (mut g, [dw_w, ..]) = pair(fb::ActivationFunctionType::RELU6);
        assert_eq!(equalize_cross_layer(&mut g), 0);
        assert_eq!(g.const_f32(dw_w).unwrap(), vec![8.0, -1.0, -2.0, 0.5]);
    }

    #[test]
    fn an_activation_that_is_also_a_model_output_is_left_alone() {
        let (mut g, _) = pair(fb::ActivationFunctionType::NONE);
        let h = TensorId(3);
        assert_eq!(g.tensor_name(h), "h");
        g.main_mut().outputs = Some(vec![6, 3]);
        assert_eq!(equalize_cross_layer(&mut g), 0);
    }
}
