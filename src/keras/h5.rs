//! Keras 2 / tf_keras `.h5` models: the `model_config` attribute (the layer graph as JSON) and the
//! `model_weights` group (one group per layer, named after it, listing its variables in a `weight_names`
//! attribute), read with the same pure-Rust HDF5 reader as `.keras` weights.
//!
//! The config is brought to Keras 3's layout ([`modernize`]: nested-list `inbound_nodes` become
//! `__keras_tensor__` arguments, a first layer's `batch_input_shape` the model's build shape) and parsed by the
//! `.keras` parser, so both formats share one lowering.

use hdf5_reader::group::Group;
use hdf5_reader::{Attribute, Hdf5File};
use serde_json::{json, Map, Value};

use super::config::{self, ModelConfig};
use super::error::KerasErrorKind;
use super::weights::{read_f32, Array, Weights};

/// The group holding the layers' weights.
const WEIGHTS_ROOT: &str = "/model_weights";

/// Reads the layer graph and opens the weights of a `.h5` model.
pub fn read_h5(bytes: Vec<u8>) -> Result<(ModelConfig, Weights), KerasErrorKind> {
    let len = bytes.len() as u64;
    let file = Hdf5File::from_vec(bytes).map_err(|e| KerasErrorKind::H5(e.to_string()))?;
    let superblock = file.superblock();
    let end = superblock
        .base_address
        .saturating_add(superblock.eof_address);
    if end > len {
        return Err(KerasErrorKind::H5(format!(
            "truncated: the file has {len} bytes, its superblock says {end}"
        )));
    }
    let root = file
        .root_group()
        .map_err(|e| KerasErrorKind::H5(e.to_string()))?;
    let text = string_attr(&root, "model_config")?.ok_or_else(|| {
        KerasErrorKind::H5(
            "no `model_config` attribute: this file holds weights only (save_weights), not a model"
                .into(),
        )
    })?;
    let version = string_attr(&root, "keras_version")?.unwrap_or_default();
    let json: Value = serde_json::from_str(&text)
        .map_err(|e| KerasErrorKind::ModelConfig(format!("not JSON: {e}")))?;
    let mut model = config::parse_root(&modernize(json)).map_err(|e| match e {
        KerasErrorKind::Config(m) => KerasErrorKind::ModelConfig(m),
        other => other,
    })?;
    if file.group(WEIGHTS_ROOT).is_err() {
        return Err(KerasErrorKind::H5(format!(
            "no `{WEIGHTS_ROOT}` group: the model was saved without its weights"
        )));
    }
    // Keras 3 writes `.h5` files too (keras_version 3.x); TF converts those models as Keras 3 ones.
    model.tf_keras = !version.starts_with('3');
    Ok((model, Weights::legacy(file)))
}

/// A string attribute of `group`, `None` when it has none.
fn string_attr(group: &Group, name: &str) -> Result<Option<String>, KerasErrorKind> {
    let Ok(attr) = group.attribute(name) else {
        return Ok(None);
    };
    strings(&attr)
        .and_then(|s| s.into_iter().next())
        .map(Some)
        .ok_or_else(|| KerasErrorKind::H5(format!("attribute `{name}` is not a string")))
}

/// The elements of a string (or string array) attribute, fixed-length or variable-length.
fn strings(attr: &Attribute) -> Option<Vec<String>> {
    attr.read_strings()
        .or_else(|_| attr.read_string().map(|s| vec![s]))
        .ok()
}

/// The variables of `layer`, in its `weight_names` order; `sublayer` (Keras 3's name of a MultiHeadAttention
/// projection, `query_dense`, ...) keeps that projection's only (a recurrent layer's `cell` holds them all). A
/// layer without a group has no variables.
pub fn legacy_vars(
    file: &Hdf5File,
    layer: &str,
    sublayer: Option<&str>,
) -> Result<Vec<Array>, KerasErrorKind> {
    let fail = |message: String| KerasErrorKind::Weight {
        layer: layer.to_string(),
        message,
    };
    let path = format!("{WEIGHTS_ROOT}/{layer}");
    let Ok(group) = file.group(&path) else {
        return Ok(Vec::new());
    };
    let names = match group.attribute("weight_names") {
        Ok(attr) => strings(&attr)
            .ok_or_else(|| fail(format!("{path}: `weight_names` is not a list of strings")))?,
        Err(_) => Vec::new(),
    };
    let wanted = sublayer.filter(|s| *s != "cell").map(legacy_sublayer);
    let mut vars = Vec::with_capacity(names.len());
    for name in names {
        if let Some(sub) = wanted {
            if !name.split('/').any(|part| part == sub) {
                continue;
            }
        }
        let dataset = file
            .dataset(&format!("{path}/{name}"))
            .map_err(|e| fail(format!("{path}/{name}: {e}")))?;
        vars.push(read_f32(&dataset, &format!("{path}/{name}")).map_err(fail)?);
    }
    Ok(vars)
}

/// tf_keras' name of a MultiHeadAttention projection Keras 3 calls `sub`.
fn legacy_sublayer(sub: &str) -> &str {
    match sub {
        "query_dense" => "query",
        "key_dense" => "key",
        "value_dense" => "value",
        "output_dense" => "attention_output",
        other => other,
    }
}

/// Keras 2's config in Keras 3's layout (a Keras 3 config passes unchanged).
pub fn modernize(mut root: Value) -> Value {
    let sequential = root.get("class_name").and_then(Value::as_str) == Some("Sequential");
    let Some(config) = root.get_mut("config").and_then(Value::as_object_mut) else {
        return root;
    };
    let mut build_shape = None;
    if let Some(layers) = config.get_mut("layers").and_then(Value::as_array_mut) {
        for (i, layer) in layers.iter_mut().enumerate() {
            let Some(entry) = layer.as_object_mut() else {
                continue;
            };
            let input = entry.get("class_name").and_then(Value::as_str) == Some("InputLayer");
            if !input {
                if let Some(options) = entry.get_mut("config").and_then(Value::as_object_mut) {
                    // Only the first layer's (without an InputLayer) says anything: the model's input shape.
                    let shape = options.remove("batch_input_shape");
                    if i == 0 && sequential {
                        build_shape = shape;
                    }
                }
            }
            if let Some(Value::Array(nodes)) = entry.get_mut("inbound_nodes") {
                for node in nodes.iter_mut() {
                    if let Value::Array(tensors) = node {
                        *node = legacy_node(tensors);
                    }
                }
            }
        }
    }
    if let Some(shape) = build_shape {
        config.entry("build_input_shape").or_insert(shape);
    }
    root
}

/// One call of a layer in Keras 2's form, `[[layer, node, index, kwargs], ...]`, as Keras 3 writes it:
/// `{"args": [tensor or [tensors]], "kwargs": {...}}` (keyword tensors, `[layer, node, index]`, kept too).
fn legacy_node(tensors: &[Value]) -> Value {
    let mut args = Vec::with_capacity(tensors.len());
    let mut kwargs = Map::new();
    for t in tensors {
        let Some(items) = t.as_array() else { continue };
        if let [layer, node, index, rest @ ..] = items.as_slice() {
            args.push(keras_tensor(layer, node, index));
            if let Some(Value::Object(kw)) = rest.first() {
                for (k, v) in kw {
                    kwargs.insert(k.clone(), keyword_tensors(v));
                }
            }
        }
    }
    let args = if args.len() == 1 {
        args
    } else {
        vec![Value::Array(args)]
    };
    json!({ "args": args, "kwargs": kwargs })
}

fn keras_tensor(layer: &Value, node: &Value, index: &Value) -> Value {
    json!({
        "class_name": "__keras_tensor__",
        "config": { "keras_history": [layer, node, index] },
    })
}

/// A keyword argument: `[layer, node, index]` triples (tensors passed by keyword) become Keras tensors.
fn keyword_tensors(v: &Value) -> Value {
    match v.as_array().map(Vec::as_slice) {
        Some([layer @ Value::String(_), node @ Value::Number(_), index @ Value::Number(_)]) => {
            keras_tensor(layer, node, index)
        }
        Some(items) => Value::Array(items.iter().map(keyword_tensors).collect()),
        None => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_inbound_nodes_become_keras_tensors() {
        let legacy = json!({
            "class_name": "Functional",
            "config": {
                "layers": [
                    {"class_name": "InputLayer", "name": "a", "inbound_nodes": [],
                     "config": {"batch_input_shape": [null, 6], "name": "a"}},
                    {"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 2},
                     "inbound_nodes": [[["a", 0, 0, {}]], [["a", 0, 0, {"mask": ["a", 0, 0]}]]]},
                    {"class_name": "Add", "name": "add", "config": {"name": "add"},
                     "inbound_nodes": [[["d", 0, 0, {}], ["d", 1, 0, {}]]]}
                ],
                "input_layers": [["a", 0, 0]],
                "output_layers": [["add", 0, 0]]
            }
        });
        let model = config::parse_root(&modernize(legacy)).unwrap();
        let add = model.calls.iter().find(|c| c.name == "add").unwrap();
        let reads: Vec<(&str, usize)> = add
            .inputs
            .iter()
            .map(|t| (t.layer.as_str(), t.node))
            .collect();
        assert_eq!(reads, [("d", 0), ("d", 1)]);
        let second = model.calls.iter().find(|c| c.name == "d" && c.node == 1);
        // The keyword tensor is read after the positional one.
        assert_eq!(second.unwrap().inputs.len(), 2);
    }

    #[test]
    fn a_first_layers_batch_input_shape_becomes_the_build_shape() {
        let legacy = json!({
            "class_name": "Sequential",
            "config": {"layers": [
                {"class_name": "Dense", "config": {"name": "d", "units": 2, "batch_input_shape": [null, 4]}}
            ]}
        });
        let model = config::parse_root(&modernize(legacy)).unwrap();
        assert_eq!(model.calls[0].class, "InputLayer");
        assert_eq!(model.calls[0].config["batch_shape"], json!([null, 4]));
        assert!(!model.calls[1].config.contains_key("batch_input_shape"));
    }
}
