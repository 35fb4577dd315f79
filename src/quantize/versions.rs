//! Operator versions and the `min_runtime_version` metadata, computed as TF's converter does.
//!
//! TF's exporter recomputes every operator code's version from the ops that use it
//! (`tflite/converter/tools/versioning/op_version.cc`, `GetBuiltinOperatorVersion`) and then writes the oldest
//! runtime able to run the model (`runtime_version.cc`). Versions depend only on tensor types, shapes,
//! quantization parameters and builtin options, never on the mode that produced the graph, so every mode calls
//! [`finalize`] last.

use super::QuantError;
use crate::graph::Graph;
use crate::tflite::{self, fb};
use fb::BuiltinOperator as Op;
use fb::TensorType as T;
use std::cmp::Ordering;

/// Metadata key of the minimum runtime version string.
pub const MIN_RUNTIME_VERSION_KEY: &str = "min_runtime_version";

/// Size of the `min_runtime_version` buffer: TF reserves 16 bytes (the buffer alignment), NUL-padded.
const MIN_RUNTIME_VERSION_LEN: usize = 16;

/// Recomputes operator-code versions, drops unused operator codes, writes `min_runtime_version`.
///
/// A version is never lowered below the one the source model had. With `target_runtime` (`"2.14"`), fails
/// with [`QuantError::RuntimeTooOld`] naming the op that needs the newest runtime if it is newer than the
/// target.
pub fn finalize(graph: &mut Graph, target_runtime: Option<&str>) -> Result<(), QuantError> {
    remove_unused_op_codes(&mut graph.model);
    update_op_versions(&mut graph.model);
    let needs = model_min_runtime(&graph.model);
    if let Some(target) = target_runtime {
        let target_parts = parse_version(target).ok_or_else(|| {
            QuantError::Unsupported(format!(
                "target_runtime {target:?} is not a version like \"2.14\""
            ))
        })?;
        if let Some((op, version, runtime)) = &needs {
            let runtime_parts = parse_version(runtime).unwrap_or_default();
            if compare_versions(&runtime_parts, &target_parts) == Ordering::Greater {
                return Err(QuantError::RuntimeTooOld {
                    op: op.clone(),
                    version: *version,
                    needs: runtime.to_string(),
                    target: target.to_string(),
                });
            }
        }
    }
    let mut data = vec![0u8; MIN_RUNTIME_VERSION_LEN];
    if let Some((_, _, runtime)) = &needs {
        // Like TF: a string that does not fit with its NUL is not written (the buffer stays zero).
        if runtime.len() < MIN_RUNTIME_VERSION_LEN {
            data[..runtime.len()].copy_from_slice(runtime.as_bytes());
        }
    }
    graph.set_metadata(MIN_RUNTIME_VERSION_KEY, data);
    graph.remove_unused_buffers();
    Ok(())
}

/// The newest runtime any op of the model needs: `(op name, op version, runtime)`.
///
/// Op versions missing from TF's table (custom ops, ops newer than the table) are skipped, as TF does.
pub fn model_min_runtime(model: &fb::ModelT) -> Option<(String, i32, &'static str)> {
    let codes = model.operator_codes.as_deref().unwrap_or(&[]);
    let mut best: Option<(String, i32, &'static str)> = None;
    for sg in model.subgraphs.as_deref().unwrap_or(&[]) {
        for op in sg.operators.as_deref().unwrap_or(&[]) {
            let Some(code) = codes.get(op.opcode_index as usize) else {
                continue;
            };
            let builtin = tflite::op_code(code);
            let Some(runtime) = min_runtime_for(builtin, code.version) else {
                continue;
            };
            let newer = match &best {
                None => true,
                Some((_, _, b)) => {
                    compare_versions(
                        &parse_version(runtime).unwrap_or_default(),
                        &parse_version(b).unwrap_or_default(),
                    ) == Ordering::Greater
                }
            };
            if newer {
                best = Some((tflite::op_name(builtin), code.version, runtime));
            }
        }
    }
    best
}

/// Removes operator codes no op of any subgraph uses, renumbering `opcode_index`.
///
/// The interpreter resolves every entry of the table at load time, so a stale entry (a folded DEQUANTIZE,
/// say) with a version an older runtime lacks would make the model fail to load for nothing.
fn remove_unused_op_codes(model: &mut fb::ModelT) {
    let n = model.operator_codes.as_ref().map_or(0, Vec::len);
    let mut used = vec![false; n];
    for sg in model.subgraphs.as_deref().unwrap_or(&[]) {
        for op in sg.operators.as_deref().unwrap_or(&[]) {
            if let Some(u) = used.get_mut(op.opcode_index as usize) {
                *u = true;
            }
        }
    }
    if used.iter().all(|&u| u) {
        return;
    }
    let mut new_index = vec![0u32; n];
    let mut next = 0u32;
    for (i, &u) in used.iter().enumerate() {
        if u {
            new_index[i] = next;
            next += 1;
        }
    }
    let old = model.operator_codes.take().unwrap_or_default();
    model.operator_codes = Some(
        old.into_iter()
            .zip(&used)
            .filter(|(_, &u)| u)
            .map(|(c, _)| c)
            .collect(),
    );
    for sg in model.subgraphs.as_deref_mut().unwrap_or(&mut []) {
        for op in sg.operators.as_deref_mut().unwrap_or(&mut []) {
            if let Some(&i) = new_index.get(op.opcode_index as usize) {
                op.opcode_index = i;
            }
        }
    }
}

/// Raises each operator code's version to the highest version any of its ops needs.
fn update_op_versions(model: &mut fb::ModelT) {
    let n = model.operator_codes.as_ref().map_or(0, Vec::len);
    let mut needed = vec![0i32; n];
    {
        let codes = model.operator_codes.as_deref().unwrap_or(&[]);
        for sg in model.subgraphs.as_deref().unwrap_or(&[]) {
            for op in sg.operators.as_deref().unwrap_or(&[]) {
                let Some(code) = codes.get(op.opcode_index as usize) else {
                    continue;
                };
                let builtin = tflite::op_code(code);
                if builtin == Op::CUSTOM {
                    continue;
                }
                let v = op_version(sg, op, builtin);
                if let Some(slot) = needed.get_mut(op.opcode_index as usize) {
                    *slot = (*slot).max(v);
                }
            }
        }
    }
    for (code, v) in model
        .operator_codes
        .as_deref_mut()
        .unwrap_or(&mut [])
        .iter_mut()
        .zip(needed)
    {
        code.version = code.version.max(v).max(1);
    }
}

/// What the version rules look at for one tensor of an op.
#[derive(Debug, Clone, Default)]
struct Spec<'a> {
    /// `None` for an omitted optional tensor (kTfLiteNoType).
    ty: Option<T>,
    dims: &'a [i32],
    quant: Option<&'a fb::QuantizationParametersT>,
    sparse: bool,
}

impl Spec<'_> {
    fn is(&self, t: T) -> bool {
        self.ty == Some(t)
    }

    fn scales(&self) -> usize {
        self.quant
            .and_then(|q| q.scale.as_ref())
            .map_or(0, Vec::len)
    }

    /// Quantized with a non-empty scale (TF checks the table's presence; an empty table quantizes nothing).
    fn is_quantized(&self) -> bool {
        self.scales() > 0
    }

    fn dim(&self, i: usize) -> Option<i32> {
        self.dims.get(i).copied()
    }

    /// One scale per slice of `quantized_dimension`, more than one slice.
    fn is_per_channel_on_quantized_dimension(&self) -> bool {
        let Some(q) = self.quant else { return false };
        let n = self.scales();
        n > 1
            && usize::try_from(q.quantized_dimension)
                .ok()
                .and_then(|d| self.dim(d))
                .is_some_and(|d| d as usize == n)
    }
}

/// An op's signature: its tensors' specs and builtin options.
struct Sig<'a> {
    inputs: Vec<Spec<'a>>,
    outputs: Vec<Spec<'a>>,
    options: &'a fb::BuiltinOptionsT,
}

impl<'a> Sig<'a> {
    fn new(sg: &'a fb::SubGraphT, op: &'a fb::OperatorT) -> Sig<'a> {
        let tensors = sg.tensors.as_deref().unwrap_or(&[]);
        let spec = |t: &i32| -> Spec<'a> {
            let Some(tensor) = usize::try_from(*t).ok().and_then(|t| tensors.get(t)) else {
                return Spec::default();
            };
            Spec {
                ty: Some(tensor.type_),
                dims: tensor.shape.as_deref().unwrap_or(&[]),
                quant: tensor.quantization.as_deref(),
                sparse: tensor.sparsity.is_some(),
            }
        };
        Sig {
            inputs: op
                .inputs
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .map(spec)
                .collect(),
            outputs: op
                .outputs
                .as_deref()
                .unwrap_or(&[])
                .iter()
                .map(spec)
                .collect(),
            options: &op.builtin_options,
        }
    }

    fn input(&self, i: usize) -> Spec<'a> {
        self.inputs.get(i).cloned().unwrap_or_default()
    }

    fn output(&self, i: usize) -> Spec<'a> {
        self.outputs.get(i).cloned().unwrap_or_default()
    }

    fn in_is(&self, i: usize, t: T) -> bool {
        self.input(i).is(t)
    }

    fn out_is(&self, i: usize, t: T) -> bool {
        self.output(i).is(t)
    }

    /// Input 0, input 1 and output 0 have these types (the usual activation / weight / output triple).
    fn types(&self, input: T, weight: T, output: T) -> bool {
        self.in_is(0, input) && self.in_is(1, weight) && self.out_is(0, output)
    }

    fn needs_broadcast(&self) -> bool {
        self.inputs.len() >= 2 && self.input(0).dims != self.input(1).dims
    }

    fn max_input_rank(&self) -> usize {
        self.inputs.iter().map(|s| s.dims.len()).max().unwrap_or(0)
    }
}

/// The version TF's converter gives one builtin op, from its tensors and options.
pub fn op_version(sg: &fb::SubGraphT, op: &fb::OperatorT, code: Op) -> i32 {
    let s = Sig::new(sg, op);
    let i0 = s.input(0);
    match code {
        Op::CONV_2D => conv_2d_version(&s),
        Op::DEPTHWISE_CONV_2D => depthwise_version(&s),
        Op::FULLY_CONNECTED => fully_connected_version(&s),
        Op::EMBEDDING_LOOKUP => {
            let table = s.input(1);
            let per_channel =
                table.scales() > 1 && table.dim(0).is_some_and(|d| d as usize == table.scales());
            if table.is(T::INT4) || per_channel {
                4
            } else if table.is(T::INT2) {
                5
            } else {
                1
            }
        }
        Op::FAKE_QUANT => {
            i32::from(
                s.options
                    .as_fake_quant_options()
                    .is_some_and(|o| o.narrow_range),
            ) + 1
        }
        Op::GATHER => {
            let batch_dims = s.options.as_gather_options().map_or(0, |o| o.batch_dims);
            if i0.is(T::INT4) {
                7
            } else if s.in_is(1, T::INT16) {
                6
            } else if batch_dims != 0 {
                5
            } else if i0.is(T::INT16) {
                4
            } else if i0.is(T::BOOL) {
                3
            } else if i0.is(T::INT8) {
                2
            } else {
                1
            }
        }
        Op::SVDF => {
            if i0.is(T::INT8) {
                3
            } else if s.types(T::FLOAT32, T::INT8, T::FLOAT32) {
                if s.options
                    .as_svdfoptions()
                    .is_some_and(|o| o.asymmetric_quantize_inputs)
                {
                    4
                } else {
                    2
                }
            } else {
                1
            }
        }
        Op::SIGN => 1 + i32::from(i0.is(T::INT32)),
        Op::SIN | Op::COS => 1 + i32::from(i0.is(T::FLOAT16)),
        Op::MUL => mul_version(&s),
        Op::MAX_POOL_2D | Op::AVERAGE_POOL_2D => {
            if i0.is(T::INT16) && s.out_is(0, T::INT16) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::TRANSPOSE => {
            let rank = i0.dims.len();
            if i0.is(T::FLOAT16) {
                9
            } else if rank > 6 || i0.is(T::BFLOAT16) {
                8
            } else if i0.is(T::INT4) {
                7
            } else if rank > 5 {
                6
            } else if i0.is(T::INT16) {
                5
            } else if rank > 4 {
                4
            } else if i0.is(T::BOOL) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::TRANSPOSE_CONV => {
            let opts = s.options.as_transpose_conv_options();
            if s.types(T::INT16, T::INT8, T::INT16)
                && opts.is_some_and(|o| o.quantized_bias_type != T::FLOAT32)
            {
                5
            } else if opts
                .is_some_and(|o| o.fused_activation_function != fb::ActivationFunctionType::NONE)
            {
                4
            } else if s.inputs.len() == 4 && s.input(3).ty.is_some() {
                3
            } else {
                1 + i32::from(s.in_is(1, T::INT8))
            }
        }
        Op::LSTM => {
            let opts = s.options.as_lstmoptions();
            let full = opts.is_none_or(|o| o.kernel_type == fb::LSTMKernelType::FULL);
            if full && s.in_is(0, T::INT16) && s.in_is(2, T::INT8) && s.out_is(0, T::INT16) {
                5
            } else if full
                && s.in_is(0, T::FLOAT32)
                && s.in_is(2, T::INT8)
                && s.out_is(0, T::FLOAT32)
            {
                if opts.is_some_and(|o| o.asymmetric_quantize_inputs) {
                    4
                } else {
                    3
                }
            } else if !full {
                2
            } else {
                1
            }
        }
        Op::SPLIT => {
            // The data is input 1; input 0 is the axis.
            let data = s.input(1);
            if data.is(T::INT16) {
                4
            } else if data.is(T::INT32) {
                3
            } else {
                1 + i32::from(data.is(T::INT8))
            }
        }
        Op::SPARSE_TO_DENSE => {
            let values = s.input(2);
            if values.is(T::INT8) || values.is(T::UINT8) {
                3
            } else {
                1 + i32::from(values.is(T::INT64))
            }
        }
        Op::SLICE => {
            if i0.is(T::FLOAT16) {
                8
            } else if i0.is(T::INT4) {
                7
            } else if i0.is(T::UINT32) {
                6
            } else if i0.dims.len() > 4 {
                5
            } else if i0.is(T::INT16) {
                4
            } else if i0.is(T::STRING) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::UNPACK => {
            if i0.is(T::INT8) || i0.is(T::UINT8) {
                2
            } else if i0.is(T::BOOL) {
                3
            } else if i0.is(T::INT16) && s.out_is(0, T::INT16) {
                4
            } else if i0.is(T::FLOAT16) || i0.is(T::BFLOAT16) {
                5
            } else {
                1
            }
        }
        Op::DEQUANTIZE => {
            if i0.is(T::UINT4) {
                8
            } else if i0.is(T::INT2) {
                7
            } else if i0.is(T::INT4) {
                6
            } else if i0.is(T::INT16) || i0.is(T::FLOAT16) {
                3
            } else if i0.is(T::INT8) {
                if i0.is_per_channel_on_quantized_dimension() {
                    5
                } else {
                    2
                }
            } else {
                1
            }
        }
        Op::QUANTIZE => {
            let o0 = s.output(0);
            if i0.is(T::UINT4) || o0.is(T::UINT4) {
                5
            } else if i0.is(T::INT4) || o0.is(T::INT4) {
                4
            } else if o0.is_per_channel_on_quantized_dimension() {
                3
            } else {
                1 + i32::from(o0.is(T::INT16))
            }
        }
        Op::FLOOR_DIV => {
            if i0.is(T::INT16) || i0.is(T::INT8) {
                3
            } else {
                1 + i32::from(i0.is(T::FLOAT32))
            }
        }
        Op::FLOOR_MOD => 1 + i32::from(i0.is(T::INT16) || i0.is(T::INT8)),
        Op::L2_NORMALIZATION => 1 + i32::from(s.out_is(0, T::INT8)),
        Op::ABS => {
            if i0.is(T::INT32) {
                5
            } else if i0.is(T::INT16) {
                if i0.is_quantized() {
                    3
                } else {
                    4
                }
            } else {
                1 + i32::from(i0.is(T::INT8) || i0.is(T::UINT8))
            }
        }
        Op::RELU => {
            if i0.is(T::INT16) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8) || i0.is(T::UINT8))
            }
        }
        Op::STRIDED_SLICE => {
            let opts = s.options.as_strided_slice_options();
            if opts.is_some_and(|o| o.offset) {
                8
            } else if i0.is(T::UINT32) {
                7
            } else if opts.is_some_and(|o| o.ellipsis_mask != 0 || o.new_axis_mask != 0) {
                6
            } else if i0.is(T::STRING) {
                5
            } else if i0.dims.len() > 4 {
                4
            } else if i0.is(T::BOOL) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::REVERSE_V2 => {
            if i0.is(T::INT8) {
                3
            } else {
                1 + i32::from(i0.is(T::BOOL))
            }
        }
        Op::RESIZE_BILINEAR => {
            if i0.is(T::INT16) {
                4
            } else if s
                .options
                .as_resize_bilinear_options()
                .is_some_and(|o| o.half_pixel_centers)
            {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::RESIZE_NEAREST_NEIGHBOR => {
            if i0.is(T::INT16) {
                4
            } else if s
                .options
                .as_resize_nearest_neighbor_options()
                .is_some_and(|o| o.half_pixel_centers || o.align_corners)
            {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::MAXIMUM | Op::MINIMUM => {
            if i0.is(T::INT16) && s.out_is(0, T::INT16) {
                4
            } else if s.needs_broadcast() && s.max_input_rank() > 4 {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::PACK => {
            if i0.is(T::INT8) {
                2
            } else if i0.is(T::INT16) && s.out_is(0, T::INT16) {
                3
            } else if i0.is(T::UINT32) {
                4
            } else {
                1
            }
        }
        Op::TILE => {
            if i0.is(T::INT8) {
                3
            } else {
                1 + i32::from(i0.is(T::STRING))
            }
        }
        Op::SQUEEZE => 1 + i32::from(i0.is(T::STRING)),
        Op::SPACE_TO_BATCH_ND | Op::BATCH_TO_SPACE_ND => {
            if i0.is(T::INT16) {
                4
            } else if i0.dims.len() != 4 {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::ADD => {
            let pot = s.options.as_add_options().is_none_or(|o| o.pot_scale_int16);
            if i0.is(T::FLOAT16) {
                6
            } else if i0.is(T::INT16) && !i0.is_quantized() {
                5
            } else if i0.is(T::INT64) {
                4
            } else if i0.is(T::INT16) && s.out_is(0, T::INT16) && !pot {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::SUB => {
            let pot = s.options.as_sub_options().is_none_or(|o| o.pot_scale_int16);
            if i0.is(T::INT16) && s.out_is(0, T::INT16) && !pot {
                5
            } else if i0.is(T::INT64) {
                4
            } else if s.needs_broadcast() && s.max_input_rank() > 4 {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::GATHER_ND => {
            if i0.is(T::BOOL) {
                5
            } else if s.in_is(1, T::INT16) {
                4
            } else if i0.is(T::INT16) {
                3
            } else {
                1 + i32::from(i0.is(T::STRING))
            }
        }
        Op::DIV => 1 + i32::from(s.needs_broadcast() && s.max_input_rank() > 4),
        Op::TANH | Op::LOGISTIC => {
            if i0.is(T::INT16) && s.out_is(0, T::INT16) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::FILL => {
            let value = s.input(1);
            if s.inputs.len() < 2 {
                1
            } else if value.is(T::FLOAT16) {
                4
            } else if value.is(T::INT8) || value.is(T::INT16) {
                3
            } else {
                1 + i32::from(value.is(T::BOOL) || value.is(T::STRING))
            }
        }
        Op::EQUAL | Op::NOT_EQUAL => {
            if i0.is(T::INT16) {
                if code == Op::EQUAL {
                    5
                } else {
                    4
                }
            } else if i0.is(T::STRING) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::LEAKY_RELU => 1 + i32::from(i0.is(T::INT16)),
        Op::RANGE => 1 + i32::from(i0.is(T::INT64)),
        Op::BATCH_MATMUL => {
            if i0.is(T::INT16) {
                3
            } else if i0.is(T::INT8) {
                2
            } else if s.types(T::FLOAT32, T::INT8, T::FLOAT32)
                && s.options
                    .as_batch_mat_mul_options()
                    .is_some_and(|o| o.asymmetric_quantize_inputs)
            {
                4
            } else {
                1
            }
        }
        Op::PAD | Op::PADV2 => {
            if i0.is(T::BOOL) {
                5
            } else if i0.dims.len() > 4 {
                4
            } else if i0.is(T::INT16) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::CONCATENATION => {
            if i0.is(T::FLOAT16) {
                6
            } else if i0.is(T::INT4) {
                5
            } else if i0.is(T::UINT32) {
                4
            } else if i0.is(T::INT16) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::SOFTMAX => {
            if i0.is(T::FLOAT16) {
                4
            } else if i0.is(T::INT16) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::MEAN | Op::MIRROR_PAD | Op::REDUCE_MAX | Op::REDUCE_MIN | Op::RELU6 | Op::RSQRT => {
            if i0.is(T::INT16) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::RNN => {
            let asym = s
                .options
                .as_rnnoptions()
                .is_some_and(|o| o.asymmetric_quantize_inputs);
            recurrent_hybrid_version(&s, 1, asym, 3, 2)
        }
        Op::UNIDIRECTIONAL_SEQUENCE_RNN => {
            let asym = s
                .options
                .as_sequence_rnnoptions()
                .is_some_and(|o| o.asymmetric_quantize_inputs);
            recurrent_hybrid_version(&s, 1, asym, 3, 2)
        }
        Op::BIDIRECTIONAL_SEQUENCE_RNN => {
            let asym = s
                .options
                .as_bidirectional_sequence_rnnoptions()
                .is_some_and(|o| o.asymmetric_quantize_inputs);
            recurrent_hybrid_version(&s, 1, asym, 3, 2)
        }
        Op::BIDIRECTIONAL_SEQUENCE_LSTM => {
            let asym = s
                .options
                .as_bidirectional_sequence_lstmoptions()
                .is_some_and(|o| o.asymmetric_quantize_inputs);
            recurrent_hybrid_version(&s, 1, asym, 3, 2)
        }
        Op::UNIDIRECTIONAL_SEQUENCE_LSTM => {
            let opts = s.options.as_unidirectional_sequence_lstmoptions();
            if s.in_is(0, T::INT16) && s.in_is(2, T::INT8) && s.out_is(0, T::INT16) {
                5
            } else if opts.is_some_and(|o| o.diagonal_recurrent_tensors) {
                4
            } else if s.in_is(0, T::FLOAT32) && s.in_is(2, T::INT8) && s.out_is(0, T::FLOAT32) {
                if opts.is_some_and(|o| o.asymmetric_quantize_inputs) {
                    3
                } else {
                    2
                }
            } else {
                1
            }
        }
        Op::ARG_MAX | Op::ARG_MIN => {
            if i0.is(T::BOOL) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::SELECT => {
            if i0.is(T::UINT32) {
                4
            } else if (0..3).any(|i| s.input(i).dims.len() == 5) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::LESS | Op::GREATER_EQUAL => {
            if i0.is(T::INT16) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::SELECT_V2 => 1 + i32::from(i0.is(T::UINT32)),
        Op::SPACE_TO_DEPTH
        | Op::SPLIT_V
        | Op::SUM
        | Op::LOG_SOFTMAX
        | Op::GREATER
        | Op::LESS_EQUAL
        | Op::SQUARED_DIFFERENCE
        | Op::DEPTH_TO_SPACE => 1 + i32::from(i0.is(T::INT8)),
        Op::TOPK_V2 => {
            if i0.is(T::INT16) || s.in_is(1, T::INT16) || s.out_is(1, T::INT16) {
                3
            } else {
                1 + i32::from(i0.is(T::INT8))
            }
        }
        Op::EXP | Op::LOG | Op::REDUCE_PROD | Op::SQRT => {
            1 + i32::from(i0.is(T::INT8) || i0.is(T::INT16))
        }
        Op::DYNAMIC_UPDATE_SLICE => {
            if i0.is(T::BFLOAT16) {
                6
            } else if i0.is(T::INT4) {
                5
            } else if i0.is(T::INT16) {
                4
            } else if i0.is(T::FLOAT16) {
                3
            } else {
                1 + i32::from(s.in_is(2, T::INT64))
            }
        }
        // Version 1 of BROADCAST_TO was rolled back with its op code: it starts at 2.
        Op::BROADCAST_TO => 2 + i32::from(i0.is(T::INT8) || i0.is(T::INT16)),
        Op::CAST => cast_version(&s),
        Op::WHERE => 1 + i32::from(!i0.is(T::BOOL)),
        Op::GELU => 1 + i32::from(i0.is(T::INT8) || i0.is(T::UINT8)),
        _ => 1,
    }
}

fn conv_2d_version(s: &Sig) -> i32 {
    let filter = s.input(1);
    let bias_type_set = s
        .options
        .as_conv_2_doptions()
        .is_some_and(|o| o.quantized_bias_type != T::FLOAT32);
    if s.types(T::INT16, T::INT8, T::INT16) && bias_type_set {
        return 8;
    }
    let input_channels = s.input(0).dim(3);
    // Grouped: the filter covers fewer input channels than the input has.
    if input_channels.is_some() && filter.dim(3).is_some() && input_channels != filter.dim(3) {
        return 6;
    }
    if s.types(T::INT16, T::INT16, T::INT16) {
        return 4;
    }
    if s.types(T::INT8, T::INT8, T::INT8) {
        return 3;
    }
    if s.types(T::INT8, T::INT4, T::INT8) {
        return 7;
    }
    if s.types(T::FLOAT32, T::INT8, T::FLOAT32) {
        let per_channel = filter
            .dim(0)
            .is_some_and(|d| d > 0 && d as usize == filter.scales());
        return if per_channel { 5 } else { 2 };
    }
    1
}

fn depthwise_version(s: &Sig) -> i32 {
    let filter = s.input(1);
    if s.types(T::INT16, T::INT16, T::INT16) {
        return 5;
    }
    if s.types(T::FLOAT32, T::INT8, T::FLOAT32) {
        let per_channel = filter
            .dim(3)
            .is_some_and(|d| d > 0 && d as usize == filter.scales());
        return if per_channel { 6 } else { 4 };
    }
    if s.types(T::INT8, T::INT8, T::INT8) {
        return 3;
    }
    if s.types(T::INT8, T::INT4, T::INT8) {
        return 7;
    }
    let dilated = s
        .options
        .as_depthwise_conv_2_doptions()
        .is_some_and(|o| o.dilation_w_factor != 1 || o.dilation_h_factor != 1);
    if dilated {
        2
    } else {
        1
    }
}

fn fully_connected_version(s: &Sig) -> i32 {
    let opts = s.options.as_fully_connected_options();
    let weights = s.input(1);
    let per_channel = weights.is_quantized()
        && weights
            .dim(0)
            .is_some_and(|d| d >= 0 && d as usize == weights.scales());
    if weights.is(T::INT2) {
        return 14;
    }
    if s.types(T::INT16, T::INT4, T::INT16) {
        return 13;
    }
    if s.types(T::FLOAT32, T::INT8, T::FLOAT32) && per_channel {
        return 12;
    }
    if s.types(T::INT16, T::INT8, T::INT16)
        && opts.is_some_and(|o| o.quantized_bias_type != T::FLOAT32)
    {
        return 11;
    }
    if weights.sparse {
        return 8;
    }
    if s.types(T::INT16, T::INT16, T::INT16) {
        return 7;
    }
    if s.inputs.len() == 2 {
        return 6;
    }
    if opts.is_some_and(|o| o.keep_num_dims) {
        return 5;
    }
    if s.types(T::INT8, T::INT8, T::INT8) {
        return 4;
    }
    if s.types(T::INT8, T::INT4, T::INT8) {
        return 10;
    }
    if s.types(T::FLOAT32, T::INT8, T::FLOAT32) {
        return if opts.is_some_and(|o| o.asymmetric_quantize_inputs) {
            9
        } else {
            3
        };
    }
    if opts.is_some_and(|o| {
        o.weights_format == fb::FullyConnectedOptionsWeightsFormat::SHUFFLED4x16INT8
    }) {
        return 2;
    }
    1
}

fn mul_version(s: &Sig) -> i32 {
    let i0 = s.input(0);
    let input_quantized = i0
        .quant
        .is_some_and(|q| q.scale.as_ref().is_some_and(|v| !v.is_empty()))
        || s.input(1)
            .quant
            .is_some_and(|q| q.scale.as_ref().is_some_and(|v| !v.is_empty()));
    if i0.is(T::FLOAT16) {
        return 8;
    }
    if (i0.is(T::INT16) && !input_quantized) || i0.is(T::UINT32) {
        return 7;
    }
    if i0.is(T::COMPLEX64) {
        return 6;
    }
    if i0.is(T::INT64) {
        return 5;
    }
    if i0.is(T::INT16) {
        return 4;
    }
    let first_scale = |sp: &Spec| {
        sp.quant
            .and_then(|q| q.scale.as_ref())
            .and_then(|v| v.first().copied())
            .unwrap_or(0.0)
    };
    let (a, b, o) = (
        first_scale(&i0),
        first_scale(&s.input(1)),
        first_scale(&s.output(0)),
    );
    if a != 0.0 && b != 0.0 && o != 0.0 && a * b / o >= 1.0 {
        return 3;
    }
    1 + i32::from(i0.is(T::INT8))
}

/// RNN-family hybrid rule: int8 weights at `weight` and float output give `asym_version` or `sym_version`.
fn recurrent_hybrid_version(
    s: &Sig,
    weight: usize,
    asymmetric: bool,
    asym_version: i32,
    sym_version: i32,
) -> i32 {
    if s.in_is(weight, T::INT8) && s.out_is(0, T::FLOAT32) {
        if asymmetric {
            asym_version
        } else {
            sym_version
        }
    } else {
        1
    }
}

fn cast_version(s: &Sig) -> i32 {
    let (i, o) = (s.input(0), s.output(0));
    let either = |t: T| i.is(t) || o.is(t);
    if either(T::INT2) || either(T::UINT4) {
        8
    } else if either(T::BFLOAT16) {
        7
    } else if i.is(T::INT4) && o.is(T::FLOAT32) {
        6
    } else if either(T::FLOAT64) || either(T::FLOAT16) {
        5
    } else if either(T::UINT16) {
        4
    } else if either(T::INT8) {
        3
    } else if either(T::UINT32) {
        2
    } else {
        1
    }
}

/// The oldest TFLite runtime that runs `op` at `version` (TF's `runtime_version.cc` table), if listed.
pub fn min_runtime_for(op: Op, version: i32) -> Option<&'static str> {
    let index = usize::try_from(version).ok()?.checked_sub(1)?;
    RUNTIME_VERSIONS
        .iter()
        .find(|(o, _)| *o == op)
        .and_then(|(_, versions)| versions.get(index).copied())
        .filter(|v| !v.is_empty())
}

/// Parses `"2.14"` / `"2.17.0"` into numeric components.
fn parse_version(v: &str) -> Option<Vec<u32>> {
    let parts: Option<Vec<u32>> = v.trim().split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty())
}

/// Compares versions component by component; missing components count as 0 (`2.17` == `2.17.0`).
fn compare_versions(a: &[u32], b: &[u32]) -> Ordering {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            a.get(i)
                .copied()
                .unwrap_or(0)
                .cmp(&b.get(i).copied().unwrap_or(0))
        })
        .find(|o| *o != Ordering::Equal)
        .unwrap_or(Ordering::Equal)
}

/// Minimum runtime per op version, from TF's `runtime_version.cc`: entry `i` is version `i + 1`, `""` = not
/// listed.
#[rustfmt::skip]
const RUNTIME_VERSIONS: &[(Op, &[&str])] = &[
    (Op::AVERAGE_POOL_2D, &["1.5.0", "1.14.0", "2.3.0"]),
    (Op::BATCH_MATMUL, &["2.3.0", "2.3.0", "2.4.0", "2.5.0"]),
    (Op::BROADCAST_TO, &["", "2.5.0", "2.5.0"]),
    (Op::CONV_2D, &["1.5.0", "1.14.0", "1.14.0", "2.3.0", "2.4.0", "2.9.0", "2.11.0", "2.15.0"]),
    (Op::DEPTHWISE_CONV_2D, &["1.5.0", "1.12.0", "1.14.0", "2.2.0", "2.3.0", "2.3.0", "2.11.0"]),
    (Op::ADD, &["1.5.0", "1.14.0", "2.4.0", "2.6.0", "2.13.0", "2.23.0"]),
    (Op::ADD_N, &["1.14.0"]),
    (Op::SPACE_TO_BATCH_ND, &["1.6.0", "1.14.0", "2.3.0", "2.12.0"]),
    (Op::SUB, &["1.6.0", "1.14.0", "2.3.0", "2.4.0", "2.4.0"]),
    (Op::DENSIFY, &["2.2.0"]),
    (Op::DIV, &["1.6.0", "2.3.0"]),
    (Op::BATCH_TO_SPACE_ND, &["1.6.0", "1.14.0", "2.3.0", "2.12.0"]),
    (Op::CAST, &["1.5.0", "2.7.0", "2.8.0", "2.9.0", "2.12.0", "2.15.0", "2.17.0", "2.21.0"]),
    (Op::CONCATENATION, &["1.5.0", "1.14.0", "2.3.0", "2.14.0", "2.21.0", "2.23.0"]),
    (Op::DEPTH_TO_SPACE, &["2.1.0", "2.5.0"]),
    (Op::EMBEDDING_LOOKUP, &["1.13.0", "1.14.0", "1.14.0", "2.18.0", "2.21.0"]),
    (Op::EMBEDDING_LOOKUP_SPARSE, &["1.5.0"]),
    (Op::FAKE_QUANT, &["1.5.0", "1.10.0"]),
    (Op::FULLY_CONNECTED, &["1.5.0", "1.10.0", "1.14.0", "1.14.0", "2.0.0", "2.1.0", "2.3.0", "2.3.0", "2.3.0",
        "2.11.0", "2.15.0", "2.17.0", "2.18.0", "2.21.0"]),
    (Op::GATHER, &["1.6.0", "1.14.0", "1.15.0", "2.4.0", "2.5.0", "2.13.0", "2.15.0"]),
    (Op::GATHER_ND, &["1.14.0", "2.3.0", "2.5.0", "2.13.0", "2.16.0"]),
    (Op::HASHTABLE_LOOKUP, &["1.5.0"]),
    (Op::SVDF, &["1.5.0", "1.14.0", "2.2.0", "2.3.0"]),
    (Op::L2_NORMALIZATION, &["1.5.0", "1.14.0"]),
    (Op::L2_POOL_2D, &["1.5.0"]),
    (Op::LOCAL_RESPONSE_NORMALIZATION, &["1.5.0"]),
    (Op::MAX_POOL_2D, &["1.5.0", "1.14.0", "2.3.0"]),
    (Op::MAXIMUM, &["1.14.0", "1.14.0", "2.3.0", "2.3.0"]),
    (Op::MINIMUM, &["1.14.0", "1.14.0", "2.3.0", "2.3.0"]),
    (Op::MUL, &["1.5.0", "1.14.0", "1.15.0", "2.3.0", "2.6.0", "2.11.0", "2.13.0", "2.23.0"]),
    (Op::NON_MAX_SUPPRESSION_V4, &["2.1.0"]),
    (Op::NON_MAX_SUPPRESSION_V5, &["2.1.0"]),
    (Op::PAD, &["1.5.0", "1.14.0", "2.4.0", "2.6.0", "2.20.0"]),
    (Op::TILE, &["1.10.1", "2.2.0", "2.8.0"]),
    (Op::PADV2, &["1.9.0", "1.14.0", "2.4.0", "2.6.0", "2.20.0"]),
    (Op::RESHAPE, &["1.5.0"]),
    (Op::SOFTMAX, &["1.5.0", "1.14.0", "2.3.0", "2.23.0"]),
    (Op::SPACE_TO_DEPTH, &["1.5.0", "1.14.0"]),
    (Op::TRANSPOSE, &["1.6.0", "1.14.0", "1.15.0", "2.3.0", "2.4.0", "2.12.0", "2.14.4", "2.22.0", "2.23.0"]),
    (Op::LSTM, &["1.7.0", "1.10.0", "1.14.0", "2.3.0"]),
    (Op::UNIDIRECTIONAL_SEQUENCE_LSTM, &["1.13.1", "1.14.0", "2.3.0", "2.12.0"]),
    (Op::BIDIRECTIONAL_SEQUENCE_LSTM, &["1.14.0", "1.14.0", "1.14.0"]),
    (Op::BIDIRECTIONAL_SEQUENCE_RNN, &["1.14.0", "1.14.0", "2.3.0"]),
    (Op::MEAN, &["1.6.0", "1.14.0", "2.4.0"]),
    (Op::SUM, &["1.10.0", "1.15.0"]),
    (Op::REDUCE_MAX, &["1.11.0", "1.14.0", "2.5.0"]),
    (Op::REDUCE_MIN, &["1.11.0", "1.14.0", "2.5.0"]),
    (Op::REDUCE_PROD, &["1.11.0", "2.6.0"]),
    (Op::REDUCE_ANY, &["1.11.0"]),
    (Op::RELU6, &["1.5.0", "1.14.0", "2.5.0"]),
    (Op::RESIZE_BILINEAR, &["1.7.0", "1.14.0", "2.2.0", "2.5.0"]),
    (Op::RESIZE_NEAREST_NEIGHBOR, &["1.13.1", "1.14.0", "2.3.0", "2.4.0"]),
    (Op::RNN, &["1.5.0", "1.14.0", "2.3.0"]),
    (Op::SKIP_GRAM, &["1.5.0"]),
    (Op::SQUEEZE, &["1.6.0", "2.5.0"]),
    (Op::SPLIT, &["1.5.0", "1.14.0", "1.14.0", "2.3.0"]),
    (Op::SPLIT_V, &["1.13.1", "2.3.0"]),
    (Op::STRIDED_SLICE, &["1.6.0", "1.14.0", "2.1.0", "2.2.0", "2.5.0", "2.6.0", "2.14.0", "2.14.0"]),
    (Op::TOPK_V2, &["1.7.0", "1.14.0", "2.13.0"]),
    (Op::ARG_MAX, &["1.9.0", "1.14.0", "2.9.0"]),
    (Op::ARG_MIN, &["1.9.0", "1.14.0", "2.9.0"]),
    (Op::TRANSPOSE_CONV, &["1.9.0", "2.2.0", "2.3.0", "2.13.0", "2.15.0"]),
    (Op::SPARSE_TO_DENSE, &["1.9.0", "1.14.0", "1.15.0"]),
    (Op::EXPAND_DIMS, &["1.10.0"]),
    (Op::PACK, &["1.11.0", "1.14.0", "2.3.0", "2.13.0"]),
    (Op::SHAPE, &["1.10.0"]),
    (Op::SLICE, &["1.14.0", "1.14.0", "1.14.0", "2.4.0", "2.5.0", "2.14.0", "2.21.0", "2.23.0"]),
    (Op::TANH, &["1.14.0", "1.14.0", "2.3.0"]),
    (Op::ONE_HOT, &["1.11.0"]),
    (Op::UNPACK, &["1.11.0", "1.14.0", "2.2.0", "2.3.0", "2.22.0"]),
    (Op::LEAKY_RELU, &["1.13.1", "2.3.0"]),
    (Op::LOGISTIC, &["1.14.0", "1.14.0", "2.3.0"]),
    (Op::LOG_SOFTMAX, &["1.14.0", "1.14.0"]),
    (Op::LSH_PROJECTION, &["1.5.0"]),
    (Op::SQUARED_DIFFERENCE, &["1.13.1", "2.5.0"]),
    (Op::MIRROR_PAD, &["1.13.1", "2.3.0", "2.12.0"]),
    (Op::UNIQUE, &["1.14.0"]),
    (Op::UNIDIRECTIONAL_SEQUENCE_RNN, &["1.14.0", "1.14.0", "2.3.0"]),
    (Op::WHERE, &["1.14.0", "2.8.0"]),
    (Op::DEQUANTIZE, &["1.13.1", "1.14.0", "1.15.0", "2.2.0", "2.7.0", "2.18.0", "2.21.0", "2.22.0"]),
    (Op::REVERSE_SEQUENCE, &["1.14.0"]),
    (Op::EQUAL, &["1.14.0", "1.14.0", "2.3.0", "2.13.0", "2.21.0"]),
    (Op::NOT_EQUAL, &["1.14.0", "1.14.0", "2.3.0", "2.21.0"]),
    (Op::GREATER, &["1.14.0", "1.14.0"]),
    (Op::GREATER_EQUAL, &["1.14.0", "1.14.0", "2.13.0"]),
    (Op::LESS, &["1.14.0", "1.14.0", "2.13.0"]),
    (Op::LESS_EQUAL, &["1.14.0", "1.14.0"]),
    (Op::SCATTER_ND, &["2.1.0"]),
    (Op::SEGMENT_SUM, &["2.2.0"]),
    (Op::SELECT, &["1.14.0", "1.14.0", "2.12.0", "2.12.0"]),
    (Op::SELECT_V2, &["2.2.0", "2.12.0"]),
    (Op::IF, &["1.15.0"]),
    (Op::FLOOR_DIV, &["1.14.0", "1.14.0", "2.13.0"]),
    (Op::FLOOR, &["1.9.0"]),
    (Op::CEIL, &["1.14.0"]),
    (Op::MATRIX_DIAG, &["1.14.0"]),
    (Op::MATRIX_SET_DIAG, &["1.14.0"]),
    (Op::ELU, &["1.14.0"]),
    (Op::QUANTIZE, &["1.14.0", "1.15.0", "2.7.0", "2.21.0", "2.21.0", "2.21.0"]),
    (Op::ROUND, &["1.14.0"]),
    (Op::RELU, &["1.5.0", "2.1.0", "2.5.0"]),
    (Op::RELU_N1_TO_1, &["1.5.0"]),
    (Op::RELU_0_TO_1, &["2.10.0"]),
    (Op::PRELU, &["1.8.0"]),
    (Op::EXP, &["1.7.0", "2.12.0"]),
    (Op::COS, &["1.14.0", "2.23.0"]),
    (Op::NEG, &["1.9.0"]),
    (Op::POW, &["1.10.0"]),
    (Op::LOGICAL_OR, &["1.11.0"]),
    (Op::LOGICAL_AND, &["1.11.0"]),
    (Op::LOGICAL_NOT, &["1.11.0"]),
    (Op::FLOOR_MOD, &["1.13.0", "2.13.0"]),
    (Op::RANGE, &["1.13.0", "2.14.0"]),
    (Op::SIN, &["1.9.0", "2.23.0"]),
    (Op::LOG, &["1.14.0", "2.15.0"]),
    (Op::SQRT, &["1.10.0", "2.21.0"]),
    (Op::RSQRT, &["1.10.0", "2.5.0", "2.15.0"]),
    (Op::SQUARE, &["1.12.0"]),
    (Op::ZEROS_LIKE, &["1.12.0"]),
    (Op::ABS, &["1.13.0", "2.4.0", "2.5.0", "2.6.0", "2.12.0"]),
    (Op::HARD_SWISH, &["1.15.0"]),
    (Op::FILL, &["1.13.0", "2.3.0", "2.5.0", "2.12.0"]),
    (Op::REVERSE_V2, &["1.14.0", "2.2.0", "2.5.0"]),
    (Op::RANK, &["1.14.0"]),
    (Op::WHILE, &["1.15.0"]),
    (Op::CUMSUM, &["2.4.0"]),
    (Op::CALL_ONCE, &["2.5.0"]),
    (Op::RFFT2D, &["2.5.0"]),
    (Op::CONV_3D, &["2.5.0"]),
    (Op::IMAG, &["2.5.0"]),
    (Op::REAL, &["2.5.0"]),
    (Op::COMPLEX_ABS, &["2.5.0"]),
    (Op::HASHTABLE, &["2.5.0"]),
    (Op::HASHTABLE_FIND, &["2.5.0"]),
    (Op::HASHTABLE_IMPORT, &["2.5.0"]),
    (Op::HASHTABLE_SIZE, &["2.5.0"]),
    (Op::REDUCE_ALL, &["2.6.0"]),
    (Op::CONV_3D_TRANSPOSE, &["2.6.0"]),
    (Op::VAR_HANDLE, &["2.6.0"]),
    (Op::READ_VARIABLE, &["2.6.0"]),
    (Op::ASSIGN_VARIABLE, &["2.6.0"]),
    (Op::BROADCAST_ARGS, &["2.6.0"]),
    (Op::RANDOM_STANDARD_NORMAL, &["2.8.0"]),
    (Op::BUCKETIZE, &["2.8.0"]),
    (Op::RANDOM_UNIFORM, &["2.8.0"]),
    (Op::MULTINOMIAL, &["2.8.0"]),
    (Op::GELU, &["2.9.0", "2.9.0"]),
    (Op::DYNAMIC_UPDATE_SLICE, &["2.9.0", "2.17.0", "2.19.0", "2.20.0", "2.21.0", "2.22.0"]),
    (Op::UNSORTED_SEGMENT_PROD, &["2.10.0"]),
    (Op::UNSORTED_SEGMENT_MAX, &["2.10.0"]),
    (Op::UNSORTED_SEGMENT_MIN, &["2.11.0"]),
    (Op::UNSORTED_SEGMENT_SUM, &["2.10.0"]),
    (Op::ATAN2, &["2.10.0"]),
    (Op::SIGN, &["2.11.0", "2.12.0"]),
    (Op::BITCAST, &["2.13.0"]),
    (Op::BITWISE_XOR, &["2.13.0"]),
    (Op::RIGHT_SHIFT, &["2.13.0"]),
    (Op::STABLEHLO_SCATTER, &["2.15.0"]),
    (Op::DILATE, &["2.15.0"]),
    (Op::STABLEHLO_RNG_BIT_GENERATOR, &["2.15.0"]),
    (Op::REDUCE_WINDOW, &["2.15.0"]),
    (Op::STABLEHLO_GATHER, &["2.16.0"]),
    (Op::STABLEHLO_ADD, &["2.16.0"]),
    (Op::STABLEHLO_MULTIPLY, &["2.16.0"]),
    (Op::STABLEHLO_REDUCE_WINDOW, &["2.16.0"]),
    (Op::STABLEHLO_MAXIMUM, &["2.16.0"]),
    (Op::STABLEHLO_MINIMUM, &["2.16.0"]),
    (Op::STABLEHLO_PAD, &["2.16.0"]),
    (Op::STABLEHLO_COMPOSITE, &["2.17.0"]),
    (Op::STABLEHLO_AND, &["2.17.0"]),
    (Op::STABLEHLO_SHIFT_LEFT, &["2.17.0"]),
    (Op::STABLEHLO_CBRT, &["2.17.0"]),
    (Op::STABLEHLO_CASE, &["2.17.0"]),
];

/// A small model builder for the unit tests of the quantization modes.
#[cfg(test)]
pub(crate) mod testing {
    use crate::graph::{Graph, TensorId};
    use crate::tflite::fb;

    /// Builds a one-subgraph model tensor by tensor and op by op.
    pub(crate) struct ModelBuilder {
        graph: Graph,
    }

    impl ModelBuilder {
        pub(crate) fn new() -> ModelBuilder {
            let model = fb::ModelT {
                version: 3,
                subgraphs: Some(vec![fb::SubGraphT::default()]),
                buffers: Some(vec![fb::BufferT::default()]),
                ..Default::default()
            };
            ModelBuilder {
                graph: Graph::from_model(model),
            }
        }

        pub(crate) fn tensor(&mut self, name: &str, ty: fb::TensorType, shape: &[i32]) -> TensorId {
            self.graph.add_tensor(fb::TensorT {
                shape: Some(shape.to_vec()),
                type_: ty,
                name: Some(name.to_string()),
                ..Default::default()
            })
        }

        /// A float32 model input.
        pub(crate) fn input(&mut self, name: &str, shape: &[i32]) -> TensorId {
            let t = self.tensor(name, fb::TensorType::FLOAT32, shape);
            self.graph
                .main_mut()
                .inputs
                .get_or_insert_with(Vec::new)
                .push(t.0 as i32);
            t
        }

        /// Changes a tensor's element type.
        pub(crate) fn retype(&mut self, t: TensorId, ty: fb::TensorType) {
            self.graph.tensor_mut(t).type_ = ty;
        }

        /// A constant with raw little-endian data.
        pub(crate) fn constant(
            &mut self,
            name: &str,
            ty: fb::TensorType,
            shape: &[i32],
            data: Vec<u8>,
        ) -> TensorId {
            let t = self.tensor(name, ty, shape);
            self.graph.set_tensor_data(t, data);
            t
        }

        /// A float32 constant holding `f(i)` at element `i`.
        pub(crate) fn weights(
            &mut self,
            name: &str,
            shape: &[i32],
            f: impl Fn(usize) -> f32,
        ) -> TensorId {
            let n: i32 = shape.iter().product();
            let data = (0..n as usize).flat_map(|i| f(i).to_le_bytes()).collect();
            self.constant(name, fb::TensorType::FLOAT32, shape, data)
        }

        /// Sets a tensor's quantization parameters.
        pub(crate) fn quantize(&mut self, t: TensorId, scales: Vec<f32>, axis: i32) {
            let n = scales.len();
            self.graph.tensor_mut(t).quantization = Some(Box::new(fb::QuantizationParametersT {
                scale: Some(scales),
                zero_point: Some(vec![0; n]),
                quantized_dimension: axis,
                ..Default::default()
            }));
        }

        /// Appends an op; `None` inputs are omitted optional inputs.
        pub(crate) fn op(
            &mut self,
            code: fb::BuiltinOperator,
            inputs: &[Option<TensorId>],
            outputs: &[TensorId],
            options: fb::BuiltinOptionsT,
        ) {
            let mut op = self.graph.new_op(code, 1, &[], outputs);
            op.inputs = Some(
                inputs
                    .iter()
                    .map(|t| t.map_or(-1, |t| t.0 as i32))
                    .collect(),
            );
            op.builtin_options = options;
            self.graph
                .main_mut()
                .operators
                .get_or_insert_with(Vec::new)
                .push(op);
        }

        /// Marks a model output.
        pub(crate) fn output(&mut self, t: TensorId) {
            self.graph
                .main_mut()
                .outputs
                .get_or_insert_with(Vec::new)
                .push(t.0 as i32);
        }

        /// The model, written and read back so it is a valid flatbuffer.
        pub(crate) fn build(self) -> Graph {
            Graph::from_bytes(&self.graph.to_bytes()).expect("the test model is valid")
        }
    }

    /// Writes and re-reads a graph (what an artifact goes through).
    pub(crate) fn round_trip(g: &Graph) -> Graph {
        Graph::from_bytes(&g.to_bytes()).expect("the quantized model is valid")
    }

    /// The version of the operator code of `code` in the graph.
    pub(crate) fn version_of(g: &Graph, code: fb::BuiltinOperator) -> Option<i32> {
        g.model
            .operator_codes
            .as_deref()?
            .iter()
            .find(|c| crate::tflite::op_code(c) == code)
            .map(|c| c.version)
    }

    /// The value of a metadata entry.
    pub(crate) fn metadata(g: &Graph, name: &str) -> Option<Vec<u8>> {
        g.metadata()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{metadata, version_of, ModelBuilder};
    use super::*;
    use crate::graph::TensorId;
    use fb::BuiltinOptionsT as O;

    fn fc_options() -> O {
        O::FullyConnectedOptions(Box::<fb::FullyConnectedOptionsT>::default())
    }

    /// FC reading float input and int8 weights of shape [4, 8], with `scales` scales.
    fn hybrid_fc(scales: usize, asymmetric: bool) -> Graph {
        let mut b = ModelBuilder::new();
        let x = b.input("x", &[1, 8]);
        let w = b.constant("w", T::INT8, &[4, 8], vec![1; 32]);
        b.quantize(w, vec![0.1; scales], 0);
        let y = b.tensor("y", T::FLOAT32, &[1, 4]);
        let opts = fb::FullyConnectedOptionsT {
            asymmetric_quantize_inputs: asymmetric,
            ..Default::default()
        };
        b.op(
            Op::FULLY_CONNECTED,
            &[Some(x), Some(w), None],
            &[y],
            O::FullyConnectedOptions(Box::new(opts)),
        );
        b.output(y);
        b.build()
    }

    fn padded(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.resize(16, 0);
        v
    }

    #[test]
    fn hybrid_per_channel_fully_connected_is_version_12_and_needs_litert_2_17() {
        let mut g = hybrid_fc(4, true);
        finalize(&mut g, None).unwrap();
        assert_eq!(version_of(&g, Op::FULLY_CONNECTED), Some(12));
        assert_eq!(
            metadata(&g, MIN_RUNTIME_VERSION_KEY),
            Some(padded("2.17.0"))
        );
    }

    #[test]
    fn hybrid_per_tensor_fully_connected_is_9_with_asymmetric_inputs_and_3_without() {
        let mut g = hybrid_fc(1, true);
        finalize(&mut g, None).unwrap();
        assert_eq!(version_of(&g, Op::FULLY_CONNECTED), Some(9));
        assert_eq!(metadata(&g, MIN_RUNTIME_VERSION_KEY), Some(padded("2.3.0")));
        let mut g = hybrid_fc(1, false);
        finalize(&mut g, None).unwrap();
        assert_eq!(version_of(&g, Op::FULLY_CONNECTED), Some(3));
    }

    #[test]
    fn target_runtime_older_than_the_model_needs_names_op_and_version() {
        let mut g = hybrid_fc(4, true);
        let err = finalize(&mut g, Some("2.14")).unwrap_err();
        assert_eq!(
            err,
            QuantError::RuntimeTooOld {
                op: "FULLY_CONNECTED".into(),
                version: 12,
                needs: "2.17.0".into(),
                target: "2.14".into()
            }
        );
        let mut g = hybrid_fc(4, true);
        assert!(finalize(&mut g, Some("2.17")).is_ok());
        let mut g = hybrid_fc(4, true);
        assert!(matches!(
            finalize(&mut g, Some("latest")),
            Err(QuantError::Unsupported(_))
        ));
    }

    #[test]
    fn versions_are_never_lowered_below_the_source() {
        let mut g = hybrid_fc(1, false);
        g.model.operator_codes.as_mut().unwrap()[0].version = 11;
        finalize(&mut g, None).unwrap();
        assert_eq!(version_of(&g, Op::FULLY_CONNECTED), Some(11));
    }

    #[test]
    fn unused_operator_codes_are_dropped_and_indices_renumbered() {
        let mut g = hybrid_fc(4, true);
        g.op_code_index(Op::DEQUANTIZE, None, 3);
        g.model.operator_codes.as_mut().unwrap().rotate_right(1);
        g.main_mut().operators.as_mut().unwrap()[0].opcode_index = 1;
        finalize(&mut g, None).unwrap();
        assert_eq!(g.model.operator_codes.as_ref().unwrap().len(), 1);
        assert_eq!(g.op_code(crate::graph::OpIndex(0)), Op::FULLY_CONNECTED);
    }

    /// Version of a single op `code` with the given input and output types.
    fn version_for(code: Op, inputs: &[(T, &[i32], usize)], out: T, options: O) -> i32 {
        let mut b = ModelBuilder::new();
        let ins: Vec<Option<TensorId>> = inputs
            .iter()
            .enumerate()
            .map(|(i, (ty, shape, scales))| {
                let t = b.tensor(&format!("in{i}"), *ty, shape);
                if *scales > 0 {
                    b.quantize(
                        t,
                        vec![0.5; *scales],
                        if code == Op::DEPTHWISE_CONV_2D { 3 } else { 0 },
                    );
                }
                Some(t)
            })
            .collect();
        let y = b.tensor("y", out, &[1]);
        b.op(code, &ins, &[y], options);
        let g = b.build();
        op_version(g.main(), g.op(crate::graph::OpIndex(0)), code)
    }

    #[test]
    fn version_table_rows_match_tf_op_version() {
        let conv = || {
            O::Conv2DOptions(Box::new(fb::Conv2DOptionsT {
                dilation_w_factor: 1,
                dilation_h_factor: 1,
                ..Default::default()
            }))
        };
        let dw = || {
            O::DepthwiseConv2DOptions(Box::new(fb::DepthwiseConv2DOptionsT {
                dilation_w_factor: 1,
                dilation_h_factor: 1,
                ..Default::default()
            }))
        };
        let act: &[i32] = &[1, 4, 4, 2];
        let filter: &[i32] = &[3, 1, 1, 2];
        let dw_filter: &[i32] = &[1, 1, 1, 2];
        // CONV_2D: float 1, hybrid per-tensor 2, hybrid per-channel 5, int8 3.
        assert_eq!(
            version_for(
                Op::CONV_2D,
                &[(T::FLOAT32, act, 0), (T::FLOAT32, filter, 0)],
                T::FLOAT32,
                conv()
            ),
            1
        );
        assert_eq!(
            version_for(
                Op::CONV_2D,
                &[(T::FLOAT32, act, 0), (T::INT8, filter, 1)],
                T::FLOAT32,
                conv()
            ),
            2
        );
        assert_eq!(
            version_for(
                Op::CONV_2D,
                &[(T::FLOAT32, act, 0), (T::INT8, filter, 3)],
                T::FLOAT32,
                conv()
            ),
            5
        );
        assert_eq!(
            version_for(
                Op::CONV_2D,
                &[(T::INT8, act, 1), (T::INT8, filter, 3)],
                T::INT8,
                conv()
            ),
            3
        );
        // DEPTHWISE_CONV_2D: hybrid per-channel 6, int8 3.
        assert_eq!(
            version_for(
                Op::DEPTHWISE_CONV_2D,
                &[(T::FLOAT32, act, 0), (T::INT8, dw_filter, 2)],
                T::FLOAT32,
                dw()
            ),
            6
        );
        assert_eq!(
            version_for(
                Op::DEPTHWISE_CONV_2D,
                &[(T::INT8, act, 1), (T::INT8, dw_filter, 2)],
                T::INT8,
                dw()
            ),
            3
        );
        // FULLY_CONNECTED int8 4; DEQUANTIZE fp16 3, int8 2; QUANTIZE to int16 2.
        let v: &[i32] = &[1, 2];
        assert_eq!(
            version_for(
                Op::FULLY_CONNECTED,
                &[(T::INT8, v, 1), (T::INT8, v, 1), (T::INT32, &[2], 1)],
                T::INT8,
                fc_options()
            ),
            4
        );
        assert_eq!(
            version_for(Op::DEQUANTIZE, &[(T::FLOAT16, v, 0)], T::FLOAT32, O::NONE),
            3
        );
        assert_eq!(
            version_for(Op::DEQUANTIZE, &[(T::INT8, v, 1)], T::FLOAT32, O::NONE),
            2
        );
        assert_eq!(
            version_for(Op::QUANTIZE, &[(T::FLOAT32, v, 0)], T::INT16, O::NONE),
            2
        );
        // SOFTMAX / ADD / MEAN: int8 2, int16 3 (ADD only with pot_scale_int16 off).
        assert_eq!(
            version_for(Op::SOFTMAX, &[(T::INT8, v, 1)], T::INT8, O::NONE),
            2
        );
        assert_eq!(
            version_for(Op::SOFTMAX, &[(T::INT16, v, 1)], T::INT16, O::NONE),
            3
        );
        let add = |pot| {
            O::AddOptions(Box::new(fb::AddOptionsT {
                pot_scale_int16: pot,
                ..Default::default()
            }))
        };
        assert_eq!(
            version_for(
                Op::ADD,
                &[(T::INT16, v, 1), (T::INT16, v, 1)],
                T::INT16,
                add(false)
            ),
            3
        );
        assert_eq!(
            version_for(
                Op::ADD,
                &[(T::INT16, v, 1), (T::INT16, v, 1)],
                T::INT16,
                add(true)
            ),
            1
        );
        assert_eq!(
            version_for(
                Op::MEAN,
                &[(T::INT8, v, 1), (T::INT32, &[1], 0)],
                T::INT8,
                O::NONE
            ),
            2
        );
        // Ops whose rules TF does not list are version 1.
        assert_eq!(
            version_for(Op::HARD_SWISH, &[(T::INT8, v, 1)], T::INT8, O::NONE),
            1
        );
    }

    #[test]
    fn runtime_table_rows_match_tf_runtime_version() {
        assert_eq!(min_runtime_for(Op::CONV_2D, 3), Some("1.14.0"));
        assert_eq!(min_runtime_for(Op::CONV_2D, 5), Some("2.4.0"));
        assert_eq!(min_runtime_for(Op::FULLY_CONNECTED, 12), Some("2.17.0"));
        assert_eq!(min_runtime_for(Op::DEQUANTIZE, 3), Some("1.15.0"));
        assert_eq!(min_runtime_for(Op::BROADCAST_TO, 1), None);
        assert_eq!(min_runtime_for(Op::FULLY_CONNECTED, 99), None);
        assert_eq!(min_runtime_for(Op::CONV_2D, 0), None);
    }
}
