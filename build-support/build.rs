// Records the optimisation level this crate is compiled at, so a build script that calibrates in an
// unoptimised build (the default for build dependencies) can say how to fix it.
fn main() {
    let level = std::env::var("OPT_LEVEL").unwrap_or_default();
    println!("cargo:rustc-env=LITEQUANT_BUILD_OPT_LEVEL={level}");
    println!("cargo:rerun-if-changed=build.rs");
}
