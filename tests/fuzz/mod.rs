//! Fuzzing beyond the `.tflite` reader (that one is `reader_fuzz`): `quantize.toml`, `.npy`/`.npz`,
//! `quantize.lock` and cache entries. `PROPTEST_CASES` sets the number of cases; committed runs are bounded.

mod cache;
mod config;
mod dataset;
mod lock;
