//! LiteRT's lookup tables in float (`LUTPopulate<int8_t>`, `LUTPopulate<int16_t>` with a float transform,
//! `LUTLookup`), shared by the elementwise ops that quantize through a table (GELU, EXP, LOG, int16 RSQRT).

use super::{from_codes, type_range, OpCtx};
use crate::interp::tensor::{Tensor, TensorData};
use crate::tflite::fb;

/// A lookup table of an op, populated once per interpreter (its quantization does not change).
enum Table {
    /// int8 / uint8: the output code of each input code, indexed by `code - qmin`.
    Bits8 { qmin: i32, codes: Vec<i32> },
    /// int16: LiteRT's 513 interpolation points.
    Int16(Vec<i16>),
}

/// An elementwise op through LiteRT's table of `f` from the input's params to the output's: one entry per
/// code for int8 / uint8, the interpolated 513-entry table for int16.
pub(crate) fn through_table(
    ctx: &OpCtx<'_>,
    f: impl Fn(f32) -> f32,
) -> Result<Vec<Tensor>, String> {
    let input = ctx.input(0)?;
    let out_type = ctx.output_type(0)?;
    if input.tensor_type() != out_type {
        return Err("the input and output types differ".into());
    }
    let table = ctx.prepared(&[], || {
        let (iq, oq) = (ctx.input_quant(0)?, ctx.output_quant(0)?);
        let (input, output) = (
            (iq.scale0(), iq.zero_point0()),
            (oq.scale0(), oq.zero_point0()),
        );
        Ok(if out_type == fb::TensorType::INT16 {
            Table::Int16(populate_int16(input, output, f))
        } else {
            let (qmin, qmax) = type_range(out_type)?;
            let codes = populate_8bit(input, output, (qmin, qmax), f);
            Table::Bits8 { qmin, codes }
        })
    })?;
    let data = match (&*table, &input.data) {
        // The common case without widening the codes (the same table entries).
        (Table::Bits8 { qmin, codes }, TensorData::I8(x)) => TensorData::I8(
            x.iter()
                .map(|&v| codes[(i32::from(v) - qmin) as usize] as i8)
                .collect(),
        ),
        (Table::Bits8 { qmin, codes }, _) => {
            let last = codes.len() as i32 - 1;
            let out = super::codes(input)?
                .into_iter()
                .map(|v| codes[(v - qmin).clamp(0, last) as usize])
                .collect();
            return Ok(vec![from_codes(input.shape.clone(), out_type, out)?]);
        }
        (Table::Int16(lut), _) => {
            let out = super::codes(input)?
                .into_iter()
                .map(|v| i32::from(lookup_int16(v as i16, lut)))
                .collect();
            return Ok(vec![from_codes(input.shape.clone(), out_type, out)?]);
        }
    };
    Ok(vec![Tensor::new(input.shape.clone(), data)?])
}

/// `LUTPopulateInt8`: every input code of `[qmin, qmax]` through `f`, rounded onto the output grid and
/// clamped; indexed by `code - qmin`.
pub(crate) fn populate_8bit(
    input: (f32, i32),
    output: (f32, i32),
    (qmin, qmax): (i32, i32),
    f: impl Fn(f32) -> f32,
) -> Vec<i32> {
    let inverse_scale = 1.0f32 / output.0;
    (qmin..=qmax)
        .map(|v| {
            let dequantized = input.0 * (v - input.1) as f32;
            let rescaled = (f(dequantized) * inverse_scale).round();
            // `static_cast<int32_t>(rescaled + zero_point)`: float sum, truncation, saturating like the
            // float-to-int conversion of the targets LiteRT ships for.
            ((rescaled + output.1 as f32) as i32).clamp(qmin, qmax)
        })
        .collect()
}

/// `LUTPopulateInt16<float>`: 512 interpolation steps over the input range plus the end point, each
/// corrected by half the midpoint error, all in float.
pub(crate) fn populate_int16(
    input: (f32, i32),
    output: (f32, i32),
    f: impl Fn(f32) -> f32,
) -> Vec<i16> {
    let (min16, max16) = (i32::from(i16::MIN), i32::from(i16::MAX));
    let input_min = input.0 * (min16 - input.1) as f32;
    let input_max = input.0 * (max16 - input.1) as f32;
    let output_min = output.0 * (min16 - output.1) as f32;
    let output_max = output.0 * (max16 - output.1) as f32;
    const STEPS: i32 = 512;
    let step = (input_max - input_min) / STEPS as f32;
    let half_step = step / 2.0;
    let scaling_inv = 65536.0f32 / (output_max - output_min);
    let (table_min, table_max) = (f32::from(i16::MIN), f32::from(i16::MAX));
    let mut lut = Vec::with_capacity(513);
    for i in 0..STEPS {
        let val = f(input_min + i as f32 * step);
        let val_mid = f(input_min + i as f32 * step + half_step);
        let val_next = f(input_min + (i + 1) as f32 * step);
        let sample = (val * scaling_inv).round();
        let midpoint_interp =
            ((val_next * scaling_inv + (val * scaling_inv).round()) / 2.0).round();
        let midpoint = (val_mid * scaling_inv).round();
        let bias = ((midpoint_interp - midpoint) / 2.0).round();
        lut.push((sample - bias).clamp(table_min, table_max) as i16);
    }
    lut.push(
        (f(input_max) * scaling_inv)
            .round()
            .clamp(table_min, table_max) as i16,
    );
    lut
}

/// `LUTLookup(int16_t, const int16_t*)`: 9 bits of index, 7 of linear interpolation, int16 arithmetic as
/// the C++ narrows it.
pub(crate) fn lookup_int16(value: i16, lut: &[i16]) -> i16 {
    let index = (256 + (i32::from(value) >> 7)) as usize;
    let offset = i32::from(value & 0x7f);
    let base = lut[index];
    let slope = i32::from(lut[index + 1].wrapping_sub(base));
    let delta = (slope * offset + 64) >> 7;
    (i32::from(base) + delta) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_table_of_the_identity_is_the_identity() {
        let lut = populate_8bit((0.5, 3), (0.5, 3), (-128, 127), |x| x);
        assert_eq!(lut, (-128..=127).collect::<Vec<_>>());
    }

    #[test]
    fn int16_table_of_the_identity_interpolates_exactly() {
        let q = (1.0 / 32768.0, 0);
        let lut = populate_int16(q, q, |x| x);
        for v in [-32768i32, -1000, -1, 0, 1, 77, 32000, 32767] {
            let got = i32::from(lookup_int16(v as i16, &lut));
            assert!((got - v).abs() <= 1, "{v} -> {got}");
        }
    }
}
