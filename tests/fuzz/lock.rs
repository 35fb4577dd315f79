//! Fuzzing the lock reader: never a panic, never a hang.
