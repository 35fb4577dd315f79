//! `model.weights.h5`: each layer's variables under `layers/<key>/vars/<i>` (Keras 3's layout), read with a
//! pure-Rust HDF5 reader.
//!
//! The key is not the layer's name: Keras addresses a layer by its class in snake case, numbered in layer order
//! (`conv2d`, `conv2d_1`, `batch_normalization`, ...), because names are generated and not reproducible.

use hdf5_reader::Hdf5File;

use super::error::KerasErrorKind;

/// A float32 array read from the weights file, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<f32>,
}

/// The opened weights file.
pub struct Weights {
    file: Hdf5File,
    /// A Keras 2 / tf_keras `.h5` model: variables by layer name under `/model_weights` (see [`super::h5`]).
    legacy: bool,
}

impl Weights {
    /// Opens the HDF5 bytes of `model.weights.h5`.
    pub fn open(bytes: Vec<u8>) -> Result<Weights, KerasErrorKind> {
        let file = Hdf5File::from_vec(bytes).map_err(|e| KerasErrorKind::Weights(e.to_string()))?;
        Ok(Weights {
            file,
            legacy: false,
        })
    }

    /// The weights of a Keras 2 `.h5` model, already opened.
    pub fn legacy(file: Hdf5File) -> Weights {
        Weights { file, legacy: true }
    }

    /// The variables of `layer` stored at `path` (`["conv2d"]`, or `["multi_head_attention", "query_dense"]`
    /// for a sublayer), in Keras' order (kernel, bias; gamma, beta, mean, variance; ...). A layer without
    /// variables has none.
    pub fn vars(&self, layer: &str, path: &[&str]) -> Result<Vec<Array>, KerasErrorKind> {
        if self.legacy {
            return super::h5::legacy_vars(&self.file, layer, path.get(1).copied());
        }
        let group_path = format!("/layers/{}/vars", path.join("/"));
        let Ok(group) = self.file.group(&group_path) else {
            return Ok(Vec::new());
        };
        let fail = |message: String| KerasErrorKind::Weight {
            layer: layer.to_string(),
            message,
        };
        let (_, names) = group
            .member_names()
            .map_err(|e| fail(format!("cannot list {group_path}: {e}")))?;
        let mut vars = Vec::with_capacity(names.len());
        for i in 0..names.len() {
            let name = i.to_string();
            if !names.contains(&name) {
                return Err(fail(format!("{group_path} has no variable `{name}`")));
            }
            let dataset = group
                .dataset(&name)
                .map_err(|e| fail(format!("{group_path}/{name}: {e}")))?;
            vars.push(read_f32(&dataset, &format!("{group_path}/{name}")).map_err(fail)?);
        }
        Ok(vars)
    }
}

/// A dataset's elements as float32, row-major; `what` names it in the error.
pub fn read_f32(dataset: &hdf5_reader::Dataset, what: &str) -> Result<Array, String> {
    let shape: Vec<usize> = dataset.shape().iter().map(|&d| d as usize).collect();
    // Integer variables (Normalization's sample count) come back as floats; nothing lowered reads them.
    let data: Vec<f32> = match dataset.read_array::<f32>() {
        Ok(a) => a.iter().copied().collect(),
        Err(e) => dataset
            .read_array::<i64>()
            .map_err(|_| format!("{what} is not a float32 array: {e}"))?
            .iter()
            .map(|&v| v as f32)
            .collect(),
    };
    Ok(Array { shape, data })
}

/// Keras' `naming.to_snake_case`: `Conv2DTranspose` -> `conv2d_transpose`, `ReLU` -> `re_lu`.
pub fn snake_case(class: &str) -> String {
    let chars: Vec<char> = class
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    // re.sub("(.)([A-Z][a-z]+)", r"\1_\2"): matches do not overlap, each runs through its lowercase letters.
    let mut first = Vec::with_capacity(chars.len() + 4);
    let mut i = 0;
    while i < chars.len() {
        let starts = chars.get(i + 1).is_some_and(char::is_ascii_uppercase)
            && chars.get(i + 2).is_some_and(char::is_ascii_lowercase);
        if starts {
            first.extend([chars[i], '_', chars[i + 1]]);
            i += 2;
            while i < chars.len() && chars[i].is_ascii_lowercase() {
                first.push(chars[i]);
                i += 1;
            }
        } else {
            first.push(chars[i]);
            i += 1;
        }
    }
    // re.sub("([a-z])([A-Z])", r"\1_\2"), then lower case.
    let mut out = String::with_capacity(first.len() + 4);
    for (j, &c) in first.iter().enumerate() {
        if j > 0 && first[j - 1].is_ascii_lowercase() && c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The weights key of each layer (by name), given the layers' (name, class) in model order.
pub fn layer_keys<'a>(
    layers: impl Iterator<Item = (&'a str, &'a str)>,
) -> std::collections::HashMap<String, String> {
    let mut used: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut keys = std::collections::HashMap::new();
    for (name, class) in layers {
        if keys.contains_key(name) {
            continue;
        }
        let base = snake_case(class);
        let key = match used.get_mut(&base) {
            Some(n) => {
                *n += 1;
                format!("{base}_{n}")
            }
            None => {
                used.insert(base.clone(), 0);
                base
            }
        };
        keys.insert(name.to_string(), key);
    }
    keys
}

/// Takes the layer's variables in order, checking each shape: `expect(&vars, layer)` style access.
pub struct VarList {
    layer: String,
    vars: std::vec::IntoIter<Array>,
}

impl VarList {
    /// The variables of `layer`.
    pub fn new(layer: &str, vars: Vec<Array>) -> VarList {
        VarList {
            layer: layer.to_string(),
            vars: vars.into_iter(),
        }
    }

    /// The next variable, which must have `shape`; `what` names it in errors ("kernel", "bias").
    pub fn next(&mut self, what: &str, shape: &[usize]) -> Result<Array, KerasErrorKind> {
        let fail = |message: String| KerasErrorKind::Weight {
            layer: self.layer.clone(),
            message,
        };
        let Some(array) = self.vars.next() else {
            return Err(fail(format!("the weights file has no {what}")));
        };
        if array.shape != shape {
            return Err(fail(format!(
                "{what} has shape {:?}, the config implies {shape:?}",
                array.shape
            )));
        }
        Ok(array)
    }

    /// Checks every variable was used (a layer with more weights than its config explains is not understood).
    pub fn finish(mut self) -> Result<(), KerasErrorKind> {
        match self.vars.next() {
            None => Ok(()),
            Some(extra) => Err(KerasErrorKind::Weight {
                layer: self.layer,
                message: format!(
                    "the weights file has an unexpected extra variable of shape {:?}",
                    extra.shape
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_matches_keras_naming() {
        for (class, key) in [
            ("Dense", "dense"),
            ("Conv2D", "conv2d"),
            ("Conv2DTranspose", "conv2d_transpose"),
            ("DepthwiseConv2D", "depthwise_conv2d"),
            ("BatchNormalization", "batch_normalization"),
            ("MultiHeadAttention", "multi_head_attention"),
            ("ReLU", "re_lu"),
            ("GlobalAveragePooling1D", "global_average_pooling1d"),
        ] {
            assert_eq!(snake_case(class), key, "{class}");
        }
    }

    #[test]
    fn weight_keys_number_each_class_in_layer_order_not_by_name() {
        let layers = [
            ("x", "InputLayer"),
            ("dense_1", "Dense"),
            ("bn", "BatchNormalization"),
            ("dense", "Dense"),
            ("dense_1", "Dense"), // a shared layer's second call
        ];
        let keys = layer_keys(layers.iter().copied());
        assert_eq!(keys["dense_1"], "dense");
        assert_eq!(keys["dense"], "dense_1");
        assert_eq!(keys["bn"], "batch_normalization");
        assert_eq!(keys.len(), 4);
    }
}
