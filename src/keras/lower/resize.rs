//! UpSampling2D as TF writes it: `nearest` repeats each spatial axis (RESHAPE to insert an axis, TILE along it,
//! RESHAPE back); `bilinear` is RESIZE_BILINEAR with half-pixel centers.

use serde::Deserialize;

use super::conv::ints;
use super::{channels_last, Lowering, Value};
use crate::keras::config::LayerCall;
use crate::keras::error::KerasErrorKind;
use crate::tflite::fb;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpSamplingOptions {
    #[serde(deserialize_with = "ints")]
    size: Vec<usize>,
    data_format: Option<String>,
    #[serde(default = "nearest")]
    interpolation: String,
}

fn nearest() -> String {
    "nearest".into()
}

impl Lowering<'_> {
    /// UpSampling2D, `nearest` or `bilinear`.
    pub(super) fn upsampling(&mut self, call: &LayerCall) -> Result<Value, KerasErrorKind> {
        let o: UpSamplingOptions = call.options()?;
        channels_last(call, o.data_format.as_deref())?;
        let size = match o.size.as_slice() {
            [s] => [*s, *s],
            [h, w] => [*h, *w],
            _ => {
                return Err(KerasErrorKind::unsupported(
                    &call.name,
                    &call.class,
                    format!("size {:?}", o.size),
                ))
            }
        };
        let v = self.rank_input(call, 4)?;
        let mut shape = v.shape.clone();
        shape[1] *= size[0];
        shape[2] *= size[1];
        let out = match o.interpolation.as_str() {
            "nearest" => self.repeat_nearest(call, &v, size),
            "bilinear" => self.resize_bilinear(call, &v, &shape),
            other => {
                return Err(KerasErrorKind::unsupported(
                    &call.name,
                    &call.class,
                    format!("interpolation = \"{other}\" (only \"nearest\" and \"bilinear\")"),
                ))
            }
        };
        Ok(Value {
            tensor: out,
            shape,
            ..v
        })
    }

    /// `nearest`: per spatial axis with a factor above 1, RESHAPE to insert a unit axis after it and TILE that
    /// axis; one final RESHAPE merges the repeats (TF writes nothing for a factor of 1).
    fn repeat_nearest(
        &mut self,
        call: &LayerCall,
        v: &Value,
        size: [usize; 2],
    ) -> crate::graph::TensorId {
        let mut tensor = v.tensor;
        let mut shape = v.shape.clone();
        let mut tiled = false;
        for (i, &s) in size.iter().enumerate() {
            if s == 1 {
                continue;
            }
            let axis = i + 1;
            let repeat = if i == 0 { "Repeat" } else { "Repeat_1" };
            let mut expanded = shape.clone();
            expanded.insert(axis + 1, 1);
            tensor = self.reshape_tensor(call, tensor, &expanded, &format!("{repeat}/ExpandDims"));
            let mut multiples = vec![1usize; 5];
            multiples[axis + 1] = s;
            let m = self.b.constant_i32(
                &format!("{}/{repeat}/Tile/multiples", call.name),
                &[5],
                &super::builder::dims(&multiples),
            );
            expanded[axis + 1] = s;
            tensor = self.emit(
                call,
                fb::BuiltinOperator::TILE,
                &format!("{repeat}/Tile"),
                &[tensor, m],
                &expanded,
                fb::BuiltinOptionsT::NONE,
            );
            shape[axis] *= s;
            tiled = true;
        }
        if tiled {
            tensor = self.reshape_tensor(call, tensor, &shape, "Reshape_1");
        }
        tensor
    }

    /// A RESHAPE of `tensor` to `shape`, named `what` under the layer.
    pub(super) fn reshape_tensor(
        &mut self,
        call: &LayerCall,
        tensor: crate::graph::TensorId,
        shape: &[usize],
        what: &str,
    ) -> crate::graph::TensorId {
        let target = self.b.constant_i32(
            &format!("{}/{what}/shape", call.name),
            &[shape.len()],
            &super::builder::dims(shape),
        );
        self.emit(
            call,
            fb::BuiltinOperator::RESHAPE,
            what,
            &[tensor, target],
            shape,
            fb::BuiltinOptionsT::NONE,
        )
    }

    /// `bilinear`: RESIZE_BILINEAR to the output size, half-pixel centers (version 3).
    fn resize_bilinear(
        &mut self,
        call: &LayerCall,
        v: &Value,
        shape: &[usize],
    ) -> crate::graph::TensorId {
        let size = self.b.constant_i32(
            &format!("{}/resize/size", call.name),
            &[2],
            &super::builder::dims(&shape[1..3]),
        );
        let out = self.out(call, "resize", shape);
        let options = fb::ResizeBilinearOptionsT {
            align_corners: false,
            half_pixel_centers: true,
            ..Default::default()
        };
        self.b.op(
            fb::BuiltinOperator::RESIZE_BILINEAR,
            3,
            &[Some(v.tensor), Some(size)],
            &[out],
            fb::BuiltinOptionsT::ResizeBilinearOptions(Box::new(options)),
        );
        out
    }
}
