//! Empirical bias correction (`bias_correction = true`): rounding a weighted op's weights shifts its output
//! per channel by `(W[o] - Wq[o]) . E[x]`, with `E[x]` the op's mean input row in the float model over the
//! calibration data (Nagel et al., "Data-Free Quantization", empirical bias correction). Adding the shift to
//! the float bias before it is quantized removes it. The mean rows are measured, not stored: a `--locked`
//! build measures them again from the dataset the lock pins and writes the same bytes.

/// How an op's weights are laid out against its input row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[out, row]` (FULLY_CONNECTED, CONV_2D `[out, kh, kw, in]`): output `o` multiplies row position `k`
    /// by `w[o * row + k]`.
    Rows,
    /// `[1, kh, kw, in * multiplier]` (DEPTHWISE_CONV_2D): output `o` reads input channel `o / multiplier`
    /// at every tap; the row is tap-major (`tap * in + channel`).
    Depthwise {
        /// Input channels.
        channels: usize,
    },
}

/// The expected output shift of every output channel: `(W[o] - Wq[o]) . mean`, where `Wq = codes * scales[o]`
/// (one scale, or one per output channel). `None` when the sizes do not fit.
pub fn shifts(
    weights: &[f32],
    codes: &[i8],
    scales: &[f32],
    outputs: usize,
    layout: Layout,
    mean: &[f64],
) -> Option<Vec<f32>> {
    if weights.len() != codes.len()
        || outputs == 0
        || weights.len() % outputs != 0
        || (scales.len() != 1 && scales.len() != outputs)
    {
        return None;
    }
    let scale = |o: usize| {
        f64::from(if scales.len() == 1 {
            scales[0]
        } else {
            scales[o]
        })
    };
    let per_output = weights.len() / outputs;
    let mut out = Vec::with_capacity(outputs);
    for o in 0..outputs {
        let s = scale(o);
        let mut shift = 0.0f64;
        for j in 0..per_output {
            let (w, k) = match layout {
                Layout::Rows => (o * per_output + j, j),
                Layout::Depthwise { channels } => {
                    let multiplier = (outputs / channels.max(1)).max(1);
                    (j * outputs + o, j * channels + o / multiplier)
                }
            };
            let error = f64::from(weights[w]) - f64::from(codes[w]) * s;
            shift += error * mean.get(k)?;
        }
        out.push(shift as f32);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_error_times_the_mean_input_is_the_shift() {
        // Two outputs of two inputs; the codes lose 0.25 on output 0's first weight, 0.25 on output 1's second.
        let weights = [1.25, 2.0, -1.0, 0.75];
        let codes = [2, 4, -2, 1];
        let shift = shifts(&weights, &codes, &[0.5], 2, Layout::Rows, &[2.0, 4.0]).unwrap();
        assert_eq!(shift, vec![0.5, 1.0]);
    }

    #[test]
    fn per_channel_scales_dequantize_each_output() {
        let shift = shifts(&[1.0, 1.0], &[1, 4], &[0.5, 0.25], 2, Layout::Rows, &[2.0]).unwrap();
        assert_eq!(shift, vec![1.0, 0.0]);
    }

    #[test]
    fn depthwise_outputs_read_their_own_channel_at_every_tap() {
        // Two taps, two channels, multiplier 1: weights [tap0 ch0, tap0 ch1, tap1 ch0, tap1 ch1].
        let weights = [1.5, 10.0, 2.0, 20.5];
        let codes = [1, 10, 2, 20];
        let mean = [1.0, 3.0, 5.0, 7.0];
        let layout = Layout::Depthwise { channels: 2 };
        let shift = shifts(&weights, &codes, &[1.0], 2, layout, &mean).unwrap();
        assert_eq!(shift, vec![0.5, 3.5]);
    }

    #[test]
    fn sizes_that_do_not_fit_give_no_shift() {
        assert!(shifts(&[1.0, 2.0], &[1], &[1.0], 1, Layout::Rows, &[1.0]).is_none());
        assert!(shifts(&[1.0, 2.0], &[1, 2], &[1.0], 1, Layout::Rows, &[1.0]).is_none());
        assert!(shifts(&[1.0], &[1], &[1.0, 2.0], 1, Layout::Rows, &[1.0]).is_none());
    }
}
