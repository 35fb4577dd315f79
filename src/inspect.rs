//! `litequant inspect`: what a model holds, in one report.
//!
//! [`inspect`] builds an [`Inspection`] from a read [`Graph`]: inputs and outputs with their quantization,
//! an op histogram by type, version and tensor types, the parameter count, signature defs, metadata
//! (`min_runtime_version` among them), every op with its output tensor names (what `exclude` globs match)
//! and the litequant modes that can quantize it. It serializes to JSON (`--json`) and displays as compact,
//! column-aligned sections.

use crate::graph::{Graph, ModelFileError};
use crate::quantize::Mode;
use crate::tflite::{self, fb};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// Everything `litequant inspect` reports about a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    /// Size of the `.tflite` file in bytes.
    pub file_size: u64,
    /// Flatbuffer schema version (3).
    pub schema_version: u32,
    /// The model's description string (TF writes "MLIR Converted.").
    pub description: Option<String>,
    /// Every subgraph, the main one (0) first.
    pub subgraphs: Vec<SubgraphInfo>,
    /// Inputs of the main subgraph.
    pub inputs: Vec<TensorInfo>,
    /// Outputs of the main subgraph.
    pub outputs: Vec<TensorInfo>,
    /// Ops of every subgraph counted by type, version and tensor types.
    pub op_histogram: Vec<OpCount>,
    /// Elements of all constant tensors (each buffer counted once).
    pub parameters: u64,
    /// [`Inspection::parameters`] by element type (`float32`, `int8`, ...).
    pub parameters_by_type: BTreeMap<String, u64>,
    /// Bytes of constant data.
    pub constant_bytes: u64,
    /// Signature defs (named entry points).
    pub signatures: Vec<SignatureInfo>,
    /// Metadata entries.
    pub metadata: Vec<MetadataInfo>,
    /// The `min_runtime_version` metadata, when present and readable.
    pub min_runtime_version: Option<String>,
    /// Every op of every subgraph in execution order.
    pub ops: Vec<OpInfo>,
    /// What the reader noticed (fields newer than our schema, buffers moved inline).
    pub warnings: Vec<String>,
}

/// One subgraph's size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubgraphInfo {
    /// Position in the model (0 = main).
    pub index: usize,
    /// The subgraph's name, if it has one.
    pub name: Option<String>,
    /// Number of tensors.
    pub tensors: usize,
    /// Number of operators.
    pub ops: usize,
}

/// A model input or output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorInfo {
    /// Index in the main subgraph.
    pub tensor: usize,
    /// Tensor name.
    pub name: String,
    /// Shape, with -1 for dynamic dimensions (from `shape_signature` when present).
    pub shape: Vec<i32>,
    /// Element type (`float32`, `int8`, ...).
    pub dtype: String,
    /// Quantization scales (empty for float tensors).
    pub scale: Vec<f32>,
    /// Quantization zero points, one per scale.
    pub zero_point: Vec<i64>,
    /// Axis of per-channel quantization (meaningful with several scales).
    pub quantized_dimension: i32,
}

/// How many ops share a type, version and tensor types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpCount {
    /// Op type (`FULLY_CONNECTED`, `CUSTOM(name)`).
    pub op: String,
    /// Op version from the operator-code table.
    pub version: i32,
    /// Input and output element types, `f32,i8,i32->f32` (`-` for an omitted optional input).
    pub types: String,
    /// Number of such ops.
    pub count: usize,
}

/// A signature def.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SignatureInfo {
    /// Signature key (`serving_default`).
    pub key: String,
    /// Subgraph it runs.
    pub subgraph: u32,
    /// Inputs: signature name and tensor index.
    pub inputs: Vec<(String, u32)>,
    /// Outputs: signature name and tensor index.
    pub outputs: Vec<(String, u32)>,
}

/// A metadata entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetadataInfo {
    /// Entry name (`min_runtime_version`, `CONVERSION_METADATA`, ...).
    pub name: String,
    /// Buffer index.
    pub buffer: u32,
    /// Size of the data in bytes.
    pub size: usize,
    /// The data as text, when it is printable UTF-8 (trailing NULs removed).
    pub text: Option<String>,
}

/// One op.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpInfo {
    /// Subgraph holding the op.
    pub subgraph: usize,
    /// Position in the subgraph's execution order.
    pub index: usize,
    /// Op type (`CONV_2D`, `CUSTOM(name)`).
    pub op: String,
    /// Op version.
    pub version: i32,
    /// Input element types (`-` for an omitted optional input).
    pub input_types: Vec<String>,
    /// Output element types.
    pub output_types: Vec<String>,
    /// Output tensor names: what `exclude` patterns are matched against.
    pub outputs: Vec<String>,
    /// litequant modes that can quantize this op (every subgraph is quantized: loop bodies too).
    pub modes: Vec<Mode>,
    /// Why the integer modes (and dynamic, for an op with float weights) leave it float: the op table's
    /// reason for each such mode the op lacks.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub float_reasons: Vec<(Mode, String)>,
}

/// The modes that can quantize an op of type `code`, in the order dynamic, float16, int8, int16x8: the
/// op's faces in the op table ([`crate::ops::modes`]).
///
/// * dynamic: ops whose table entry names int8 weight inputs;
/// * float16: every op type (any op's constant float inputs can be stored as float16);
/// * int8 and int16x8: ops with a quantization rule for that mode.
///
/// dynamic and float16 only act on constant float inputs; [`inspect`] drops them for ops that have none.
pub fn supported_modes(code: fb::BuiltinOperator) -> Vec<Mode> {
    crate::ops::modes(code)
}

/// Builds the report for a model read into `graph`; `file_size` is the size of the file it came from.
pub fn inspect(graph: &Graph, file_size: u64) -> Inspection {
    let model = &graph.model;
    let subgraphs = model.subgraphs.as_deref().unwrap_or(&[]);
    let buffers = model.buffers.as_deref().unwrap_or(&[]);
    let codes = model.operator_codes.as_deref().unwrap_or(&[]);
    let main_tensors = subgraphs
        .first()
        .and_then(|s| s.tensors.as_deref())
        .unwrap_or(&[]);
    let io = |ids: Option<&Vec<i32>>| -> Vec<TensorInfo> {
        ids.map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter_map(|&t| {
                let index = usize::try_from(t).ok()?;
                Some(tensor_info(index, main_tensors.get(index)?))
            })
            .collect()
    };
    let (inputs, outputs) = match subgraphs.first() {
        Some(main) => (io(main.inputs.as_ref()), io(main.outputs.as_ref())),
        None => (Vec::new(), Vec::new()),
    };

    let mut ops = Vec::new();
    for (s, sg) in subgraphs.iter().enumerate() {
        let tensors = sg.tensors.as_deref().unwrap_or(&[]);
        for (i, op) in sg.operators.as_deref().unwrap_or(&[]).iter().enumerate() {
            ops.push(op_info(s, i, op, tensors, codes, buffers));
        }
    }
    let mut histogram: BTreeMap<(String, i32, String), usize> = BTreeMap::new();
    for op in &ops {
        let types = format!(
            "{}->{}",
            op.input_types.join(","),
            op.output_types.join(",")
        );
        *histogram
            .entry((op.op.clone(), op.version, types))
            .or_default() += 1;
    }
    let mut op_histogram: Vec<OpCount> = histogram
        .into_iter()
        .map(|((op, version, types), count)| OpCount {
            op,
            version,
            types,
            count,
        })
        .collect();
    op_histogram.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.op.cmp(&b.op)));

    let (parameters, parameters_by_type, constant_bytes) = count_parameters(subgraphs, buffers);
    let metadata: Vec<MetadataInfo> = model
        .metadata
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .map(|m| {
            let data = buffers
                .get(m.buffer as usize)
                .and_then(|b| b.data.as_deref())
                .unwrap_or(&[]);
            MetadataInfo {
                name: m.name.clone().unwrap_or_default(),
                buffer: m.buffer,
                size: data.len(),
                text: printable(data),
            }
        })
        .collect();
    let min_runtime_version = metadata
        .iter()
        .find(|m| m.name == "min_runtime_version")
        .and_then(|m| m.text.clone());
    let signatures = model
        .signature_defs
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .map(|s| {
            let maps = |m: &Option<Vec<fb::TensorMapT>>| -> Vec<(String, u32)> {
                m.iter()
                    .flatten()
                    .map(|t| (t.name.clone().unwrap_or_default(), t.tensor_index))
                    .collect()
            };
            SignatureInfo {
                key: s.signature_key.clone().unwrap_or_default(),
                subgraph: s.subgraph_index,
                inputs: maps(&s.inputs),
                outputs: maps(&s.outputs),
            }
        })
        .collect();
    Inspection {
        file_size,
        schema_version: model.version,
        description: model.description.clone(),
        subgraphs: subgraphs
            .iter()
            .enumerate()
            .map(|(index, s)| SubgraphInfo {
                index,
                name: s.name.clone(),
                tensors: s.tensors.as_ref().map_or(0, Vec::len),
                ops: s.operators.as_ref().map_or(0, Vec::len),
            })
            .collect(),
        inputs,
        outputs,
        op_histogram,
        parameters,
        parameters_by_type,
        constant_bytes,
        signatures,
        metadata,
        min_runtime_version,
        ops,
        warnings: graph.warnings.clone(),
    }
}

/// Reads the model at `path` and inspects it; the error names the path and says why it cannot be read.
pub fn inspect_file(path: &Path) -> Result<Inspection, ModelFileError> {
    let graph = Graph::from_file(path)?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or_default();
    Ok(inspect(&graph, size))
}

/// Element type names as in numpy (`float32`), which is how users and LiteRT's Python API spell them.
fn dtype(t: fb::TensorType) -> String {
    tflite::type_name(t).to_lowercase()
}

/// Short element type names for the histogram (`f32`, `i8`).
fn short_dtype(t: fb::TensorType) -> String {
    use fb::TensorType as T;
    let s = match t {
        T::FLOAT32 => "f32",
        T::FLOAT16 => "f16",
        T::FLOAT64 => "f64",
        T::INT8 => "i8",
        T::UINT8 => "u8",
        T::INT16 => "i16",
        T::UINT16 => "u16",
        T::INT32 => "i32",
        T::UINT32 => "u32",
        T::INT64 => "i64",
        T::UINT64 => "u64",
        T::INT4 => "i4",
        T::BOOL => "bool",
        T::STRING => "str",
        _ => return dtype(t),
    };
    s.to_string()
}

fn tensor_info(index: usize, t: &fb::TensorT) -> TensorInfo {
    let q = t.quantization.as_deref();
    TensorInfo {
        tensor: index,
        name: t.name.clone().unwrap_or_default(),
        shape: t
            .shape_signature
            .clone()
            .or_else(|| t.shape.clone())
            .unwrap_or_default(),
        dtype: dtype(t.type_),
        scale: q.and_then(|q| q.scale.clone()).unwrap_or_default(),
        zero_point: q.and_then(|q| q.zero_point.clone()).unwrap_or_default(),
        quantized_dimension: q.map_or(0, |q| q.quantized_dimension),
    }
}

fn is_constant(t: &fb::TensorT, buffers: &[fb::BufferT]) -> bool {
    t.buffer != 0
        && buffers
            .get(t.buffer as usize)
            .and_then(|b| b.data.as_ref())
            .is_some_and(|d| !d.is_empty())
}

fn op_info(
    subgraph: usize,
    index: usize,
    op: &fb::OperatorT,
    tensors: &[fb::TensorT],
    codes: &[fb::OperatorCodeT],
    buffers: &[fb::BufferT],
) -> OpInfo {
    let entry = codes.get(op.opcode_index as usize);
    let code = entry.map_or(fb::BuiltinOperator::CUSTOM, tflite::op_code);
    let name = if code == fb::BuiltinOperator::CUSTOM {
        format!(
            "CUSTOM({})",
            entry.and_then(|e| e.custom_code.as_deref()).unwrap_or("?")
        )
    } else {
        tflite::op_name(code)
    };
    let tensor = |t: i32| usize::try_from(t).ok().and_then(|t| tensors.get(t));
    let op_inputs = op.inputs.as_deref().unwrap_or(&[]);
    let op_outputs = op.outputs.as_deref().unwrap_or(&[]);
    let input_types = op_inputs
        .iter()
        .map(|&t| tensor(t).map_or("-".to_string(), |t| short_dtype(t.type_)))
        .collect();
    let output_types = op_outputs
        .iter()
        .map(|&t| tensor(t).map_or("-".to_string(), |t| short_dtype(t.type_)))
        .collect();
    let outputs = op_outputs
        .iter()
        .map(|&t| tensor(t).and_then(|t| t.name.clone()).unwrap_or_default())
        .collect();
    // Weights stored as float16 behind DEQUANTIZE are folded to float32 before quantizing, so they count.
    let float_constant = |t: &fb::TensorT| {
        matches!(t.type_, fb::TensorType::FLOAT32 | fb::TensorType::FLOAT16)
            && is_constant(t, buffers)
    };
    let has_float_weights = op_inputs
        .iter()
        .filter_map(|&t| tensor(t))
        .any(float_constant);
    let modes: Vec<Mode> = if code != fb::BuiltinOperator::CUSTOM {
        supported_modes(code)
            .into_iter()
            .filter(|m| !matches!(m, Mode::Dynamic | Mode::Float16) || has_float_weights)
            .collect()
    } else {
        Vec::new()
    };
    let def = crate::ops::table().get(code);
    let float_reasons = [Mode::Dynamic, Mode::Int8, Mode::Int16x8]
        .into_iter()
        .filter(|m| !modes.contains(m))
        .filter(|&m| m != Mode::Dynamic || has_float_weights)
        .map(|m| {
            let why = match (code, def) {
                (fb::BuiltinOperator::CUSTOM, _) => {
                    "a custom op: kept as is (passed through with SELECT_TF_OPS)"
                }
                (_, None) => "litequant does not know this op",
                (_, Some(d)) => d.reason_float(m).unwrap_or("-"),
            };
            (m, why.to_string())
        })
        .collect();
    OpInfo {
        subgraph,
        index,
        op: name,
        version: entry.map_or(0, |e| e.version),
        input_types,
        output_types,
        outputs,
        modes,
        float_reasons,
    }
}

fn count_parameters(
    subgraphs: &[fb::SubGraphT],
    buffers: &[fb::BufferT],
) -> (u64, BTreeMap<String, u64>, u64) {
    let mut seen = BTreeSet::new();
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut bytes = 0u64;
    for t in subgraphs.iter().flat_map(|s| s.tensors.iter().flatten()) {
        if !is_constant(t, buffers) || !seen.insert(t.buffer) {
            continue;
        }
        let elements: u64 = t
            .shape
            .iter()
            .flatten()
            .map(|&d| u64::try_from(d).unwrap_or(0))
            .product();
        *by_type.entry(dtype(t.type_)).or_default() += elements;
        bytes += buffers
            .get(t.buffer as usize)
            .and_then(|b| b.data.as_ref())
            .map_or(0, |d| d.len() as u64);
    }
    (by_type.values().sum(), by_type, bytes)
}

fn printable(data: &[u8]) -> Option<String> {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let text = std::str::from_utf8(&data[..end]).ok()?;
    (!text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() || c == '\n' || c == '\t'))
    .then(|| text.to_string())
}

/// Writes rows as columns padded to the widest cell, each line indented by two spaces.
fn table(f: &mut fmt::Formatter<'_>, rows: &[Vec<String>]) -> fmt::Result {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::from(" ");
        for (c, cell) in row.iter().enumerate() {
            line.push(' ');
            line.push_str(cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count()));
            }
        }
        writeln!(f, "{}", line.trim_end())?;
    }
    Ok(())
}

fn shape_text(shape: &[i32]) -> String {
    format!(
        "[{}]",
        shape
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn quant_text(t: &TensorInfo) -> String {
    match t.scale.as_slice() {
        [] => String::new(),
        [scale] => format!(
            "scale {scale} zero_point {}",
            t.zero_point.first().copied().unwrap_or(0)
        ),
        scales => format!("{} scales on axis {}", scales.len(), t.quantized_dimension),
    }
}

fn modes_text(modes: &[Mode]) -> String {
    if modes.is_empty() {
        return "-".to_string();
    }
    modes
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n_ops: usize = self.subgraphs.iter().map(|s| s.ops).sum();
        let by_type: Vec<String> = self
            .parameters_by_type
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        writeln!(
            f,
            "{} bytes, schema v{}, {} subgraph(s), {n_ops} ops, {} parameters ({}), {} bytes of constants",
            self.file_size,
            self.schema_version,
            self.subgraphs.len(),
            self.parameters,
            if by_type.is_empty() { "none".to_string() } else { by_type.join(", ") },
            self.constant_bytes
        )?;
        if let Some(d) = &self.description {
            writeln!(f, "description: {d}")?;
        }
        writeln!(
            f,
            "min_runtime_version: {}",
            self.min_runtime_version.as_deref().unwrap_or("-")
        )?;
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        for (title, list) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            writeln!(f, "\n{title}")?;
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|t| {
                    vec![
                        format!("#{}", t.tensor),
                        t.name.clone(),
                        shape_text(&t.shape),
                        t.dtype.clone(),
                        quant_text(t),
                    ]
                })
                .collect();
            table(f, &rows)?;
        }
        writeln!(f, "\nop histogram")?;
        let mut rows = vec![vec![
            "count".into(),
            "op".into(),
            "version".into(),
            "types".into(),
        ]];
        rows.extend(self.op_histogram.iter().map(|h| {
            vec![
                h.count.to_string(),
                h.op.clone(),
                format!("v{}", h.version),
                h.types.clone(),
            ]
        }));
        table(f, &rows)?;
        if self.subgraphs.len() > 1 {
            writeln!(f, "\nsubgraphs")?;
            let rows: Vec<Vec<String>> = self
                .subgraphs
                .iter()
                .map(|s| {
                    vec![
                        s.index.to_string(),
                        s.name.clone().unwrap_or_else(|| "-".into()),
                        format!("{} tensors", s.tensors),
                        format!("{} ops", s.ops),
                    ]
                })
                .collect();
            table(f, &rows)?;
        }
        writeln!(f, "\nsignatures")?;
        let rows: Vec<Vec<String>> = self
            .signatures
            .iter()
            .map(|s| {
                let maps = |m: &[(String, u32)]| {
                    m.iter()
                        .map(|(n, t)| format!("{n}=#{t}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                vec![
                    s.key.clone(),
                    format!("subgraph {}", s.subgraph),
                    format!("in {}", maps(&s.inputs)),
                    format!("out {}", maps(&s.outputs)),
                ]
            })
            .collect();
        if rows.is_empty() {
            writeln!(f, "  (none)")?;
        }
        table(f, &rows)?;
        writeln!(f, "\nmetadata")?;
        let rows: Vec<Vec<String>> = self
            .metadata
            .iter()
            .map(|m| {
                vec![
                    m.name.clone(),
                    format!("{} bytes", m.size),
                    m.text.as_ref().map_or(String::new(), |t| format!("{t:?}")),
                ]
            })
            .collect();
        if rows.is_empty() {
            writeln!(f, "  (none)")?;
        }
        table(f, &rows)?;
        writeln!(f, "\nops")?;
        let multi = self.subgraphs.len() > 1;
        let mut rows = vec![vec![
            "#".into(),
            "op".into(),
            "version".into(),
            "modes".into(),
            "outputs".into(),
        ]];
        rows.extend(self.ops.iter().map(|o| {
            let index = if multi {
                format!("{}:{}", o.subgraph, o.index)
            } else {
                o.index.to_string()
            };
            vec![
                index,
                o.op.clone(),
                format!("v{}", o.version),
                modes_text(&o.modes),
                o.outputs.join(" | "),
            ]
        }));
        table(f, &rows)?;
        // Each op type's reasons once: what a user reads to know why a mode leaves ops float.
        let mut reasons: BTreeMap<(&str, String), &str> = BTreeMap::new();
        for o in &self.ops {
            for (m, why) in &o.float_reasons {
                reasons.entry((o.op.as_str(), m.to_string())).or_insert(why);
            }
        }
        if !reasons.is_empty() {
            writeln!(f, "\nwhy ops stay float")?;
            let rows: Vec<Vec<String>> = reasons
                .into_iter()
                .map(|((op, mode), why)| vec![op.to_string(), mode, why.to_string()])
                .collect();
            table(f, &rows)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_modes_follow_the_op_table() {
        use fb::BuiltinOperator as B;
        assert_eq!(
            supported_modes(B::FULLY_CONNECTED),
            vec![Mode::Dynamic, Mode::Float16, Mode::Int8, Mode::Int16x8]
        );
        assert_eq!(
            supported_modes(B::SOFTMAX),
            vec![Mode::Float16, Mode::Int8, Mode::Int16x8]
        );
        assert_eq!(
            supported_modes(B::HARD_SWISH),
            vec![Mode::Float16, Mode::Int8]
        );
        // SVDF has hybrid weights but no integer rule in litequant: inspect does not promise int8.
        assert_eq!(supported_modes(B::SVDF), vec![Mode::Dynamic, Mode::Float16]);
        assert_eq!(
            supported_modes(B::EMBEDDING_LOOKUP),
            vec![Mode::Dynamic, Mode::Float16]
        );
        assert_eq!(supported_modes(B::CUMSUM), vec![Mode::Float16]);
    }

    #[test]
    fn metadata_text_drops_trailing_nuls_and_refuses_binary() {
        assert_eq!(
            printable(b"1.14.0\0\0\0\0\0\0\0\0\0\0"),
            Some("1.14.0".to_string())
        );
        assert_eq!(printable(&[0x1c, 0, 0, 0, 0x54]), None);
        assert_eq!(printable(&[0, 0]), None);
    }
}
