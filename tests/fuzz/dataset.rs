//! Fuzzing the dataset reader: never a panic, never a hang.
