//! Bad data input: datasets, labels, special files, `check` parity with `build`.
