//! config (filled in by its own change).
