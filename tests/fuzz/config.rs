//! Fuzzing the config reader: never a panic, never a hang.
