//! `config.json`: the model's layer graph (Sequential or Functional), each layer's class and options.
//!
//! The graph is normalized here: every layer call is a [`LayerCall`] reading [`TensorRef`]s, whatever the model
//! kind. A model used as a layer (nested Sequential or Functional) is inlined: its calls are renamed
//! `outer/inner`, its inputs and output become `Identity` calls. Each layer's options are parsed into a typed
//! struct by the lowering ([`LayerCall::options`]), which rejects an option it does not know.

use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::KerasErrorKind;

/// A tensor of the Keras graph: output `index` of call `node` of `layer` (Keras' `keras_history`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TensorRef {
    /// The producing layer's name.
    pub layer: String,
    /// Which call of that layer (shared layers are called more than once).
    pub node: usize,
    /// Which of the call's outputs.
    pub index: usize,
}

/// One layer call: the layer, its options and the tensors it reads.
#[derive(Debug, Clone)]
pub struct LayerCall {
    /// The layer's name (unique in the model).
    pub name: String,
    /// Its Keras class.
    pub class: String,
    /// Which call of the layer this is.
    pub node: usize,
    /// The layer's options, as written (`config` of the layer entry).
    pub config: Map<String, Value>,
    /// The tensors it reads, in call order (empty for an InputLayer).
    pub inputs: Vec<TensorRef>,
}

/// The model's layer graph.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// Every layer call, in the order the config lists them (a valid evaluation order).
    pub calls: Vec<LayerCall>,
    /// The model's inputs: the InputLayers' outputs, in the model's order.
    pub inputs: Vec<TensorRef>,
    /// The model's outputs with their names, in the model's order.
    pub outputs: Vec<(String, TensorRef)>,
    /// The weights-file key of each call inside a nested model (`sequential/layers/conv2d`), by call name;
    /// the other calls' keys follow from their order ([`super::weights::layer_keys`]).
    pub nested_keys: HashMap<String, String>,
    /// Saved by Keras 2 / tf_keras, whose layers TF's converter lowers differently (a fused LSTM).
    pub tf_keras: bool,
}

/// Options that carry no meaning at inference (training-time settings), dropped before an options struct is
/// parsed. Anything else a layer's struct does not name is an unsupported option.
fn ignored_option(key: &str, value: &Value) -> bool {
    matches!(key, "name" | "trainable" | "dtype" | "activity_regularizer")
        || key.ends_with("_initializer")
        || key.ends_with("_regularizer")
        || key.ends_with("_constraint")
        || (matches!(
            key,
            "quantization_config" | "lora_rank" | "lora_alpha" | "seed"
        ) && value.is_null())
}

impl LayerCall {
    /// The layer's options as `T` (a struct with `deny_unknown_fields`): an option `T` does not name is an
    /// unsupported-option error naming it.
    pub fn options<T: DeserializeOwned>(&self) -> Result<T, KerasErrorKind> {
        let config: Map<String, Value> = self
            .config
            .iter()
            .filter(|(k, v)| !ignored_option(k, v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::from_value(Value::Object(config)).map_err(|e| {
            KerasErrorKind::unsupported(&self.name, &self.class, format!("options: {e}"))
        })
    }
}

/// Parses `config.json`.
pub fn parse_config(text: &str) -> Result<ModelConfig, KerasErrorKind> {
    let root: Value =
        serde_json::from_str(text).map_err(|e| KerasErrorKind::Config(e.to_string()))?;
    parse_root(&root)
}

/// Parses a model config already read as JSON (Keras 3's layout; [`super::h5`] brings Keras 2's to it).
pub fn parse_root(root: &Value) -> Result<ModelConfig, KerasErrorKind> {
    let class = str_field(root, "class_name")?;
    let config = root
        .get("config")
        .ok_or_else(|| KerasErrorKind::Config("no `config` object".into()))?;
    match class {
        "Sequential" => sequential(config),
        "Functional" | "Model" => functional(config),
        other => Err(KerasErrorKind::Config(format!(
            "model class `{other}` is not Sequential or Functional (a subclassed model has no layer graph \
             in its config)"
        ))),
    }
}

/// Whether a layer class is a model used as a layer.
fn is_model(class: &str) -> bool {
    matches!(class, "Sequential" | "Functional" | "Model")
}

/// The weights-file keys of one model level's layers, by name.
fn level_keys(config: &Value) -> Result<HashMap<String, String>, KerasErrorKind> {
    let entries = layers(config)?
        .iter()
        .map(entry)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(super::weights::layer_keys(
        entries.iter().map(|(n, c, _)| (n.as_str(), c.as_str())),
    ))
}

/// The calls of a model level, with the nested models' keys.
#[derive(Default)]
struct Level {
    calls: Vec<LayerCall>,
    nested_keys: HashMap<String, String>,
}

impl Level {
    /// Inlines call `node` of the nested model `layer` (named `name`, weights key `key`) reading `inputs`;
    /// returns the tensor the outer model knows its output by.
    fn inline(
        &mut self,
        layer: &Value,
        name: &str,
        key: &str,
        node: usize,
        inputs: Vec<TensorRef>,
    ) -> Result<TensorRef, KerasErrorKind> {
        let inner = parse_root(layer)?;
        let inner_keys = level_keys(layer.get("config").unwrap_or(&Value::Null))?;
        let prefix = if node == 0 {
            format!("{name}/")
        } else {
            format!("{name}_{node}/")
        };
        let bad = |m: String| KerasErrorKind::graph(name, m);
        if inner.inputs.len() != inputs.len() {
            return Err(bad(format!(
                "a nested model of {} inputs called on {}",
                inner.inputs.len(),
                inputs.len()
            )));
        }
        let rename = |r: &TensorRef| TensorRef {
            layer: format!("{prefix}{}", r.layer),
            ..r.clone()
        };
        for call in inner.calls {
            let renamed = format!("{prefix}{}", call.name);
            let inner_key = inner
                .nested_keys
                .get(&call.name)
                .or_else(|| inner_keys.get(&call.name));
            if let Some(k) = inner_key {
                self.nested_keys
                    .insert(renamed.clone(), format!("{key}/layers/{k}"));
            }
            let (class, config, reads) = if call.class == "InputLayer" {
                let i = inner
                    .inputs
                    .iter()
                    .position(|r| r.layer == call.name)
                    .ok_or_else(|| bad(format!("input `{}` is not a model input", call.name)))?;
                ("Identity".to_string(), Map::new(), vec![inputs[i].clone()])
            } else {
                (
                    call.class,
                    call.config,
                    call.inputs.iter().map(rename).collect(),
                )
            };
            self.calls.push(LayerCall {
                name: renamed,
                class,
                node: call.node,
                config,
                inputs: reads,
            });
        }
        let [(_, output)] = inner.outputs.as_slice() else {
            return Err(KerasErrorKind::unsupported(
                name,
                str_field(layer, "class_name")?,
                "a nested model with more than one output",
            ));
        };
        // A Functional model's node 0 is the call that built it: the outer model's calls count from 1.
        let class = str_field(layer, "class_name")?;
        let outer_node = if class == "Sequential" {
            node
        } else {
            node + 1
        };
        self.calls.push(LayerCall {
            name: name.to_string(),
            class: "Identity".into(),
            node: outer_node,
            config: Map::new(),
            inputs: vec![rename(output)],
        });
        Ok(TensorRef {
            layer: name.to_string(),
            node: outer_node,
            index: 0,
        })
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, KerasErrorKind> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| KerasErrorKind::Config(format!("no string `{key}`")))
}

fn layers(config: &Value) -> Result<&Vec<Value>, KerasErrorKind> {
    config
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| KerasErrorKind::Config("no `layers` list".into()))
}

/// A layer entry's name, class and options; a custom object is an error naming it.
fn entry(layer: &Value) -> Result<(String, String, Map<String, Value>), KerasErrorKind> {
    let class = str_field(layer, "class_name")?.to_string();
    let config = layer
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let name = layer
        .get("name")
        .and_then(Value::as_str)
        .or_else(|| config.get("name").and_then(Value::as_str))
        .ok_or_else(|| KerasErrorKind::Config(format!("a {class} layer has no name")))?
        .to_string();
    let registered = layer.get("registered_name").and_then(Value::as_str);
    let module = layer
        .get("module")
        .and_then(Value::as_str)
        .unwrap_or("keras.layers");
    if registered.is_some_and(|r| r != class) || !module.starts_with("keras") {
        return Err(KerasErrorKind::unsupported(
            &name,
            &class,
            format!(
                "custom object (module `{module}`, registered as `{}`): its code is not in the file",
                registered.unwrap_or(&class)
            ),
        ));
    }
    Ok((name, class, config))
}

fn sequential(config: &Value) -> Result<ModelConfig, KerasErrorKind> {
    let mut level = Level::default();
    let keys = level_keys(config)?;
    let mut previous: Option<TensorRef> = None;
    let mut inputs = Vec::new();
    for layer in layers(config)? {
        let (layer_name, class, options) = entry(layer)?;
        let input = match (previous.take(), class.as_str()) {
            (None, "InputLayer") => None,
            (None, _) => {
                // No InputLayer: the model's input shape is the build shape (or the first layer's).
                let shape = config
                    .get("build_input_shape")
                    .or_else(|| options.get("batch_input_shape"))
                    .cloned()
                    .ok_or_else(|| {
                        KerasErrorKind::Config("a Sequential model without an input shape".into())
                    })?;
                let input_name = format!("{layer_name}_input");
                let mut input_config = Map::new();
                input_config.insert("batch_shape".into(), shape);
                level.calls.push(LayerCall {
                    name: input_name.clone(),
                    class: "InputLayer".into(),
                    node: 0,
                    config: input_config,
                    inputs: Vec::new(),
                });
                let input = TensorRef {
                    layer: input_name,
                    node: 0,
                    index: 0,
                };
                inputs.push(input.clone());
                Some(input)
            }
            (Some(_), "InputLayer") => {
                return Err(KerasErrorKind::Config(format!(
                    "InputLayer `{layer_name}` after the first layer"
                )))
            }
            (Some(p), _) => Some(p),
        };
        if input.is_none() {
            inputs.push(TensorRef {
                layer: layer_name.clone(),
                node: 0,
                index: 0,
            });
        }
        previous = Some(if is_model(&class) {
            let key = keys.get(&layer_name).cloned().unwrap_or_default();
            level.inline(layer, &layer_name, &key, 0, input.into_iter().collect())?
        } else {
            level.calls.push(LayerCall {
                name: layer_name.clone(),
                class,
                node: 0,
                config: options,
                inputs: input.into_iter().collect(),
            });
            TensorRef {
                layer: layer_name,
                node: 0,
                index: 0,
            }
        });
    }
    let output = previous.ok_or_else(|| KerasErrorKind::Config("a model without layers".into()))?;
    Ok(ModelConfig {
        calls: level.calls,
        inputs,
        outputs: vec![(output.layer.clone(), output)],
        nested_keys: level.nested_keys,
        tf_keras: false,
    })
}

fn functional(config: &Value) -> Result<ModelConfig, KerasErrorKind> {
    let mut level = Level::default();
    let keys = level_keys(config)?;
    for layer in layers(config)? {
        let (layer_name, class, options) = entry(layer)?;
        let nodes = layer
            .get("inbound_nodes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if is_model(&class) {
            let key = keys.get(&layer_name).cloned().unwrap_or_default();
            for (node, call) in nodes.iter().enumerate() {
                let mut inputs = Vec::new();
                keras_tensors(call, &mut inputs);
                level.inline(layer, &layer_name, &key, node, inputs)?;
            }
            continue;
        }
        let calls = &mut level.calls;
        if class == "InputLayer" || nodes.is_empty() {
            calls.push(LayerCall {
                name: layer_name,
                class,
                node: 0,
                config: options,
                inputs: Vec::new(),
            });
            continue;
        }
        for (node, call) in nodes.iter().enumerate() {
            let mut inputs = Vec::new();
            keras_tensors(call, &mut inputs);
            calls.push(LayerCall {
                name: layer_name.clone(),
                class: class.clone(),
                node,
                config: options.clone(),
                inputs,
            });
        }
    }
    let inputs = tensor_list(config.get("input_layers"), "input_layers")?
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let outputs = tensor_list(config.get("output_layers"), "output_layers")?;
    Ok(ModelConfig {
        calls: level.calls,
        inputs,
        outputs,
        nested_keys: level.nested_keys,
        tf_keras: false,
    })
}

/// Every `__keras_tensor__` in a call's arguments (positional, then keyword), in order.
fn keras_tensors(v: &Value, out: &mut Vec<TensorRef>) {
    match v {
        Value::Object(map) => {
            if map.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") {
                if let Some(t) = map
                    .get("config")
                    .and_then(|c| c.get("keras_history"))
                    .and_then(history)
                {
                    out.push(t);
                }
                return;
            }
            for key in ["args", "kwargs"] {
                if let Some(inner) = map.get(key) {
                    keras_tensors(inner, out);
                }
            }
            if !map.contains_key("args") {
                for inner in map.values() {
                    keras_tensors(inner, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| keras_tensors(i, out)),
        _ => {}
    }
}

/// A `[layer, node, index]` triple.
fn history(v: &Value) -> Option<TensorRef> {
    let items = v.as_array()?;
    let [layer, node, index] = items.as_slice() else {
        return None;
    };
    Some(TensorRef {
        layer: layer.as_str()?.to_string(),
        node: usize::try_from(node.as_u64()?).ok()?,
        index: usize::try_from(index.as_u64()?).ok()?,
    })
}

/// `input_layers` / `output_layers`: one triple, a list of triples, or a dict of name -> triple.
fn tensor_list(v: Option<&Value>, key: &str) -> Result<Vec<(String, TensorRef)>, KerasErrorKind> {
    let bad = || KerasErrorKind::Config(format!("`{key}` is not a list of [layer, node, index]"));
    let v = v.ok_or_else(bad)?;
    if let Some(t) = history(v) {
        return Ok(vec![(t.layer.clone(), t)]);
    }
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| history(i).map(|t| (t.layer.clone(), t)).ok_or_else(bad))
            .collect(),
        Value::Object(map) => {
            // Named outputs in key order (serde_json's map is sorted by key).
            let named: BTreeMap<&String, &Value> = map.iter().collect();
            named
                .into_iter()
                .map(|(name, i)| history(i).map(|t| (name.clone(), t)).ok_or_else(bad))
                .collect()
        }
        _ => Err(bad()),
    }
}
