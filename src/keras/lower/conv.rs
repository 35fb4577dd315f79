//! Conv1D, Conv2D, DepthwiseConv2D, SeparableConv2D and Conv2DTranspose: CONV_2D, DEPTHWISE_CONV_2D (then a 1x1
//! CONV_2D for SeparableConv2D) and TRANSPOSE_CONV with TF's weight layouts (`[O, H, W, I]`,
//! `[1, H, W, C * M]`); Conv1D runs as a CONV_2D of height 1.

use serde::{Deserialize, Deserializer};

use super::activation::{Activation, ActivationOption};
use super::fold::absorb_into_kernel;
use super::{channels_last, padding, window_out, Lowering, Producer, ProducerKind, Value};
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::keras::weights::Array;
use crate::tflite::fb;

/// An int or a list of ints (Keras writes `kernel_size` either way).
pub(super) fn ints<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<usize>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Ints {
        One(usize),
        Many(Vec<usize>),
    }
    Ok(match Ints::deserialize(d)? {
        Ints::One(v) => vec![v],
        Ints::Many(v) => v,
    })
}

fn one() -> usize {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConvOptions {
    #[serde(default)]
    filters: usize,
    #[serde(default = "one")]
    depth_multiplier: usize,
    #[serde(deserialize_with = "ints")]
    kernel_size: Vec<usize>,
    #[serde(deserialize_with = "ints")]
    strides: Vec<usize>,
    padding: String,
    data_format: Option<String>,
    #[serde(deserialize_with = "ints")]
    dilation_rate: Vec<usize>,
    #[serde(default = "one")]
    groups: usize,
    #[serde(default)]
    output_padding: Option<serde_json::Value>,
    activation: ActivationOption,
    use_bias: bool,
}

/// The options of one convolution, checked, per spatial axis `[h, w]`.
struct Conv {
    kernel: [usize; 2],
    strides: [usize; 2],
    dilation: [usize; 2],
    padding: fb::Padding,
    activation: Activation,
    use_bias: bool,
    o: ConvOptions,
}

impl Conv {
    fn parse(call: &LayerCall, rank: usize) -> Result<Conv, KerasErrorKind> {
        let o: ConvOptions = call.options()?;
        channels_last(call, o.data_format.as_deref())?;
        let unsupported = |m: String| KerasErrorKind::unsupported(&call.name, &call.class, m);
        if o.groups != 1 {
            return Err(unsupported(format!("groups = {} (only 1)", o.groups)));
        }
        if o.output_padding.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(unsupported("output_padding".into()));
        }
        let spatial = |v: &[usize], what: &str| -> Result<[usize; 2], KerasErrorKind> {
            let v = if v.len() == 1 {
                vec![v[0]; rank]
            } else {
                v.to_vec()
            };
            match (rank, v.as_slice()) {
                (1, [w]) => Ok([1, *w]),
                (2, [h, w]) => Ok([*h, *w]),
                _ => Err(unsupported(format!(
                    "{what} {v:?} for a {rank}-D convolution"
                ))),
            }
        };
        Ok(Conv {
            kernel: spatial(&o.kernel_size, "kernel_size")?,
            strides: spatial(&o.strides, "strides")?,
            dilation: spatial(&o.dilation_rate, "dilation_rate")?,
            padding: padding(call, &o.padding)?,
            activation: Activation::parse(call, o.activation.as_ref())?,
            use_bias: o.use_bias,
            o,
        })
    }

    /// The output's spatial size for an input of `hw`.
    fn out_hw(&self, hw: [usize; 2]) -> [usize; 2] {
        [0, 1].map(|a| {
            window_out(
                hw[a],
                self.kernel[a],
                self.strides[a],
                self.dilation[a],
                self.padding,
            )
        })
    }

    /// Whether explicit padding `pad` of an input of `hw` (unpadded) is what `same` would add.
    fn same_padding_is(&self, hw: [usize; 2], pad: [[usize; 2]; 2]) -> bool {
        (0..2).all(|a| {
            let out = hw[a].div_ceil(self.strides[a]);
            let effective = (self.kernel[a] - 1) * self.dilation[a] + 1;
            let total = ((out - 1) * self.strides[a] + effective).saturating_sub(hw[a]);
            pad[a] == [total / 2, total - total / 2]
        })
    }
}

/// Permutes a row-major array: output axis `i` is input axis `perm[i]`.
pub(super) fn permute(a: &Array, perm: &[usize]) -> Vec<f32> {
    let rank = a.shape.len();
    let mut strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * a.shape[i + 1];
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| a.shape[p]).collect();
    let mut out = Vec::with_capacity(a.data.len());
    let mut index = vec![0usize; rank];
    for _ in 0..a.data.len() {
        let src: usize = (0..rank).map(|i| index[i] * strides[perm[i]]).sum();
        out.push(a.data[src]);
        for i in (0..rank).rev() {
            index[i] += 1;
            if index[i] < out_shape[i] {
                break;
            }
            index[i] = 0;
        }
    }
    out
}

impl Lowering<'_> {
    /// The input of a convolution: expanded for 1-D, a pending ZeroPadding2D absorbed when it equals `same`.
    fn conv_input(
        &mut self,
        call: &LayerCall,
        conv: &mut Conv,
        rank: usize,
    ) -> Result<Value, KerasErrorKind> {
        let v = self.raw_inputs(call, 1)?.remove(0);
        if let (Some(pad), fb::Padding::VALID) = (v.pad, conv.padding) {
            let hw = [
                v.shape[1] - pad[0][0] - pad[0][1],
                v.shape[2] - pad[1][0] - pad[1][1],
            ];
            if self.sole_reader(call) && conv.same_padding_is(hw, pad) {
                conv.padding = fb::Padding::SAME;
                let mut shape = v.shape.clone();
                shape[1..3].copy_from_slice(&hw);
                return Ok(Value {
                    shape,
                    pad: None,
                    ..v
                });
            }
        }
        let v = if rank == 1 {
            self.expanded(v, &call.name)
        } else {
            self.resolve_pad(v, &call.name)
        };
        let want = if rank == 1 { 3 } else { 4 };
        if v.shape.len() != want {
            return Err(KerasErrorKind::graph(
                &call.name,
                format!(
                    "input of shape {:?}, a {} takes rank {want}",
                    v.shape, call.class
                ),
            ));
        }
        Ok(v)
    }

    /// The bias constant (zeros without `use_bias`, as TF writes it).
    fn bias(
        &mut self,
        call: &LayerCall,
        vars: &mut crate::keras::weights::VarList,
        use_bias: bool,
        n: usize,
    ) -> Result<crate::graph::TensorId, KerasErrorKind> {
        let data = if use_bias {
            vars.next("bias", &[n])?.data
        } else {
            vec![0.0; n]
        };
        Ok(self
            .b
            .constant_f32(&format!("{}/bias", call.name), &[n], &data))
    }

    /// Conv1D and Conv2D: CONV_2D.
    pub(super) fn conv(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let rank = if call.class == "Conv1D" { 1 } else { 2 };
        let mut conv = Conv::parse(call, rank)?;
        let input = self.conv_input(call, &mut conv, rank)?;
        let tfl = input.tfl_shape();
        let (hw, in_ch) = ([tfl[1], tfl[2]], tfl[3]);
        let filters = conv.o.filters;
        let mut vars = self.vars(call)?;
        let keras_kernel: Vec<usize> = if rank == 1 {
            vec![conv.kernel[1], in_ch, filters]
        } else {
            vec![conv.kernel[0], conv.kernel[1], in_ch, filters]
        };
        let mut kernel = vars.next("kernel", &keras_kernel)?;
        let mut bias = if conv.use_bias {
            Some(vars.next("bias", &[filters])?.data)
        } else {
            None
        };
        vars.finish()?;
        let mut input = input;
        // An offset absorbed by a `same` convolution would also shift its zero padding: only a scale folds then.
        let absorbs = self
            .scalars
            .get(&input.tensor)
            .is_some_and(|a| a.offset == 0.0 || conv.padding == fb::Padding::VALID);
        if let Some(affine) = absorbs.then(|| self.absorb_scalar(call, &input)).flatten() {
            bias = absorb_into_kernel(&mut kernel.data, bias, filters, &affine);
            input.tensor = affine.input;
        }
        let kernel4 = Array {
            shape: vec![conv.kernel[0], conv.kernel[1], in_ch, filters],
            data: kernel.data,
        };
        let w_shape = [filters, conv.kernel[0], conv.kernel[1], in_ch];
        let weights = self.b.constant_f32(
            &format!("{}/kernel", call.name),
            &w_shape,
            &permute(&kernel4, &[3, 0, 1, 2]),
        );
        let bias = self.b.constant_f32(
            &format!("{}/bias", call.name),
            &[filters],
            &bias.unwrap_or_else(|| vec![0.0; filters]),
        );
        let out_hw = conv.out_hw(hw);
        let out_tfl = [1, out_hw[0], out_hw[1], filters];
        let out = self.out(call, "convolution", &out_tfl);
        let options = fb::Conv2DOptionsT {
            padding: conv.padding,
            stride_w: conv.strides[1] as i32,
            stride_h: conv.strides[0] as i32,
            dilation_w_factor: conv.dilation[1] as i32,
            dilation_h_factor: conv.dilation[0] as i32,
            ..Default::default()
        };
        self.conv_2d_op([input.tensor, weights, bias], out, options);
        let shape = if rank == 1 {
            vec![1, out_hw[1], filters]
        } else {
            out_tfl.to_vec()
        };
        let v = Value {
            tensor: out,
            shape,
            expanded: rank == 1,
            pad: None,
        };
        Ok(self.activate(call, v, conv.activation, true))
    }

    /// Emits CONV_2D of `[input, weights, bias]` into `out` and records it as `out`'s producer (what the folds
    /// of a following scalar or BatchNormalization rewrite).
    fn conv_2d_op(
        &mut self,
        [input, weights, bias]: [super::TensorId; 3],
        out: super::TensorId,
        options: fb::Conv2DOptionsT,
    ) {
        let op = self.b.op(
            fb::BuiltinOperator::CONV_2D,
            1,
            &[Some(input), Some(weights), Some(bias)],
            &[out],
            fb::BuiltinOptionsT::Conv2DOptions(Box::new(options)),
        );
        self.producers.insert(
            out,
            Producer {
                op,
                kind: ProducerKind::Conv,
                weights: Some(weights),
                bias: Some(bias),
            },
        );
    }

    /// DepthwiseConv2D: DEPTHWISE_CONV_2D, weights `[1, H, W, C * M]`.
    pub(super) fn depthwise(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let mut conv = Conv::parse(call, 2)?;
        let input = self.conv_input(call, &mut conv, 2)?;
        let (in_ch, m) = (input.shape[3], conv.o.depth_multiplier);
        let mut vars = self.vars(call)?;
        let kernel = vars.next(
            "depthwise_kernel",
            &[conv.kernel[0], conv.kernel[1], in_ch, m],
        )?;
        let bias = self.bias(call, &mut vars, conv.use_bias, in_ch * m)?;
        vars.finish()?;
        let v = self.depthwise_op(call, &conv, &input, &kernel.data, bias);
        Ok(self.activate(call, v, conv.activation, true))
    }

    /// A DEPTHWISE_CONV_2D of `input` with the Keras kernel `[H, W, C, M]` (row-major it is TFLite's
    /// `[1, H, W, C * M]` with channel `c * M + m`), registered as the output's producer.
    fn depthwise_op(
        &mut self,
        call: &LayerCall,
        conv: &Conv,
        input: &Value,
        kernel: &[f32],
        bias: crate::graph::TensorId,
    ) -> Value {
        let (hw, in_ch) = ([input.shape[1], input.shape[2]], input.shape[3]);
        let m = conv.o.depth_multiplier;
        let channels = in_ch * m;
        let weights = self.b.constant_f32(
            &format!("{}/depthwise_kernel", call.name),
            &[1, conv.kernel[0], conv.kernel[1], channels],
            kernel,
        );
        let out_hw = conv.out_hw(hw);
        let shape = vec![1, out_hw[0], out_hw[1], channels];
        let out = self.out(call, "depthwise", &shape);
        let options = fb::DepthwiseConv2DOptionsT {
            padding: conv.padding,
            stride_w: conv.strides[1] as i32,
            stride_h: conv.strides[0] as i32,
            depth_multiplier: m as i32,
            dilation_w_factor: conv.dilation[1] as i32,
            dilation_h_factor: conv.dilation[0] as i32,
            ..Default::default()
        };
        let version = if conv.dilation != [1, 1] { 2 } else { 1 };
        let op = self.b.op(
            fb::BuiltinOperator::DEPTHWISE_CONV_2D,
            version,
            &[Some(input.tensor), Some(weights), Some(bias)],
            &[out],
            fb::BuiltinOptionsT::DepthwiseConv2DOptions(Box::new(options)),
        );
        self.producers.insert(
            out,
            Producer {
                op,
                kind: ProducerKind::Depthwise,
                weights: Some(weights),
                bias: Some(bias),
            },
        );
        Value {
            tensor: out,
            shape,
            expanded: false,
            pad: None,
        }
    }

    /// SeparableConv2D as TF writes it: DEPTHWISE_CONV_2D (zero bias), then a 1x1 CONV_2D with the bias and the
    /// activation.
    pub(super) fn separable(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let mut conv = Conv::parse(call, 2)?;
        let input = self.conv_input(call, &mut conv, 2)?;
        let mid = input.shape[3] * conv.o.depth_multiplier;
        let filters = conv.o.filters;
        let mut vars = self.vars(call)?;
        let depthwise = vars.next(
            "depthwise_kernel",
            &[
                conv.kernel[0],
                conv.kernel[1],
                input.shape[3],
                conv.o.depth_multiplier,
            ],
        )?;
        let pointwise = vars.next("pointwise_kernel", &[1, 1, mid, filters])?;
        let bias = self.bias(call, &mut vars, conv.use_bias, filters)?;
        vars.finish()?;
        let zeros = self.b.constant_f32(
            &format!("{}/depthwise_bias", call.name),
            &[mid],
            &vec![0.0; mid],
        );
        let dw = self.depthwise_op(call, &conv, &input, &depthwise.data, zeros);
        self.producers.remove(&dw.tensor);
        let weights = self.b.constant_f32(
            &format!("{}/pointwise_kernel", call.name),
            &[filters, 1, 1, mid],
            &permute(&pointwise, &[3, 0, 1, 2]),
        );
        let shape = vec![1, dw.shape[1], dw.shape[2], filters];
        let out = self.out(call, "separable_conv2d", &shape);
        let options = fb::Conv2DOptionsT {
            padding: fb::Padding::VALID,
            stride_w: 1,
            stride_h: 1,
            dilation_w_factor: 1,
            dilation_h_factor: 1,
            ..Default::default()
        };
        self.conv_2d_op([dw.tensor, weights, bias], out, options);
        let v = Value {
            tensor: out,
            shape,
            expanded: false,
            pad: None,
        };
        Ok(self.activate(call, v, conv.activation, true))
    }

    /// Conv2DTranspose: TRANSPOSE_CONV (output shape, weights `[O, H, W, I]`, input, bias).
    pub(super) fn conv_transpose(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let mut conv = Conv::parse(call, 2)?;
        if conv.dilation != [1, 1] {
            return Err(KerasErrorKind::unsupported(
                &call.name,
                &call.class,
                "dilation_rate other than 1",
            ));
        }
        let input = self.conv_input(call, &mut conv, 2)?;
        let (hw, in_ch) = ([input.shape[1], input.shape[2]], input.shape[3]);
        let filters = conv.o.filters;
        let mut vars = self.vars(call)?;
        let kernel = vars.next("kernel", &[conv.kernel[0], conv.kernel[1], filters, in_ch])?;
        let weights = self.b.constant_f32(
            &format!("{}/kernel", call.name),
            &[filters, conv.kernel[0], conv.kernel[1], in_ch],
            &permute(&kernel, &[2, 0, 1, 3]),
        );
        let bias = if conv.use_bias {
            let b = vars.next("bias", &[filters])?;
            Some(
                self.b
                    .constant_f32(&format!("{}/bias", call.name), &[filters], &b.data),
            )
        } else {
            None
        };
        vars.finish()?;
        let out_hw = [0, 1].map(|a| match conv.padding {
            fb::Padding::SAME => hw[a] * conv.strides[a],
            _ => (hw[a] - 1) * conv.strides[a] + conv.kernel[a],
        });
        let shape = vec![1, out_hw[0], out_hw[1], filters];
        let out_shape = self.b.constant_i32(
            &format!("{}/output_shape", call.name),
            &[4],
            &super::builder::dims(&shape),
        );
        let out = self.out(call, "conv_transpose", &shape);
        let fused = matches!(conv.activation, Activation::Relu | Activation::Relu6);
        let version = if fused {
            4
        } else if bias.is_some() {
            3
        } else {
            1
        };
        let options = fb::TransposeConvOptionsT {
            padding: conv.padding,
            stride_w: conv.strides[1] as i32,
            stride_h: conv.strides[0] as i32,
            ..Default::default()
        };
        let op = self.b.op(
            fb::BuiltinOperator::TRANSPOSE_CONV,
            version,
            &[Some(out_shape), Some(weights), Some(input.tensor), bias],
            &[out],
            fb::BuiltinOptionsT::TransposeConvOptions(Box::new(options)),
        );
        self.producers.insert(
            out,
            Producer {
                op,
                kind: ProducerKind::Conv,
                weights: Some(weights),
                bias,
            },
        );
        let v = Value {
            tensor: out,
            shape,
            expanded: false,
            pad: None,
        };
        Ok(self.activate(call, v, conv.activation, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_moves_axes() {
        // [2, 3] -> [3, 2]: a transpose.
        let a = Array {
            shape: vec![2, 3],
            data: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        };
        assert_eq!(permute(&a, &[1, 0]), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        // Keras [kh, kw, in, out] -> TFLite [out, kh, kw, in].
        let k = Array {
            shape: vec![1, 2, 1, 2],
            data: vec![10.0, 11.0, 20.0, 21.0],
        };
        assert_eq!(permute(&k, &[3, 0, 1, 2]), vec![10.0, 20.0, 11.0, 21.0]);
    }

    #[test]
    fn zero_padding_equals_same_only_where_tf_folds_it() {
        let conv = |k: usize, s: usize| Conv {
            kernel: [k, k],
            strides: [s, s],
            dilation: [1, 1],
            padding: fb::Padding::VALID,
            activation: Activation::Linear,
            use_bias: false,
            o: serde_json::from_value(serde_json::json!({
                "filters": 1, "kernel_size": k, "strides": s, "padding": "valid",
                "dilation_rate": 1, "activation": "linear", "use_bias": false
            }))
            .unwrap(),
        };
        // MobileNetV2: 48x48, 3x3 stride 2, pad (0, 1) on each axis.
        assert!(conv(3, 2).same_padding_is([48, 48], [[0, 1], [0, 1]]));
        assert!(!conv(3, 2).same_padding_is([48, 48], [[1, 1], [1, 1]]));
        assert!(conv(3, 1).same_padding_is([8, 8], [[1, 1], [1, 1]]));
    }
}
