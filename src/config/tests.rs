//! `quantize.toml` as a specification: what parses, what it resolves to, and the exact error for each mistake.

use super::*;
use crate::dataset::DatasetFormat;

const FILE: &str = "/proj/quantize.toml";

fn parse_ok(text: &str) -> Config {
    match parse(text, Path::new(FILE)) {
        Ok(config) => config,
        Err(e) => panic!("expected the config to parse, got: {e}"),
    }
}

fn parse_err(text: &str) -> ConfigError {
    match parse(text, Path::new(FILE)) {
        Ok(config) => panic!("expected an error, parsed: {config:?}"),
        Err(e) => e,
    }
}

/// The error's display, the way a user reads it.
fn message(text: &str) -> String {
    parse_err(text).to_string()
}

const MINIMAL: &str = "[models.mlp]\nsource = \"models/mlp.tflite\"\nmodes = [\"dynamic\"]\n";

const INT8_MODEL: &str = r#"
[datasets.digits]
format = "npz"
path = "data/digits.npz"

[models.m]
source = "m.tflite"
modes = ["int8", "int16x8", "dynamic"]
dataset = "digits"
"#;

fn with_model_keys(extra: &str) -> String {
    format!("{INT8_MODEL}{extra}\n")
}

// ---- defaults and resolution ----

#[test]
fn omitted_keys_take_documented_defaults() {
    let config = parse_ok(MINIMAL);
    assert_eq!(config.settings.out_dir, Path::new("/proj/target/quantized"));
    assert_eq!(config.settings.lock, Path::new("/proj/quantize.lock"));
    assert!(config.datasets.is_empty());
    let model = &config.models["mlp"];
    assert_eq!(model.name, "mlp");
    assert_eq!(model.modes, vec![Mode::Dynamic]);
    assert_eq!(model.dataset, None);
    assert_eq!(model.op_sets, vec![OpSet::TfliteBuiltins]);
    assert_eq!(model.inference_input_type, IoType::Float32);
    assert_eq!(model.inference_output_type, IoType::Float32);
    assert!(model.per_channel);
    assert!(model.per_channel_dense);
    assert_eq!(model.calibration, Calibration::MinMax);
    assert!(model.exclude.is_empty());
    assert_eq!(model.target_runtime, None);
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let config = parse_ok(
        r#"
[settings]
out_dir = "out/q"
lock = "locks/q.lock"
[datasets.d]
format = "npy"
path = "../data/x.npy"
[models.m]
source = "models/m.tflite"
modes = ["int8"]
dataset = "d"
"#,
    );
    assert_eq!(config.path, Path::new(FILE));
    assert_eq!(config.base_dir, Path::new("/proj"));
    assert_eq!(config.settings.out_dir, Path::new("/proj/out/q"));
    assert_eq!(config.settings.lock, Path::new("/proj/locks/q.lock"));
    assert_eq!(
        config.datasets["d"].path.as_deref(),
        Some(Path::new("/proj/../data/x.npy"))
    );
    assert_eq!(
        config.models["m"].source,
        Path::new("/proj/models/m.tflite")
    );
}

#[test]
fn absolute_paths_are_kept() {
    let config = parse_ok(
        "[settings]\nout_dir = \"/tmp/q\"\n[models.m]\nsource = \"/models/m.tflite\"\nmodes = [\"float16\"]\n",
    );
    assert_eq!(config.settings.out_dir, Path::new("/tmp/q"));
    assert_eq!(config.models["m"].source, Path::new("/models/m.tflite"));
}

#[test]
fn config_given_by_relative_path_resolves_against_the_working_directory() {
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => panic!("no working directory: {e}"),
    };
    let config = match parse(MINIMAL, Path::new("sub/quantize.toml")) {
        Ok(config) => config,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(config.path, Path::new("sub/quantize.toml"));
    assert_eq!(config.base_dir, cwd.join("sub"));
    assert_eq!(
        config.models["mlp"].source,
        cwd.join("sub/models/mlp.tflite")
    );

    let bare = match parse(MINIMAL, Path::new("quantize.toml")) {
        Ok(config) => config,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(bare.base_dir, cwd);
}

#[test]
fn every_documented_key_is_read() {
    let config = parse_ok(
        r#"
[datasets.photos]
format = "images"
path = "data/photos"
resize = [96, 128]
mean = [127.5]
std = [127.5, 127, 1e2]
samples = 10

[datasets.noise]
format = "random"
range = [-1, 1]
seed = 7

[datasets.pair]
format = "npz"
path = "pair.npz"
inputs = { "serving_default_img:0" = "img", "serving_default_feats:0" = "feats" }

[models.c]
source = "c.tflite"
modes = ["dynamic", "int8", "float16", "int16x8"]
dataset = "photos"
op_sets = ["TFLITE_BUILTINS", "SELECT_TF_OPS"]
inference_input_type = "uint8"
inference_output_type = "int16"
per_channel = false
per_channel_dense = false
calibration = "minmax"
exclude = ["dense_2", "SOFTMAX"]
target_runtime = "2.14"
"#,
    );
    let photos = &config.datasets["photos"];
    assert_eq!(photos.format, DatasetFormat::Images);
    assert_eq!(photos.resize, Some([96, 128]));
    assert_eq!(photos.mean, vec![127.5]);
    assert_eq!(photos.std, vec![127.5, 127.0, 100.0]);
    assert_eq!(photos.samples, Some(10));
    let noise = &config.datasets["noise"];
    assert_eq!(
        (noise.path.as_ref(), noise.range, noise.seed),
        (None, Some([-1.0, 1.0]), 7)
    );
    let pair = &config.datasets["pair"];
    assert_eq!(
        pair.inputs.get("serving_default_img:0").map(String::as_str),
        Some("img")
    );
    assert_eq!(pair.inputs.len(), 2);

    let c = &config.models["c"];
    assert_eq!(
        c.modes,
        vec![Mode::Dynamic, Mode::Int8, Mode::Float16, Mode::Int16x8]
    );
    assert_eq!(c.dataset.as_deref(), Some("photos"));
    assert_eq!(c.op_sets, vec![OpSet::TfliteBuiltins, OpSet::SelectTfOps]);
    assert_eq!(
        (c.inference_input_type, c.inference_output_type),
        (IoType::Uint8, IoType::Int16)
    );
    assert!(!c.per_channel && !c.per_channel_dense);
    assert_eq!(
        c.exclude,
        vec!["dense_2".to_string(), "SOFTMAX".to_string()]
    );
    assert_eq!(c.target_runtime.as_deref(), Some("2.14"));
}

#[test]
fn dotted_keys_and_inline_tables_are_the_same_tables() {
    let config = parse_ok("models.a.source = \"a.tflite\"\nmodels.a.modes = [\"dynamic\"]\n");
    assert_eq!(config.models["a"].modes, vec![Mode::Dynamic]);
    let config = parse_ok("models = { b = { source = \"b.tflite\", modes = [\"float16\"] } }\n");
    assert_eq!(config.models["b"].modes, vec![Mode::Float16]);
}

#[test]
fn parsing_is_deterministic_and_serializable() {
    let a = parse_ok(INT8_MODEL);
    let b = parse_ok(INT8_MODEL);
    assert_eq!(a, b);
    let json = |c: &Config| serde_json::to_string(c).unwrap_or_default();
    assert!(
        json(&a).contains("\"op_sets\":[\"TFLITE_BUILTINS\"]"),
        "{}",
        json(&a)
    );
    assert_eq!(json(&a), json(&b));
}

// ---- quant_options ----

#[test]
fn tflite_builtins_int8_alone_forbids_float_fallback_in_integer_modes_only() {
    let config = parse_ok(&with_model_keys("op_sets = [\"TFLITE_BUILTINS_INT8\"]"));
    let m = &config.models["m"];
    assert!(!m.quant_options(Mode::Int8).allow_float_fallback);
    assert!(!m.quant_options(Mode::Int16x8).allow_float_fallback);
    assert!(m.quant_options(Mode::Dynamic).allow_float_fallback);
    assert!(!m.quant_options(Mode::Int8).select_tf_ops);
}

#[test]
fn tflite_builtins_with_int8_is_the_union_and_allows_float_fallback() {
    let config = parse_ok(&with_model_keys(
        "op_sets = [\"TFLITE_BUILTINS_INT8\", \"TFLITE_BUILTINS\"]",
    ));
    assert!(
        config.models["m"]
            .quant_options(Mode::Int8)
            .allow_float_fallback
    );
}

#[test]
fn select_tf_ops_lets_flex_ops_pass_in_every_mode() {
    let config = parse_ok(&with_model_keys(
        "op_sets = [\"TFLITE_BUILTINS_INT8\", \"SELECT_TF_OPS\"]",
    ));
    let m = &config.models["m"];
    for mode in [Mode::Int8, Mode::Int16x8, Mode::Dynamic] {
        assert!(m.quant_options(mode).select_tf_ops, "{mode}");
    }
    assert!(!m.quant_options(Mode::Int8).allow_float_fallback);
}

#[test]
fn io_types_apply_only_to_the_mode_they_fit() {
    let config = parse_ok(&with_model_keys(
        "inference_input_type = \"int8\"\ninference_output_type = \"int16\"",
    ));
    let m = &config.models["m"];
    let io = |mode| {
        let o = m.quant_options(mode);
        (o.inference_input_type, o.inference_output_type)
    };
    assert_eq!(io(Mode::Int8), (IoType::Int8, IoType::Float32));
    assert_eq!(io(Mode::Int16x8), (IoType::Float32, IoType::Int16));
    assert_eq!(io(Mode::Dynamic), (IoType::Float32, IoType::Float32));
}

#[test]
fn quant_options_carry_the_model_settings() {
    let config = parse_ok(&with_model_keys(
        "per_channel = false\nper_channel_dense = false\nexclude = [\"SOFTMAX\"]\ntarget_runtime = \"2.17.1\"",
    ));
    let o = config.models["m"].quant_options(Mode::Int8);
    assert!(!o.per_channel && !o.per_channel_dense && o.allow_float_fallback);
    assert_eq!(o.exclude, vec!["SOFTMAX".to_string()]);
    assert_eq!(o.target_runtime.as_deref(), Some("2.17.1"));
}

// ---- errors from the TOML layer ----

#[test]
fn invalid_toml_reports_line_and_column() {
    let e = parse_err("[models.m]\nsource = \n");
    assert_eq!(e.kind, ConfigErrorKind::Syntax);
    assert_eq!(
        e.location,
        Some(Location {
            line: 2,
            column: 10
        })
    );
    assert!(
        e.to_string()
            .starts_with("/proj/quantize.toml:2:10: invalid TOML: "),
        "{e}"
    );
}

#[test]
fn unknown_model_key_is_named_with_its_path() {
    let e = parse_err("[models.m]\nsource = \"m.tflite\"\nmodez = [\"int8\"]\n");
    assert_eq!(e.kind, ConfigErrorKind::UnknownKey);
    assert_eq!(
        e.to_string(),
        "/proj/quantize.toml:3:1: key `models.m.modez`: unknown key; expected one of `source`, `modes`, `dataset`, \
         `op_sets`, `inference_input_type`, `inference_output_type`, `per_channel`, `per_channel_dense`, \
         `calibration`, `percentile`, `exclude`, `target_runtime`, `eval`, `target_sqnr_db`, `max_top1_drop`, \
         `equalize`, `adaptive_rounding`, `bias_correction`, `float16_weights_only`, `output_aware`"
    );
}

#[test]
fn unknown_top_level_and_settings_keys_are_errors() {
    assert_eq!(
        message("[setting]\nout_dir = \"x\"\n"),
        "/proj/quantize.toml:1:2: key `setting`: unknown key; expected one of `settings`, `datasets`, `models`"
    );
    assert_eq!(
        message("[settings]\nout = \"x\"\n"),
        "/proj/quantize.toml:2:1: key `settings.out`: unknown key; expected one of `out_dir`, `lock`, `cache`"
    );
}

#[test]
fn unknown_sub_table_under_a_model_is_named_with_its_path() {
    let e = parse_err(
        "[models.m]\nsource = \"m.tflite\"\nmodes = [\"int8\"]\n[models.m.extra]\nq = 1\n",
    );
    assert_eq!(e.kind, ConfigErrorKind::UnknownKey);
    assert_eq!(e.key.as_deref(), Some("models.m.extra"));
    assert_eq!(e.location.map(|l| l.line), Some(4));
}

#[test]
fn unknown_dataset_key_is_named_with_its_path() {
    let e = parse_err("[datasets.d]\nformat = \"npz\"\npath = \"d.npz\"\nshuffle = true\n");
    assert_eq!(e.key.as_deref(), Some("datasets.d.shuffle"));
    assert_eq!(e.location, Some(Location { line: 4, column: 1 }));
}

#[test]
fn wrong_type_says_what_was_expected_and_found() {
    assert_eq!(
        message(&with_model_keys("per_channel = \"yes\"")),
        "/proj/quantize.toml:10:15: key `models.m.per_channel`: expected a boolean, found string \"yes\""
    );
}

#[test]
fn wrong_type_inside_an_array_names_the_element() {
    let e = parse_err("[models.m]\nsource = \"m.tflite\"\nmodes = [\"int8\", 3]\n");
    assert_eq!(e.kind, ConfigErrorKind::WrongType);
    assert_eq!(
        e.to_string(),
        "/proj/quantize.toml:3:18: key `models.m.modes[1]`: expected a string, found integer `3`"
    );
}

#[test]
fn wrong_type_inside_an_inline_table_names_the_quoted_key() {
    let e =
        parse_err("[datasets.d]\nformat = \"npz\"\npath = \"d.npz\"\ninputs = { \"in:0\" = 1 }\n");
    assert_eq!(e.key.as_deref(), Some("datasets.d.inputs.\"in:0\""));
    assert_eq!(e.kind, ConfigErrorKind::WrongType);
}

#[test]
fn missing_source_points_at_the_model_table() {
    let e = parse_err("[models.m]\nmodes = [\"dynamic\"]\n");
    assert_eq!(e.kind, ConfigErrorKind::MissingKey);
    assert_eq!(
        e.to_string(),
        "/proj/quantize.toml:1:1: key `models.m.source`: required key is missing"
    );
}

#[test]
fn missing_modes_is_an_error() {
    let e = parse_err("[models.m]\nsource = \"m.tflite\"\n");
    assert_eq!(e.key.as_deref(), Some("models.m.modes"));
    assert_eq!(e.kind, ConfigErrorKind::MissingKey);
}

#[test]
fn missing_dataset_format_is_an_error() {
    let e = parse_err("[datasets.d]\npath = \"d.npz\"\n");
    assert_eq!(e.key.as_deref(), Some("datasets.d.format"));
}

#[test]
fn a_config_without_models_is_an_error() {
    assert_eq!(
        message("[settings]\nout_dir = \"q\"\n"),
        "/proj/quantize.toml: key `models`: no models declared; expected at least one `[models.NAME]` table"
    );
}

#[test]
fn an_unreadable_file_is_an_io_error_naming_it() {
    let e = match load(Path::new("/nonexistent/litequant/quantize.toml")) {
        Ok(_) => panic!("loaded a file that does not exist"),
        Err(e) => e,
    };
    assert_eq!(e.kind, ConfigErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/litequant/quantize.toml: cannot read the config file: "),
        "{e}"
    );
}

// ---- validation: models ----

#[test]
fn unknown_mode_lists_the_valid_modes() {
    let e = parse_err("[models.classifier]\nsource = \"c.tflite\"\nmodes = [\"dynamic\", \"float16\", \"int4\"]\n");
    assert_eq!(e.kind, ConfigErrorKind::InvalidValue);
    assert_eq!(
        e.to_string(),
        "/proj/quantize.toml:3:32: key `models.classifier.modes[2]`: expected one of `dynamic`, `float16`, `int8`, \
         `int16x8`, found `int4`"
    );
}

#[test]
fn duplicate_mode_is_an_error_at_the_repeat() {
    assert_eq!(
        message("[models.m]\nsource = \"m.tflite\"\nmodes = [\"float16\", \"float16\"]\n"),
        "/proj/quantize.toml:3:21: key `models.m.modes[1]`: `float16` is listed twice; expected each mode at most once"
    );
}

#[test]
fn empty_modes_is_an_error() {
    assert_eq!(
        message("[models.m]\nsource = \"m.tflite\"\nmodes = []\n"),
        "/proj/quantize.toml:3:9: key `models.m.modes`: expected at least one mode of one of `dynamic`, `float16`, \
         `int8`, `int16x8`, found none"
    );
}

#[test]
fn integer_modes_need_a_dataset() {
    assert_eq!(
        message("[models.m]\nsource = \"m.tflite\"\nmodes = [\"dynamic\", \"int16x8\"]\n"),
        "/proj/quantize.toml:3:21: key `models.m.dataset`: required because `modes` lists `int16x8`, which calibrates \
         on representative data; expected the name of a `[datasets.NAME]` table (none is defined)"
    );
}

#[test]
fn dataset_must_name_a_defined_dataset() {
    let text = INT8_MODEL.replace("dataset = \"digits\"", "dataset = \"digit\"");
    let e = parse_err(&text);
    assert_eq!(e.kind, ConfigErrorKind::InvalidValue);
    assert_eq!(
        e.to_string(),
        "/proj/quantize.toml:9:11: key `models.m.dataset`: `digit` is not a dataset; expected a dataset name: `digits`"
    );
}

#[test]
fn model_names_must_be_usable_in_file_names() {
    let e = parse_err("[models.\"my model\"]\nsource = \"m.tflite\"\nmodes = [\"dynamic\"]\n");
    assert_eq!(e.key.as_deref(), Some("models.\"my model\""));
    assert_eq!(e.location.map(|l| l.line), Some(1));
    assert!(e.message.contains("not usable in file names"), "{e}");
    let e = parse_err("[models.\"\"]\nsource = \"m.tflite\"\nmodes = [\"dynamic\"]\n");
    assert_eq!(e.key.as_deref(), Some("models.\"\""));
    parse_ok("[models.\"v1.2_mlp-b\"]\nsource = \"m.tflite\"\nmodes = [\"dynamic\"]\n");
}

#[test]
fn dataset_names_must_be_usable_in_file_names() {
    let e = parse_err("[datasets.\"a/b\"]\nformat = \"random\"\n[models.m]\nsource = \"m\"\nmodes = [\"dynamic\"]\n");
    assert_eq!(e.key.as_deref(), Some("datasets.\"a/b\""));
}

#[test]
fn empty_source_is_an_error() {
    assert_eq!(
        message("[models.m]\nsource = \"\"\nmodes = [\"dynamic\"]\n"),
        "/proj/quantize.toml:2:10: key `models.m.source`: expected a path, found an empty string"
    );
}

#[test]
fn int16_io_without_int16x8_is_an_error() {
    let text = INT8_MODEL.replace("\"int8\", \"int16x8\", \"dynamic\"", "\"int8\"")
        + "inference_input_type = \"int16\"\n";
    let e = parse_err(&text);
    assert_eq!(e.kind, ConfigErrorKind::Conflict);
    assert_eq!(
        e.to_string(),
        "/proj/quantize.toml:10:24: key `models.m.inference_input_type`: `int16` I/O needs the `int16x8` mode, which \
         `modes` does not list (modes: int8); expected one of `float32`, `int8`, `uint8`"
    );
}

#[test]
fn int8_io_without_int8_mode_is_an_error() {
    let text = INT8_MODEL.replace("\"int8\", \"int16x8\", \"dynamic\"", "\"int16x8\"")
        + "inference_output_type = \"uint8\"\n";
    let e = parse_err(&text);
    assert_eq!(e.key.as_deref(), Some("models.m.inference_output_type"));
    assert!(e.message.contains("needs the `int8` mode"), "{e}");
    assert!(
        e.message.ends_with("expected one of `float32`, `int16`"),
        "{e}"
    );
}

#[test]
fn unknown_io_type_lists_the_valid_types() {
    assert!(message(&with_model_keys("inference_input_type = \"float16\"")).ends_with(
        "key `models.m.inference_input_type`: expected one of `float32`, `int8`, `uint8`, `int16`, found `float16`"
    ));
}

#[test]
fn unknown_op_set_lists_tensorflow_names() {
    assert!(message(&with_model_keys("op_sets = [\"BUILTINS\"]")).ends_with(
        "key `models.m.op_sets[0]`: expected one of `TFLITE_BUILTINS`, `TFLITE_BUILTINS_INT8`, `SELECT_TF_OPS`, \
         found `BUILTINS`"
    ));
}

#[test]
fn duplicate_and_empty_op_sets_are_errors() {
    let e = parse_err(&with_model_keys(
        "op_sets = [\"TFLITE_BUILTINS\", \"TFLITE_BUILTINS\"]",
    ));
    assert_eq!(e.key.as_deref(), Some("models.m.op_sets[1]"));
    let e = parse_err(&with_model_keys("op_sets = []"));
    assert_eq!(e.key.as_deref(), Some("models.m.op_sets"));
}

#[test]
fn tflite_builtins_int8_without_an_integer_mode_is_an_error() {
    let e = parse_err(
        "[models.m]\nsource = \"m\"\nmodes = [\"dynamic\"]\nop_sets = [\"TFLITE_BUILTINS_INT8\"]\n",
    );
    assert_eq!(e.kind, ConfigErrorKind::Conflict);
    assert_eq!(e.key.as_deref(), Some("models.m.op_sets[0]"));
}

#[test]
fn every_calibration_method_parses_and_percentile_defaults_to_99_99() {
    for (text, expected) in [
        ("calibration = \"minmax\"", Calibration::MinMax),
        ("calibration = \"mse\"", Calibration::Mse),
        ("calibration = \"entropy\"", Calibration::Entropy),
        ("calibration = \"auto\"", Calibration::Auto),
        (
            "calibration = \"percentile\"",
            Calibration::Percentile(Percentile::DEFAULT),
        ),
    ] {
        let config = parse_ok(&with_model_keys(text));
        assert_eq!(config.models["m"].calibration, expected, "{text}");
    }
    assert_eq!(Percentile::DEFAULT.value(), 99.99);
}

#[test]
fn percentile_takes_floats_and_integers_in_0_exclusive_to_100() {
    for (value, expected) in [("99.9", 99.9), ("100", 100.0), ("0.5", 0.5)] {
        let config = parse_ok(&with_model_keys(&format!(
            "calibration = \"percentile\"\npercentile = {value}"
        )));
        let p = config.models["m"]
            .calibration
            .percentile()
            .map(Percentile::value);
        assert_eq!(p, Some(expected), "{value}");
    }
}

#[test]
fn percentile_outside_0_exclusive_to_100_is_an_error_at_its_key() {
    for value in ["0", "100.5", "-3", "nan", "inf"] {
        let e = parse_err(&with_model_keys(&format!(
            "calibration = \"percentile\"\npercentile = {value}"
        )));
        assert_eq!(e.kind, ConfigErrorKind::InvalidValue, "{value}");
        assert_eq!(
            e.to_string(),
            format!(
                "/proj/quantize.toml:11:14: key `models.m.percentile`: expected a percentile in (0, 100] \
                 such as 99.99, found {}",
                value.parse::<f64>().unwrap()
            )
        );
    }
}

#[test]
fn percentile_without_the_percentile_method_is_a_conflict() {
    let e = parse_err(&with_model_keys("calibration = \"mse\"\npercentile = 99.9"));
    assert_eq!(e.kind, ConfigErrorKind::Conflict);
    assert_eq!(
        e.to_string(),
        "/proj/quantize.toml:11:14: key `models.m.percentile`: `percentile` is the parameter of \
         `calibration = \"percentile\"`, and the calibration is `mse`"
    );
    let e = parse_err(&with_model_keys("percentile = 99.9"));
    assert_eq!(e.kind, ConfigErrorKind::Conflict);
    assert!(
        e.message
            .ends_with("the calibration is `minmax` (the default)"),
        "{e}"
    );
}

#[test]
fn an_unknown_calibration_method_lists_the_known_ones() {
    let e = parse_err(&with_model_keys("calibration = \"max\""));
    assert_eq!(
        e.to_string(),
        "/proj/quantize.toml:10:15: key `models.m.calibration`: expected one of `minmax`, `percentile`, \
         `mse`, `entropy`, `auto`, found `max`"
    );
    assert_eq!(e.kind, ConfigErrorKind::InvalidValue);
}

#[test]
fn empty_exclude_pattern_and_malformed_target_runtime_are_errors() {
    let e = parse_err(&with_model_keys("exclude = [\"SOFTMAX\", \"\"]"));
    assert_eq!(e.key.as_deref(), Some("models.m.exclude[1]"));
    let e = parse_err(&with_model_keys("target_runtime = \"2.x\""));
    assert_eq!(e.key.as_deref(), Some("models.m.target_runtime"));
    assert!(
        e.message
            .contains("expected a LiteRT version like \"2.14\""),
        "{e}"
    );
}

#[test]
fn the_first_error_in_the_file_is_reported() {
    let e = parse_err(
        "[models.b]\nsource = \"b\"\nmodes = [\"int9\"]\n[models.a]\nsource = \"a\"\nmodes = [\"int8\"]\ndataset = \"none\"\n",
    );
    assert_eq!(e.key.as_deref(), Some("models.b.modes[0]"));
}

// ---- validation: datasets ----

fn dataset_err(table: &str) -> ConfigError {
    parse_err(&format!(
        "[datasets.d]\n{table}\n[models.m]\nsource = \"m\"\nmodes = [\"dynamic\"]\n"
    ))
}

#[test]
fn unknown_dataset_format_lists_the_formats() {
    assert_eq!(
        dataset_err("format = \"csv\"\npath = \"x.csv\"").to_string(),
        "/proj/quantize.toml:2:10: key `datasets.d.format`: expected one of `npy`, `npz`, `images`, `random`, found `csv`"
    );
}

#[test]
fn file_formats_need_a_path_and_random_takes_none() {
    for table in [
        "format = \"npy\"",
        "format = \"npz\"",
        "format = \"images\"\nresize = [8, 8]",
    ] {
        let e = dataset_err(table);
        assert_eq!(
            (e.kind, e.key.as_deref()),
            (ConfigErrorKind::MissingKey, Some("datasets.d.path")),
            "{e}"
        );
    }
    let e = dataset_err("format = \"random\"\npath = \"x\"");
    assert_eq!(
        (e.kind, e.key.as_deref()),
        (ConfigErrorKind::Conflict, Some("datasets.d.path"))
    );
}

#[test]
fn images_need_resize() {
    let e = dataset_err("format = \"images\"\npath = \"photos\"");
    assert_eq!(e.key.as_deref(), Some("datasets.d.resize"));
    assert_eq!(e.location, Some(Location { line: 1, column: 1 }));
    assert_eq!(
        dataset_err("format = \"images\"\npath = \"p\"\nresize = [96]").message,
        "expected [height, width], found 1 values"
    );
    assert_eq!(
        dataset_err("format = \"images\"\npath = \"p\"\nresize = [96, 0]")
            .key
            .as_deref(),
        Some("datasets.d.resize[1]")
    );
}

#[test]
fn mean_and_std_take_one_value_or_three() {
    let e = dataset_err("format = \"images\"\npath = \"p\"\nresize = [8, 8]\nmean = [1, 2]");
    assert_eq!(
        e.to_string(),
        "/proj/quantize.toml:5:8: key `datasets.d.mean`: expected 1 value (all channels) or 3 (per channel), found 2"
    );
    let e = dataset_err("format = \"images\"\npath = \"p\"\nresize = [8, 8]\nstd = [1, 0, 1]");
    assert_eq!(e.key.as_deref(), Some("datasets.d.std[1]"));
}

#[test]
fn keys_of_other_formats_are_errors_not_ignored() {
    let e = dataset_err("format = \"npz\"\npath = \"d.npz\"\nresize = [8, 8]");
    assert_eq!(e.kind, ConfigErrorKind::Conflict);
    assert_eq!(
        e.message,
        "`resize` applies only to `images` datasets, this one is `npz`"
    );
    let e = dataset_err("format = \"npy\"\npath = \"d.npy\"\nseed = 3");
    assert_eq!(
        e.message,
        "`seed` applies only to `random` datasets, this one is `npy`"
    );
}

#[test]
fn samples_must_be_at_least_one() {
    assert_eq!(
        dataset_err("format = \"npz\"\npath = \"d.npz\"\nsamples = 0").to_string(),
        "/proj/quantize.toml:4:11: key `datasets.d.samples`: expected an integer >= 1, found 0"
    );
}

#[test]
fn random_range_must_be_ordered_and_seed_non_negative() {
    let e = dataset_err("format = \"random\"\nrange = [1, -1]");
    assert_eq!(e.key.as_deref(), Some("datasets.d.range"));
    let e = dataset_err("format = \"random\"\nseed = -1");
    assert_eq!(e.key.as_deref(), Some("datasets.d.seed"));
}

#[test]
fn single_array_datasets_map_other_inputs_to_defined_datasets() {
    let e = dataset_err("format = \"npy\"\npath = \"a.npy\"\ninputs = { \"b:0\" = \"other\" }");
    assert_eq!(e.key.as_deref(), Some("datasets.d.inputs.\"b:0\""));
    assert!(e.message.contains("`other` is not one"), "{e}");
    parse_ok(
        "[datasets.a]\nformat = \"npy\"\npath = \"a.npy\"\ninputs = { \"b:0\" = \"b\" }\n\
         [datasets.b]\nformat = \"random\"\n[models.m]\nsource = \"m\"\nmodes = [\"int8\"]\ndataset = \"a\"\n",
    );
}

// ---- locations ----

#[test]
fn columns_count_characters_not_bytes() {
    let text = "# ü\nkey = \"é\" x";
    assert_eq!(
        Location::of_offset(text, text.len() - 1),
        Location {
            line: 2,
            column: 11
        }
    );
    assert_eq!(
        Location::of_offset(text, 3),
        Location { line: 1, column: 3 }
    );
    assert_eq!(
        Location::of_offset(text, 10_000),
        Location {
            line: 2,
            column: 12
        }
    );
}

// ---- the documented example ----

#[test]
fn quantize_toml_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("quantize.toml.example");
    let config = match load(&path) {
        Ok(config) => config,
        Err(e) => panic!("{e}"),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mlp = &config.models["digits_mlp"];
    assert_eq!(
        mlp.source,
        root.join("tests/fixtures/models/digits_mlp.tflite")
    );
    assert_eq!(
        mlp.modes,
        vec![Mode::Dynamic, Mode::Float16, Mode::Int8, Mode::Int16x8]
    );
    let digits = mlp.dataset.as_ref().and_then(|d| config.datasets.get(d));
    assert_eq!(
        digits.and_then(|d| d.path.clone()),
        Some(root.join("tests/fixtures/data/digits_mlp_calib.npz"))
    );

    let strict = config
        .models
        .values()
        .find(|m| m.name != "digits_mlp" && m.source == mlp.source);
    let strict = match strict {
        Some(m) => m.quant_options(Mode::Int8),
        None => panic!("the example declares no second model on the same source"),
    };
    assert!(!strict.allow_float_fallback);
    assert_eq!(
        (strict.inference_input_type, strict.inference_output_type),
        (IoType::Int8, IoType::Int8)
    );
}

#[test]
fn dotted_key_tables_name_missing_and_unknown_keys() {
    assert_eq!(
        message("models.a.source = \"x\"\n"),
        "/proj/quantize.toml:1:8: key `models.a.modes`: required key is missing"
    );
    let e =
        parse_err("models.a.source = \"x\"\nmodels.a.modes = [\"dynamic\"]\nmodels.a.foo = 1\n");
    assert_eq!(
        (e.key.as_deref(), e.location),
        (
            Some("models.a.foo"),
            Some(Location {
                line: 3,
                column: 10
            })
        )
    );
}

#[test]
fn types_are_named_in_toml_words() {
    let resize = dataset_err("format = \"images\"\npath = \"p\"\nresize = [1.5, 2]");
    assert_eq!(resize.message, "expected an integer, found float `1.5`");
    assert_eq!(resize.key.as_deref(), Some("datasets.d.resize[0]"));
    let modes = parse_err("[models.a]\nsource = \"x\"\nmodes = \"int8\"\n");
    assert_eq!(modes.message, "expected an array, found string \"int8\"");
    let table = parse_err("[models]\na = 1\n");
    assert_eq!(
        (table.key.as_deref(), table.message.as_str()),
        (Some("models.a"), "expected a table, found integer `1`")
    );
    let mean = dataset_err("format = \"images\"\npath = \"p\"\nresize = [2, 2]\nmean = [\"a\"]");
    assert_eq!(mean.message, "expected a number, found string \"a\"");
}

// ---- evaluation datasets and accuracy targets ----

const EVAL_MODEL: &str = r#"
[datasets.digits]
format = "npz"
path = "data/digits.npz"

[datasets.held_out]
format = "npz"
path = "data/eval.npz"
labels = "y"
label_output = 1

[models.m]
source = "m.tflite"
modes = ["int8", "dynamic"]
dataset = "digits"
eval = "held_out"
"#;

#[test]
fn eval_labels_and_targets_are_read() {
    let config = parse_ok(&format!(
        "{EVAL_MODEL}target_sqnr_db = 30\nmax_top1_drop = 0.01\n"
    ));
    let held_out = &config.datasets["held_out"];
    assert_eq!(held_out.labels.as_deref(), Some("y"));
    assert_eq!(held_out.label_output, Some(1));
    let m = &config.models["m"];
    assert_eq!(m.eval.as_deref(), Some("held_out"));
    assert_eq!(
        m.target,
        Some(AccuracyTarget {
            sqnr_db: Some(30.0),
            max_top1_drop: Some(0.01)
        })
    );
}

#[test]
fn eval_must_name_a_dataset() {
    let text = EVAL_MODEL.replace("eval = \"held_out\"", "eval = \"heldout\"");
    let msg = message(&text);
    assert!(
        msg.contains("quantize.toml:16:8")
            && msg.contains("models.m.eval")
            && msg.contains("`heldout` is not a dataset"),
        "{msg}"
    );
}

#[test]
fn a_target_without_eval_or_out_of_range_is_an_error() {
    let no_eval = with_model_keys("target_sqnr_db = 30");
    let msg = message(&no_eval);
    assert!(
        msg.contains("models.m.eval") && msg.contains("evaluation dataset"),
        "{msg}"
    );
    let msg = message(&format!("{EVAL_MODEL}max_top1_drop = 1.5\n"));
    assert!(
        msg.contains("models.m.max_top1_drop") && msg.contains("between 0 and 1"),
        "{msg}"
    );
    let msg = message(&format!("{EVAL_MODEL}target_sqnr_db = -3\n"));
    assert!(msg.contains("models.m.target_sqnr_db"), "{msg}");
}

#[test]
fn a_target_needs_an_integer_mode() {
    let text = EVAL_MODEL.replace("modes = [\"int8\", \"dynamic\"]", "modes = [\"dynamic\"]");
    let msg = message(&format!("{text}target_sqnr_db = 30\n"));
    assert!(
        msg.contains("models.m.target_sqnr_db") && msg.contains("int8, int16x8"),
        "{msg}"
    );
}

#[test]
fn labels_apply_only_to_npz_datasets() {
    let text = r#"
[datasets.noise]
format = "random"
labels = "y"

[models.m]
source = "m.tflite"
modes = ["dynamic"]
eval = "noise"
"#;
    let msg = message(text);
    assert!(
        msg.contains("datasets.noise.labels") && msg.contains("npz"),
        "{msg}"
    );
}

// ---- dataset references, resolved once ----

const THREE_IMAGE_DATASETS: &str = r#"
[datasets.a]
format = "images"
path = "a"
resize = [8, 8]
inputs = { x = "b", y = "a" }

[datasets.b]
format = "images"
path = "b"
resize = [8, 8]
inputs = { x = "c" }

[datasets.c]
format = "images"
path = "c"
resize = [8, 8]

[models.m]
source = "m.tflite"
modes = ["int8"]
dataset = "a"
"#;

#[test]
fn inputs_naming_another_dataset_are_resolved_through_chains_at_validation() {
    let config = parse_ok(THREE_IMAGE_DATASETS);
    let a = &config.datasets["a"];
    // `a` maps x to `b`, which maps x on to `c`: `c` feeds x; `y` is `a` itself (no reference).
    assert_eq!(a.feeds.len(), 1);
    assert_eq!(a.feeds["x"].name, "c");
    assert!(a.feeds["x"].feeds.is_empty());
    assert_eq!(config.datasets["b"].feeds["x"].name, "c");
    assert!(config.datasets["c"].feeds.is_empty());
    // The job carries the resolved dataset: nothing downstream looks names up again.
    let plan = crate::engine::Plan::new(&config, None);
    assert_eq!(
        plan.jobs[0]
            .dataset
            .as_ref()
            .map(|d| d.feeds["x"].name.as_str()),
        Some("c")
    );
}

#[test]
fn datasets_mapping_an_input_to_each_other_is_an_error_at_the_entry() {
    let text = THREE_IMAGE_DATASETS.replace(
        "path = \"c\"\nresize = [8, 8]\n",
        "path = \"c\"\nresize = [8, 8]\ninputs = { x = \"a\" }\n",
    );
    let e = parse_err(&text);
    assert_eq!(e.key.as_deref(), Some("datasets.a.inputs.x"));
    assert_eq!(e.location.map(|l| l.line), Some(6));
    assert!(
        e.message.contains(
            "input `x` is mapped from dataset to dataset in a cycle (`a` -> `b` -> `c` -> `a`)"
        ),
        "{e}"
    );
}

#[test]
fn dataset_origin_records_where_each_key_is_written() {
    let config = parse_ok(THREE_IMAGE_DATASETS);
    let origin = &config.datasets["b"].origin;
    assert_eq!(origin.table, "datasets.b");
    assert_eq!(origin.config, Path::new(FILE));
    assert_eq!(origin.keys["path"].line, 10);
    assert_eq!(origin.keys["inputs.x"].line, 12);
}
