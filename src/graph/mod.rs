//! The model as an editable graph.
//!
//! [`Graph`] owns the whole model in flatbuffers' object form (so nothing is lost on a round trip) and offers
//! the views and edits quantization needs: tensors, constant data, producers and consumers, operator codes,
//! and adding buffers, tensors and ops. Every view and edit acts on the **focused** subgraph: the main one
//! (index 0) unless [`Graph::focus`] moved it; [`Graph::view`] gives another subgraph's read-only view.

mod edit;
mod equalize;
mod fp16;

use crate::tflite::{self, fb};
pub use equalize::equalize_cross_layer;
pub use fp16::fold_fp16_constants;

/// Index of a tensor in the focused subgraph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct TensorId(pub usize);

/// Index of an operator in the focused subgraph's execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct OpIndex(pub usize);

/// A TFLite model open for editing.
#[derive(Debug)]
pub struct Graph {
    /// The whole model. Subgraph 0 is the main one.
    pub model: fb::ModelT,
    /// What the reader noticed but could carry (newer fields, moved buffers).
    pub warnings: Vec<String>,
    /// The subgraph every view and edit acts on (0, the main one, unless moved by [`Graph::focus`]).
    focus: usize,
}

/// Why a model file could not be opened: the path and the reason, printed on one line.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct ModelFileError {
    /// The file that was asked for.
    pub path: std::path::PathBuf,
    /// What went wrong.
    pub reason: ModelFileReason,
}

/// The reason inside a [`ModelFileError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelFileReason {
    /// The file could not be read (missing, a directory, no permission, ...).
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a model litequant can read.
    #[error(transparent)]
    Model(#[from] tflite::ModelError),
}

impl Graph {
    /// Reads and verifies the model stored at `path`.
    pub fn from_file(path: &std::path::Path) -> Result<Graph, ModelFileError> {
        let fail = |reason: ModelFileReason| ModelFileError {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| fail(e.into()))?;
        Graph::from_bytes(&bytes).map_err(|e| fail(e.into()))
    }

    /// Reads and verifies a model from `.tflite` bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Graph, tflite::ModelError> {
        let out = tflite::read_model(bytes)?;
        let mut g = Graph::from_model(out.model);
        g.warnings = out.warnings;
        Ok(g)
    }

    /// A graph over a model built in memory, focused on its main subgraph (the model must have one).
    pub fn from_model(model: fb::ModelT) -> Graph {
        Graph {
            model,
            warnings: Vec::new(),
            focus: 0,
        }
    }

    /// Number of subgraphs.
    pub fn subgraph_count(&self) -> usize {
        self.model.subgraphs.as_ref().map_or(0, Vec::len)
    }

    /// The subgraph views and edits act on.
    pub fn focused(&self) -> usize {
        self.focus
    }

    /// Moves views and edits to subgraph `sg` (which must exist).
    pub fn focus(&mut self, sg: usize) {
        debug_assert!(sg < self.subgraph_count());
        self.focus = sg;
    }

    /// A read-only copy focused on subgraph `sg`: the model's structure, and the data of the buffers that
    /// subgraph's tensors use (others are left empty, so the copy costs that subgraph's constants).
    pub fn view(&self, sg: usize) -> Graph {
        let used: std::collections::BTreeSet<u32> = self
            .model
            .subgraphs
            .as_deref()
            .and_then(|s| s.get(sg))
            .and_then(|s| s.tensors.as_deref())
            .unwrap_or(&[])
            .iter()
            .map(|t| t.buffer)
            .collect();
        let buffers = self.model.buffers.as_ref().map(|bs| {
            bs.iter()
                .enumerate()
                .map(|(i, b)| {
                    if u32::try_from(i).is_ok_and(|i| used.contains(&i)) {
                        b.clone()
                    } else {
                        fb::BufferT {
                            data: None,
                            offset: b.offset,
                            size: b.size,
                        }
                    }
                })
                .collect()
        });
        let model = fb::ModelT {
            version: self.model.version,
            operator_codes: self.model.operator_codes.clone(),
            subgraphs: self.model.subgraphs.clone(),
            description: self.model.description.clone(),
            buffers,
            metadata_buffer: self.model.metadata_buffer.clone(),
            metadata: self.model.metadata.clone(),
            signature_defs: self.model.signature_defs.clone(),
            external_buffer_groups: self.model.external_buffer_groups.clone(),
            external_buffers: self.model.external_buffers.clone(),
        };
        Graph {
            model,
            warnings: Vec::new(),
            focus: sg,
        }
    }

    /// The subgraphs an op runs (WHILE: cond, body; IF: then, else; CALL_ONCE: init), in that order.
    pub fn called_subgraphs(&self, op: OpIndex) -> Vec<usize> {
        called_subgraphs(self.op(op))
    }

    /// Every subgraph some op of subgraph `sg` runs, in op order, each once.
    pub fn calls_of(&self, sg: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let ops = self
            .model
            .subgraphs
            .as_deref()
            .and_then(|s| s.get(sg))
            .and_then(|s| s.operators.as_deref())
            .unwrap_or(&[]);
        for op in ops {
            for c in called_subgraphs(op) {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// Serializes the model (deterministic, 16-byte aligned buffers).
    pub fn to_bytes(&self) -> Vec<u8> {
        tflite::write_model(&self.model)
    }

    /// The focused subgraph (the main one unless [`Graph::focus`] moved it).
    pub fn main(&self) -> &fb::SubGraphT {
        // `Graph::from_bytes` rejects models without a subgraph (tflite::check); `focus` checks its index.
        &self.model.subgraphs.as_deref().unwrap_or(&[])[self.focus]
    }

    /// The focused subgraph, mutable.
    pub fn main_mut(&mut self) -> &mut fb::SubGraphT {
        &mut self.model.subgraphs.get_or_insert_with(Vec::new)[self.focus]
    }

    /// Tensors of the focused subgraph.
    pub fn tensors(&self) -> &[fb::TensorT] {
        self.main().tensors.as_deref().unwrap_or(&[])
    }

    /// One tensor of the focused subgraph.
    pub fn tensor(&self, id: TensorId) -> &fb::TensorT {
        &self.tensors()[id.0]
    }

    /// One tensor of the focused subgraph, mutable.
    pub fn tensor_mut(&mut self, id: TensorId) -> &mut fb::TensorT {
        &mut self.main_mut().tensors.get_or_insert_with(Vec::new)[id.0]
    }

    /// A tensor's name ("" when it has none).
    pub fn tensor_name(&self, id: TensorId) -> &str {
        self.tensor(id).name.as_deref().unwrap_or("")
    }

    /// A tensor's shape (static dims; `shape_signature` has -1 for dynamic ones).
    pub fn shape(&self, id: TensorId) -> &[i32] {
        self.tensor(id).shape.as_deref().unwrap_or(&[])
    }

    /// Operators of the focused subgraph, in execution order.
    pub fn ops(&self) -> &[fb::OperatorT] {
        self.main().operators.as_deref().unwrap_or(&[])
    }

    /// One operator of the focused subgraph.
    pub fn op(&self, i: OpIndex) -> &fb::OperatorT {
        &self.ops()[i.0]
    }

    /// One operator of the focused subgraph, mutable.
    pub fn op_mut(&mut self, i: OpIndex) -> &mut fb::OperatorT {
        &mut self.main_mut().operators.get_or_insert_with(Vec::new)[i.0]
    }

    /// The builtin code of an operator (`max` of the two code fields).
    pub fn op_code(&self, i: OpIndex) -> fb::BuiltinOperator {
        tflite::op_code(self.op_code_entry(i))
    }

    /// The operator-code table entry of an operator (version, custom code).
    pub fn op_code_entry(&self, i: OpIndex) -> &fb::OperatorCodeT {
        // Opcode indices are checked on read (tflite::check).
        &self.model.operator_codes.as_deref().unwrap_or(&[])[self.op(i).opcode_index as usize]
    }

    /// Printable name of an op's type: the builtin name, or the custom code for CUSTOM ops.
    pub fn op_type_name(&self, i: OpIndex) -> String {
        let code = self.op_code(i);
        if code == fb::BuiltinOperator::CUSTOM {
            format!(
                "CUSTOM({})",
                self.op_code_entry(i).custom_code.as_deref().unwrap_or("?")
            )
        } else {
            tflite::op_name(code)
        }
    }

    /// An op's input tensors; `None` for an omitted optional input (-1).
    pub fn op_inputs(&self, i: OpIndex) -> Vec<Option<TensorId>> {
        self.op(i)
            .inputs
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|&t| (t >= 0).then_some(TensorId(t as usize)))
            .collect()
    }

    /// An op's output tensors.
    pub fn op_outputs(&self, i: OpIndex) -> Vec<TensorId> {
        self.op(i)
            .outputs
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|&t| TensorId(t as usize))
            .collect()
    }

    /// The focused subgraph's input tensors.
    pub fn inputs(&self) -> Vec<TensorId> {
        self.main()
            .inputs
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|&t| TensorId(t as usize))
            .collect()
    }

    /// The focused subgraph's output tensors.
    pub fn outputs(&self) -> Vec<TensorId> {
        self.main()
            .outputs
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|&t| TensorId(t as usize))
            .collect()
    }

    /// The raw bytes of a tensor's buffer, if it has non-empty data (a constant).
    pub fn buffer_data(&self, id: TensorId) -> Option<&[u8]> {
        let b = self.tensor(id).buffer as usize;
        if b == 0 {
            return None;
        }
        self.model
            .buffers
            .as_ref()?
            .get(b)?
            .data
            .as_deref()
            .filter(|d| !d.is_empty())
    }

    /// Whether a tensor holds constant data.
    pub fn is_constant(&self, id: TensorId) -> bool {
        self.buffer_data(id).is_some()
    }

    /// A constant FLOAT32 tensor's values (little-endian), or `None` if it is not one.
    pub fn const_f32(&self, id: TensorId) -> Option<Vec<f32>> {
        if self.tensor(id).type_ != fb::TensorType::FLOAT32 {
            return None;
        }
        let data = self.buffer_data(id)?;
        Some(
            data.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }

    /// A constant INT32 tensor's values, or `None` if it is not one.
    pub fn const_i32(&self, id: TensorId) -> Option<Vec<i32>> {
        if self.tensor(id).type_ != fb::TensorType::INT32 {
            return None;
        }
        let data = self.buffer_data(id)?;
        Some(
            data.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        )
    }

    /// For every tensor, the op that produces it (none for inputs and constants).
    pub fn producers(&self) -> Vec<Option<OpIndex>> {
        let mut p = vec![None; self.tensors().len()];
        for (i, op) in self.ops().iter().enumerate() {
            for &t in op.outputs.as_deref().unwrap_or(&[]) {
                if t >= 0 {
                    p[t as usize] = Some(OpIndex(i));
                }
            }
        }
        p
    }

    /// For every tensor, the ops that read it, in execution order.
    pub fn consumers(&self) -> Vec<Vec<OpIndex>> {
        let mut c = vec![Vec::new(); self.tensors().len()];
        for (i, op) in self.ops().iter().enumerate() {
            for &t in op.inputs.as_deref().unwrap_or(&[]) {
                if t >= 0 && !c[t as usize].contains(&OpIndex(i)) {
                    c[t as usize].push(OpIndex(i));
                }
            }
        }
        c
    }

    /// Number of elements of a shape (1 for a scalar; saturates instead of overflowing on absurd shapes).
    pub fn num_elements(&self, id: TensorId) -> usize {
        self.shape(id)
            .iter()
            .fold(1usize, |n, &d| n.saturating_mul(d.max(0) as usize))
    }

    /// Checks that the model is a float source litequant can quantize: no tensor of the focused subgraph
    /// carries quantization parameters yet (float16 weights behind DEQUANTIZE are fine: they are folded).
    pub fn require_float_source(&self) -> Result<(), tflite::ModelError> {
        for t in self.inputs() {
            let ty = self.tensor(t).type_;
            if ty != fb::TensorType::FLOAT32 {
                return Err(tflite::ModelError::NotFloat(format!(
                    "input {:?} is {}, litequant starts from float32 models",
                    self.tensor_name(t),
                    tflite::type_name(ty)
                )));
            }
        }
        let quantized = self.tensors().iter().find(|t| {
            t.quantization
                .as_ref()
                .and_then(|q| q.scale.as_ref())
                .is_some_and(|s| !s.is_empty())
        });
        match quantized {
            None => Ok(()),
            Some(t) => Err(tflite::ModelError::NotFloat(format!(
                "tensor {:?} ({}) is already quantized; quantize the float32 model it came from",
                t.name.as_deref().unwrap_or(""),
                tflite::type_name(t.type_)
            ))),
        }
    }

    /// Metadata entries (`name`, buffer bytes).
    pub fn metadata(&self) -> Vec<(String, Vec<u8>)> {
        let buffers = self.model.buffers.as_deref().unwrap_or(&[]);
        self.model
            .metadata
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|m| {
                let data = buffers
                    .get(m.buffer as usize)
                    .and_then(|b| b.data.clone())
                    .unwrap_or_default();
                (m.name.clone().unwrap_or_default(), data)
            })
            .collect()
    }
}

/// The subgraphs an op runs (WHILE: cond, body; IF: then, else; CALL_ONCE: init), from its options.
pub fn called_subgraphs(op: &fb::OperatorT) -> Vec<usize> {
    let idx = |i: i32| usize::try_from(i).ok();
    match &op.builtin_options {
        fb::BuiltinOptionsT::WhileOptions(o) => {
            [idx(o.cond_subgraph_index), idx(o.body_subgraph_index)]
                .into_iter()
                .flatten()
                .collect()
        }
        fb::BuiltinOptionsT::IfOptions(o) => {
            [idx(o.then_subgraph_index), idx(o.else_subgraph_index)]
                .into_iter()
                .flatten()
                .collect()
        }
        fb::BuiltinOptionsT::CallOnceOptions(o) => idx(o.init_subgraph_index).into_iter().collect(),
        _ => Vec::new(),
    }
}
