//! Model metadata TF's converter writes for a quantization mode.
//!
//! * `CONVERSION_METADATA`: a nested flatbuffer (`conversion_metadata.fbs`) whose
//!   `options.model_optimization_modes` the interpreter reads for telemetry. The source's environment
//!   (converter version, model hash) and flags are kept; the mode is added.
//! * `reduced_precision_support`: float16 mode's `"fp16accfp32"` (fp16 weights, fp32 accumulation).
//! * `min_runtime_version` is written by [`super::versions::finalize`].

use crate::graph::Graph;
use flatbuffers::FlatBufferBuilder;

/// Metadata key of the nested conversion-metadata flatbuffer.
pub const CONVERSION_METADATA_KEY: &str = "CONVERSION_METADATA";

/// Metadata key of the reduced-precision support string.
pub const REDUCED_PRECISION_KEY: &str = "reduced_precision_support";

/// The reduced-precision value of float16 mode: fp16 inference, fp32 accumulation (no NUL, like TF).
pub const FP16_ACC_FP32: &[u8] = b"fp16accfp32";

/// `ModelOptimizationMode` values of `conversion_metadata.fbs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum OptimizationMode {
    /// Post-training float16 quantization.
    PtqFloat16 = 1001,
    /// Post-training dynamic-range quantization.
    PtqDynamicRange = 1002,
    /// Post-training full-integer quantization.
    PtqFullInteger = 1003,
    /// Post-training 16x8 quantization.
    PtqInt16 = 1004,
}

/// The fields of a conversion-metadata flatbuffer this module reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversionMetadata {
    /// `Environment.tensorflow_version` of the converter that wrote the source.
    pub tensorflow_version: Option<String>,
    /// `Environment.api_version`.
    pub api_version: u32,
    /// `Environment.model_type` (`ModelType` enum value).
    pub model_type: i32,
    /// `Environment.model_hash`.
    pub model_hash: u64,
    /// Whether an `Environment` table was present.
    pub has_environment: bool,
    /// `ConversionOptions.model_optimization_modes`.
    pub optimization_modes: Vec<i32>,
    /// `ConversionOptions.allow_custom_ops`.
    pub allow_custom_ops: bool,
    /// `ConversionOptions.enable_select_tf_ops`.
    pub enable_select_tf_ops: bool,
    /// `ConversionOptions.force_select_tf_ops`.
    pub force_select_tf_ops: bool,
}

impl ConversionMetadata {
    /// Parses the nested flatbuffer; `None` if the bytes are not a readable one (then it is rewritten fresh).
    pub fn parse(bytes: &[u8]) -> Option<ConversionMetadata> {
        let r = Reader { b: bytes };
        let root = r.u32(0)? as usize;
        r.vtable(root)?;
        let mut out = ConversionMetadata::default();
        if let Some(env) = r.table_field(root, 0) {
            out.has_environment = true;
            out.tensorflow_version = r.string_field(env, 0);
            out.api_version = r.scalar_field(env, 1, 4).map_or(Some(0), |p| r.u32(p))?;
            out.model_type = r
                .scalar_field(env, 2, 4)
                .map_or(Some(0), |p| r.u32(p).map(|v| v as i32))?;
            out.model_hash = r.scalar_field(env, 3, 8).map_or(Some(0), |p| r.u64(p))?;
        }
        if let Some(opts) = r.table_field(root, 1) {
            if let Some(v) = r.indirect_field(opts, 0) {
                let n = r.u32(v)? as usize;
                out.optimization_modes = (0..n)
                    .map(|i| r.u32(v + 4 + 4 * i).map(|x| x as i32))
                    .collect::<Option<Vec<_>>>()?;
            }
            let flag = |f| {
                r.scalar_field(opts, f, 1)
                    .and_then(|p| r.b.get(p))
                    .is_some_and(|&x| x != 0)
            };
            out.allow_custom_ops = flag(1);
            out.enable_select_tf_ops = flag(2);
            out.force_select_tf_ops = flag(3);
        }
        Some(out)
    }

    /// Serializes the metadata as a `ConversionMetadata` flatbuffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut fbb = FlatBufferBuilder::with_capacity(128);
        let env = self.has_environment.then(|| {
            let version = self
                .tensorflow_version
                .as_deref()
                .map(|v| fbb.create_string(v));
            let start = fbb.start_table();
            if let Some(v) = version {
                fbb.push_slot_always(field(0), v);
            }
            fbb.push_slot::<u32>(field(1), self.api_version, 0);
            fbb.push_slot::<i32>(field(2), self.model_type, 0);
            fbb.push_slot::<u64>(field(3), self.model_hash, 0);
            fbb.end_table(start)
        });
        let modes = fbb.create_vector(&self.optimization_modes);
        let start = fbb.start_table();
        fbb.push_slot_always(field(0), modes);
        fbb.push_slot::<bool>(field(1), self.allow_custom_ops, false);
        fbb.push_slot::<bool>(field(2), self.enable_select_tf_ops, false);
        fbb.push_slot::<bool>(field(3), self.force_select_tf_ops, false);
        let options = fbb.end_table(start);
        let start = fbb.start_table();
        if let Some(env) = env {
            fbb.push_slot_always(field(0), env);
        }
        fbb.push_slot_always(field(1), options);
        let root = fbb.end_table(start);
        fbb.finish_minimal(root);
        fbb.finished_data().to_vec()
    }
}

/// The vtable offset of field `i` of a table.
fn field(i: u16) -> flatbuffers::VOffsetT {
    4 + 2 * i
}

/// Adds `mode` to the model's `CONVERSION_METADATA`, keeping what the source recorded.
pub fn set_conversion_metadata(graph: &mut Graph, mode: OptimizationMode) {
    let existing = graph
        .metadata()
        .into_iter()
        .find(|(name, _)| name == CONVERSION_METADATA_KEY)
        .and_then(|(_, bytes)| ConversionMetadata::parse(&bytes));
    let mut meta = existing.unwrap_or_default();
    if !meta.optimization_modes.contains(&(mode as i32)) {
        meta.optimization_modes.push(mode as i32);
    }
    graph.set_metadata(CONVERSION_METADATA_KEY, meta.to_bytes());
}

/// Bounds-checked reads of a little-endian flatbuffer: every accessor returns `None` past the end.
struct Reader<'a> {
    b: &'a [u8],
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.b.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    fn u16(&self, at: usize) -> Option<u16> {
        self.bytes(at).map(u16::from_le_bytes)
    }

    fn u32(&self, at: usize) -> Option<u32> {
        self.bytes(at).map(u32::from_le_bytes)
    }

    fn u64(&self, at: usize) -> Option<u64> {
        self.bytes(at).map(u64::from_le_bytes)
    }

    /// The vtable position and size of the table at `table`.
    fn vtable(&self, table: usize) -> Option<(usize, usize)> {
        let soffset = self.u32(table)? as i32 as i64;
        let vtable = usize::try_from(table as i64 - soffset).ok()?;
        Some((vtable, usize::from(self.u16(vtable)?)))
    }

    /// Position of field `i`'s inline data in the table at `table`, if present and `size` bytes fit.
    fn scalar_field(&self, table: usize, i: usize, size: usize) -> Option<usize> {
        let (vtable, vt_size) = self.vtable(table)?;
        let slot = 4 + 2 * i;
        if slot + 2 > vt_size {
            return None;
        }
        let off = usize::from(self.u16(vtable + slot)?);
        if off == 0 {
            return None;
        }
        let at = table.checked_add(off)?;
        self.b.get(at..at.checked_add(size)?)?;
        Some(at)
    }

    /// Position of the object (table, vector, string) field `i` points to.
    fn indirect_field(&self, table: usize, i: usize) -> Option<usize> {
        let at = self.scalar_field(table, i, 4)?;
        at.checked_add(self.u32(at)? as usize)
    }

    fn table_field(&self, table: usize, i: usize) -> Option<usize> {
        self.indirect_field(table, i)
    }

    fn string_field(&self, table: usize, i: usize) -> Option<String> {
        let s = self.indirect_field(table, i)?;
        let n = self.u32(s)? as usize;
        let bytes = self.b.get(s + 4..(s + 4).checked_add(n)?)?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TF 2.21's CONVERSION_METADATA of a dynamic-range model (from the corpus' `tf/dynamic.tflite`).
    const TF_DYNAMIC: &str = "0c 00 00 00 08 00 0e 00 08 00 04 00 08 00 00 00 10 00 00 00 28 00 00 00 00 00 06 00 08 00 \
        04 00 06 00 00 00 04 00 00 00 01 00 00 00 ea 03 00 00 0c 00 18 00 14 00 10 00 0c 00 04 00 0c 00 00 00 fd 1d \
        0e 6f bb 6c b6 36 01 00 00 00 02 00 00 00 04 00 00 00 06 00 00 00 32 2e 32 31 2e 30 00 00";

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    #[test]
    fn tf_conversion_metadata_parses_to_its_fields() {
        let m = ConversionMetadata::parse(&hex(TF_DYNAMIC)).unwrap();
        assert_eq!(m.tensorflow_version.as_deref(), Some("2.21.0"));
        assert_eq!(m.api_version, 2);
        assert_eq!(m.model_type, 1);
        assert_eq!(m.model_hash, 0x36b6_6cbb_6f0e_1dfd);
        assert_eq!(
            m.optimization_modes,
            vec![OptimizationMode::PtqDynamicRange as i32]
        );
        assert!(!m.allow_custom_ops);
    }

    #[test]
    fn written_conversion_metadata_reads_back_the_same() {
        let m = ConversionMetadata {
            tensorflow_version: Some("2.21.0".into()),
            api_version: 2,
            model_type: 1,
            model_hash: 42,
            has_environment: true,
            optimization_modes: vec![1001, 1002],
            allow_custom_ops: true,
            enable_select_tf_ops: false,
            force_select_tf_ops: true,
        };
        assert_eq!(ConversionMetadata::parse(&m.to_bytes()), Some(m));
    }

    #[test]
    fn truncated_metadata_is_rejected_without_panicking() {
        let bytes = hex(TF_DYNAMIC);
        for n in 0..bytes.len() {
            let _ = ConversionMetadata::parse(&bytes[..n]);
        }
        assert_eq!(ConversionMetadata::parse(&[0xff; 4]), None);
    }
}
