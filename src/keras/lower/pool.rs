//! Pooling: Max/AveragePooling 1D/2D (MAX_POOL_2D, AVERAGE_POOL_2D; 1-D as height 1) and their Global forms
//! (MEAN, REDUCE_MAX over the spatial axes).

use serde::Deserialize;

use super::conv::ints;
use super::{channels_last, padding, window_out, Lowering, Value};
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::tflite::fb;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolOptions {
    #[serde(deserialize_with = "ints")]
    pool_size: Vec<usize>,
    #[serde(default, deserialize_with = "opt_ints")]
    strides: Option<Vec<usize>>,
    padding: String,
    data_format: Option<String>,
}

fn opt_ints<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<usize>>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "ints")] Vec<usize>);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlobalPoolOptions {
    data_format: Option<String>,
    #[serde(default)]
    keepdims: bool,
}

impl Lowering<'_> {
    /// MaxPooling1D/2D and AveragePooling1D/2D.
    pub(super) fn pool(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: PoolOptions = call.options()?;
        channels_last(call, o.data_format.as_deref())?;
        let pad = padding(call, &o.padding)?;
        let one_d = call.class.ends_with("1D");
        let input = self.inputs(call, 1)?.remove(0);
        let input = if one_d {
            self.expanded(input, &call.name)
        } else {
            input
        };
        let tfl = input.tfl_shape();
        if tfl.len() != 4 {
            return Err(KerasErrorKind::graph(
                &call.name,
                format!("input of shape {:?}", input.shape),
            ));
        }
        let spatial = |v: &[usize]| -> [usize; 2] {
            match (one_d, v) {
                (true, [w, ..]) => [1, *w],
                (false, [s]) => [*s, *s],
                (false, [h, w, ..]) => [*h, *w],
                _ => [1, 1],
            }
        };
        let size = spatial(&o.pool_size);
        let strides = o.strides.as_deref().map_or(size, spatial);
        let out_hw = [0, 1].map(|a| window_out(tfl[a + 1], size[a], strides[a], 1, pad));
        let out_tfl = [1, out_hw[0], out_hw[1], tfl[3]];
        let (code, what) = if call.class.starts_with("Max") {
            (fb::BuiltinOperator::MAX_POOL_2D, "MaxPool")
        } else {
            (fb::BuiltinOperator::AVERAGE_POOL_2D, "AvgPool")
        };
        let out = self.out(call, what, &out_tfl);
        let options = fb::Pool2DOptionsT {
            padding: pad,
            stride_w: strides[1] as i32,
            stride_h: strides[0] as i32,
            filter_width: size[1] as i32,
            filter_height: size[0] as i32,
            ..Default::default()
        };
        self.b.op(
            code,
            1,
            &[Some(input.tensor)],
            &[out],
            fb::BuiltinOptionsT::Pool2DOptions(Box::new(options)),
        );
        let shape = if one_d {
            vec![1, out_hw[1], tfl[3]]
        } else {
            out_tfl.to_vec()
        };
        Ok(Value {
            tensor: out,
            shape,
            expanded: one_d,
            pad: None,
        })
    }

    /// GlobalAverage/MaxPooling 1D/2D: MEAN or REDUCE_MAX over the spatial axes.
    pub(super) fn global_pool(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: GlobalPoolOptions = call.options()?;
        channels_last(call, o.data_format.as_deref())?;
        let input = self.inputs(call, 1)?.remove(0);
        let input = self.plain(input, &call.name);
        let rank = input.shape.len();
        if rank < 3 {
            return Err(KerasErrorKind::graph(
                &call.name,
                format!("input of shape {:?}", input.shape),
            ));
        }
        let axes: Vec<i32> = (1..rank as i32 - 1).collect();
        // One axis is a scalar constant in TF's output, several a vector.
        let axes_shape: &[usize] = if axes.len() == 1 { &[] } else { &[axes.len()] };
        let axes_t = self.b.constant_i32(
            &format!("{}/reduction_indices", call.name),
            axes_shape,
            &axes,
        );
        let channels = input.shape[rank - 1];
        let shape = if o.keepdims {
            let mut s = vec![1; rank];
            s[rank - 1] = channels;
            s
        } else {
            vec![1, channels]
        };
        let (code, what) = if call.class.contains("Max") {
            (fb::BuiltinOperator::REDUCE_MAX, "Max")
        } else {
            (fb::BuiltinOperator::MEAN, "Mean")
        };
        let out = self.out(call, what, &shape);
        let options = fb::ReducerOptionsT {
            keep_dims: o.keepdims,
        };
        self.b.op(
            code,
            1,
            &[Some(input.tensor), Some(axes_t)],
            &[out],
            fb::BuiltinOptionsT::ReducerOptions(Box::new(options)),
        );
        Ok(Value {
            tensor: out,
            shape,
            expanded: false,
            pad: None,
        })
    }
}
