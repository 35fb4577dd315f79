fn main() {
    // Quantizes every model x mode of quantize.toml into OUT_DIR and writes OUT_DIR/quantized_models.rs.
    litequant_build::compile("quantize.toml");
}
