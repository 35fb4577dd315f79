//! Sliding-window geometry shared by convolutions and pooling: output size and leading padding per axis.

use crate::calibrate::KernelError;
use crate::tflite::fb;

/// Where a window of one spatial axis starts and how many positions it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    /// Output positions along the axis.
    pub out: usize,
    /// Padding before the first input element (the window of output 0 starts at `-pad`).
    pub pad: usize,
    /// Step between consecutive windows.
    pub stride: usize,
    /// Step between taps of one window.
    pub dilation: usize,
    /// Taps per window.
    pub taps: usize,
}

impl Window {
    /// TFLite's geometry: SAME gives `ceil(in / stride)` outputs, VALID `floor((in - extent) / stride) + 1`;
    /// padding is half the total needed, the odd element going after.
    pub fn new(
        padding: fb::Padding,
        input: usize,
        taps: usize,
        stride: i32,
        dilation: i32,
    ) -> Result<Window, KernelError> {
        let stride = positive(stride, "stride")?;
        let dilation = positive(dilation, "dilation factor")?;
        if taps == 0 {
            return Err(KernelError::Invalid("window of size 0".into()));
        }
        let extent = (taps - 1) * dilation + 1;
        let out = match padding {
            fb::Padding::SAME => input.div_ceil(stride),
            fb::Padding::VALID => (input + stride).saturating_sub(extent) / stride,
            other => return Err(KernelError::Invalid(format!("unknown padding {}", other.0))),
        };
        let needed = (out.max(1) - 1) * stride + extent;
        let pad = needed.saturating_sub(input) / 2;
        Ok(Window {
            out,
            pad,
            stride,
            dilation,
            taps,
        })
    }

    /// Input index of tap `k` of output `o`, if it falls inside the input of length `input`.
    #[inline]
    pub fn tap(&self, o: usize, k: usize, input: usize) -> Option<usize> {
        (o * self.stride + k * self.dilation)
            .checked_sub(self.pad)
            .filter(|&i| i < input)
    }
}

fn positive(v: i32, what: &str) -> Result<usize, KernelError> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| KernelError::Invalid(format!("{what} {v} must be positive")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_with_stride_two_pads_the_odd_cell_after() {
        // in 5, filter 3, stride 2: 3 outputs, needs (3-1)*2+3 = 7 -> 2 padding, 1 before and 1 after.
        let w = Window::new(fb::Padding::SAME, 5, 3, 2, 1).unwrap();
        assert_eq!((w.out, w.pad), (3, 1));
        // in 6, filter 3, stride 2: 3 outputs, needs 7 -> 1 padding, 0 before.
        let w = Window::new(fb::Padding::SAME, 6, 3, 2, 1).unwrap();
        assert_eq!((w.out, w.pad), (3, 0));
        assert_eq!(w.tap(2, 2, 6), None);
    }

    #[test]
    fn valid_padding_counts_dilated_extent() {
        // filter 3 with dilation 2 spans 5 cells: in 7 gives 3 outputs.
        let w = Window::new(fb::Padding::VALID, 7, 3, 1, 2).unwrap();
        assert_eq!((w.out, w.pad), (3, 0));
        assert_eq!(w.tap(2, 2, 7), Some(6));
    }

    #[test]
    fn zero_stride_is_an_error() {
        assert!(Window::new(fb::Padding::SAME, 4, 2, 0, 1).is_err());
    }
}
