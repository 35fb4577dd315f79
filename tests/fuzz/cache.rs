//! Fuzzing the cache reader: never a panic, never a hang.
