//! Edits: add buffers, tensors, operator codes and ops; set metadata.

use super::{Graph, OpIndex, TensorId};
use crate::tflite::{self, fb};

impl Graph {
    /// Appends a buffer holding `data` and returns its index.
    pub fn add_buffer(&mut self, data: Vec<u8>) -> u32 {
        let buffers = self
            .model
            .buffers
            .get_or_insert_with(|| vec![fb::BufferT::default()]);
        buffers.push(fb::BufferT {
            data: Some(data),
            offset: 0,
            size: 0,
        });
        (buffers.len() - 1) as u32
    }

    /// Replaces the data of the buffer behind a tensor with a buffer of its own holding `data`.
    ///
    /// A fresh buffer is used so other tensors sharing the old one are unaffected.
    pub fn set_tensor_data(&mut self, id: TensorId, data: Vec<u8>) {
        let b = self.add_buffer(data);
        self.tensor_mut(id).buffer = b;
    }

    /// Appends a tensor to the focused subgraph and returns its id.
    pub fn add_tensor(&mut self, tensor: fb::TensorT) -> TensorId {
        let tensors = self.main_mut().tensors.get_or_insert_with(Vec::new);
        tensors.push(tensor);
        TensorId(tensors.len() - 1)
    }

    /// The index of the operator-code entry for `code` (custom ops: `custom_code`), adding it if needed.
    ///
    /// An existing entry with a lower version is raised to `version`: one entry serves every op of a code.
    pub fn op_code_index(
        &mut self,
        code: fb::BuiltinOperator,
        custom_code: Option<&str>,
        version: i32,
    ) -> u32 {
        let codes = self.model.operator_codes.get_or_insert_with(Vec::new);
        if let Some(i) = codes
            .iter()
            .position(|c| tflite::op_code(c) == code && c.custom_code.as_deref() == custom_code)
        {
            codes[i].version = codes[i].version.max(version);
            return i as u32;
        }
        codes.push(fb::OperatorCodeT {
            deprecated_builtin_code: code.0.min(127) as i8,
            custom_code: custom_code.map(str::to_string),
            version,
            builtin_code: code,
        });
        (codes.len() - 1) as u32
    }

    /// Inserts an op at position `at` of the execution order and returns its index.
    pub fn insert_op(&mut self, at: OpIndex, op: fb::OperatorT) -> OpIndex {
        let ops = self.main_mut().operators.get_or_insert_with(Vec::new);
        ops.insert(at.0, op);
        at
    }

    /// A plain operator reading `inputs` and writing `outputs`.
    pub fn new_op(
        &mut self,
        code: fb::BuiltinOperator,
        version: i32,
        inputs: &[TensorId],
        outputs: &[TensorId],
    ) -> fb::OperatorT {
        fb::OperatorT {
            opcode_index: self.op_code_index(code, None, version),
            inputs: Some(inputs.iter().map(|t| t.0 as i32).collect()),
            outputs: Some(outputs.iter().map(|t| t.0 as i32).collect()),
            debug_metadata_index: -1,
            ..Default::default()
        }
    }

    /// Replaces every read of `from` by ops in `ops` (and model outputs when `outputs` is set) with `to`.
    pub fn redirect_reads(&mut self, from: TensorId, to: TensorId, ops: &[OpIndex]) {
        for &o in ops {
            if let Some(inputs) = self.op_mut(o).inputs.as_mut() {
                for t in inputs.iter_mut() {
                    if *t == from.0 as i32 {
                        *t = to.0 as i32;
                    }
                }
            }
        }
    }

    /// Sets (or replaces) a metadata entry.
    pub fn set_metadata(&mut self, name: &str, data: Vec<u8>) {
        let b = self.add_buffer(data);
        let entries = self.model.metadata.get_or_insert_with(Vec::new);
        if let Some(m) = entries.iter_mut().find(|m| m.name.as_deref() == Some(name)) {
            m.buffer = b;
        } else {
            entries.push(fb::MetadataT {
                name: Some(name.to_string()),
                buffer: b,
            });
        }
    }

    /// Drops buffers that no tensor, metadata entry or other subgraph refers to, renumbering the rest.
    ///
    /// Buffer 0 (the empty sentinel) always stays.
    pub fn remove_unused_buffers(&mut self) {
        let Some(buffers) = self.model.buffers.as_ref() else {
            return;
        };
        let mut used = vec![false; buffers.len()];
        if !used.is_empty() {
            used[0] = true;
        }
        for sg in self.model.subgraphs.as_deref().unwrap_or(&[]) {
            for t in sg.tensors.as_deref().unwrap_or(&[]) {
                if let Some(u) = used.get_mut(t.buffer as usize) {
                    *u = true;
                }
            }
        }
        for m in self.model.metadata.as_deref().unwrap_or(&[]) {
            if let Some(u) = used.get_mut(m.buffer as usize) {
                *u = true;
            }
        }
        for &m in self.model.metadata_buffer.as_deref().unwrap_or(&[]) {
            if let Some(u) = usize::try_from(m).ok().and_then(|m| used.get_mut(m)) {
                *u = true;
            }
        }
        let mut new_index = vec![0u32; used.len()];
        let mut next = 0u32;
        for (i, &u) in used.iter().enumerate() {
            if u {
                new_index[i] = next;
                next += 1;
            }
        }
        let old = self.model.buffers.take().unwrap_or_default();
        self.model.buffers = Some(
            old.into_iter()
                .zip(&used)
                .filter(|(_, &u)| u)
                .map(|(b, _)| b)
                .collect(),
        );
        for sg in self.model.subgraphs.as_deref_mut().unwrap_or(&mut []) {
            for t in sg.tensors.as_deref_mut().unwrap_or(&mut []) {
                t.buffer = new_index.get(t.buffer as usize).copied().unwrap_or(0);
            }
        }
        for m in self.model.metadata.as_deref_mut().unwrap_or(&mut []) {
            m.buffer = new_index.get(m.buffer as usize).copied().unwrap_or(0);
        }
        for m in self.model.metadata_buffer.as_deref_mut().unwrap_or(&mut []) {
            if let Some(&n) = usize::try_from(*m).ok().and_then(|i| new_index.get(i)) {
                *m = n as i32;
            }
        }
    }

    /// Removes tensors of the focused subgraph that no op, input, output or signature refers to, renumbering.
    pub fn remove_unused_tensors(&mut self) {
        let n = self.tensors().len();
        let focus = self.focus as u32;
        let mut used = vec![false; n];
        let sg = self.main();
        let mark = |ids: &[i32], used: &mut Vec<bool>| {
            for &t in ids {
                if t >= 0 && (t as usize) < n {
                    used[t as usize] = true;
                }
            }
        };
        mark(sg.inputs.as_deref().unwrap_or(&[]), &mut used);
        mark(sg.outputs.as_deref().unwrap_or(&[]), &mut used);
        for op in sg.operators.as_deref().unwrap_or(&[]) {
            mark(op.inputs.as_deref().unwrap_or(&[]), &mut used);
            mark(op.outputs.as_deref().unwrap_or(&[]), &mut used);
            mark(op.intermediates.as_deref().unwrap_or(&[]), &mut used);
        }
        for sig in self.model.signature_defs.as_deref().unwrap_or(&[]) {
            if sig.subgraph_index == focus {
                for m in sig.inputs.iter().chain(sig.outputs.iter()).flatten() {
                    if let Some(u) = used.get_mut(m.tensor_index as usize) {
                        *u = true;
                    }
                }
            }
        }
        if used.iter().all(|&u| u) {
            return;
        }
        let mut new_index = vec![-1i32; n];
        let mut next = 0;
        for (i, &u) in used.iter().enumerate() {
            if u {
                new_index[i] = next;
                next += 1;
            }
        }
        let remap = |ids: &mut Option<Vec<i32>>| {
            for t in ids.as_deref_mut().unwrap_or(&mut []) {
                if *t >= 0 {
                    *t = new_index.get(*t as usize).copied().unwrap_or(-1);
                }
            }
        };
        let sg = self.main_mut();
        let old = sg.tensors.take().unwrap_or_default();
        sg.tensors = Some(
            old.into_iter()
                .zip(&used)
                .filter(|(_, &u)| u)
                .map(|(t, _)| t)
                .collect(),
        );
        remap(&mut sg.inputs);
        remap(&mut sg.outputs);
        for op in sg.operators.as_deref_mut().unwrap_or(&mut []) {
            remap(&mut op.inputs);
            remap(&mut op.outputs);
            remap(&mut op.intermediates);
        }
        for sig in self.model.signature_defs.as_deref_mut().unwrap_or(&mut []) {
            if sig.subgraph_index == focus {
                for m in sig
                    .inputs
                    .iter_mut()
                    .chain(sig.outputs.iter_mut())
                    .flatten()
                {
                    if let Some(&n) = new_index.get(m.tensor_index as usize) {
                        m.tensor_index = n as u32;
                    }
                }
            }
        }
    }
}
