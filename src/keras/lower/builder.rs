//! Appending tensors, constants and ops to the float graph being built (one subgraph, TF's layout).

use crate::graph::{Graph, OpIndex, TensorId};
use crate::tflite::fb;

/// The float32 model under construction.
pub struct Builder {
    /// The model so far.
    pub graph: Graph,
}

impl Builder {
    /// An empty model: schema 3, the empty buffer 0, one subgraph `main`.
    pub fn new() -> Builder {
        let model = fb::ModelT {
            version: 3,
            description: Some("litequant Keras front end".into()),
            buffers: Some(vec![fb::BufferT::default()]),
            subgraphs: Some(vec![fb::SubGraphT {
                name: Some("main".into()),
                tensors: Some(Vec::new()),
                inputs: Some(Vec::new()),
                outputs: Some(Vec::new()),
                operators: Some(Vec::new()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        Builder {
            graph: Graph::from_model(model),
        }
    }

    fn tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        type_: fb::TensorType,
        buffer: u32,
    ) -> TensorId {
        self.graph.add_tensor(fb::TensorT {
            shape: Some(dims(shape)),
            type_,
            buffer,
            name: Some(name.to_string()),
            ..Default::default()
        })
    }

    /// A float32 tensor computed by an op.
    pub fn activation(&mut self, name: &str, shape: &[usize]) -> TensorId {
        self.tensor(name, shape, fb::TensorType::FLOAT32, 0)
    }

    /// A tensor of `type_` computed by an op (int32 indices, bool masks).
    pub fn computed(&mut self, name: &str, shape: &[usize], type_: fb::TensorType) -> TensorId {
        self.tensor(name, shape, type_, 0)
    }

    /// A float32 constant.
    pub fn constant_f32(&mut self, name: &str, shape: &[usize], data: &[f32]) -> TensorId {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let buffer = self.graph.add_buffer(bytes);
        self.tensor(name, shape, fb::TensorType::FLOAT32, buffer)
    }

    /// An int32 constant (shapes, axes, paddings).
    pub fn constant_i32(&mut self, name: &str, shape: &[usize], data: &[i32]) -> TensorId {
        let bytes = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let buffer = self.graph.add_buffer(bytes);
        self.tensor(name, shape, fb::TensorType::INT32, buffer)
    }

    /// A float32 constant's values.
    pub fn f32_values(&self, t: TensorId) -> Vec<f32> {
        let buffer = self.graph.tensor(t).buffer as usize;
        let data = self
            .graph
            .model
            .buffers
            .as_deref()
            .and_then(|b| b.get(buffer))
            .and_then(|b| b.data.as_deref())
            .unwrap_or(&[]);
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// Replaces a float32 constant's values (same element count).
    pub fn set_f32_values(&mut self, t: TensorId, values: &[f32]) {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.graph.set_tensor_data(t, bytes);
    }

    /// Appends an op; `None` inputs are omitted optional operands (-1).
    pub fn op(
        &mut self,
        code: fb::BuiltinOperator,
        version: i32,
        inputs: &[Option<TensorId>],
        outputs: &[TensorId],
        options: fb::BuiltinOptionsT,
    ) -> OpIndex {
        let mut op = self.graph.new_op(code, version, &[], outputs);
        op.inputs = Some(
            inputs
                .iter()
                .map(|t| t.map_or(-1, |t| t.0 as i32))
                .collect(),
        );
        op.builtin_options = options;
        let at = OpIndex(self.graph.ops().len());
        self.graph.insert_op(at, op)
    }

    /// Marks the subgraph's inputs and outputs and writes the `serving_default` signature.
    pub fn finish(
        mut self,
        inputs: &[(String, TensorId)],
        outputs: &[(String, TensorId)],
    ) -> Graph {
        let ids = |list: &[(String, TensorId)]| list.iter().map(|(_, t)| t.0 as i32).collect();
        let maps = |list: &[(String, TensorId)]| {
            list.iter()
                .map(|(name, t)| fb::TensorMapT {
                    name: Some(name.clone()),
                    tensor_index: t.0 as u32,
                })
                .collect()
        };
        let main = self.graph.main_mut();
        main.inputs = Some(ids(inputs));
        main.outputs = Some(ids(outputs));
        self.graph.model.signature_defs = Some(vec![fb::SignatureDefT {
            inputs: Some(maps(inputs)),
            outputs: Some(maps(outputs)),
            signature_key: Some("serving_default".into()),
            subgraph_index: 0,
        }]);
        // Ops taken out again by a fold leave tensors and constants nothing reads.
        self.graph.remove_unused_tensors();
        self.graph.remove_unused_buffers();
        self.graph
    }
}

/// A shape as the flatbuffer's int32 dims.
pub fn dims(shape: &[usize]) -> Vec<i32> {
    shape
        .iter()
        .map(|&d| i32::try_from(d).unwrap_or(i32::MAX))
        .collect()
}
