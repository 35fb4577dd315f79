//! The bad-input catalogue: one case per hostile or careless input, each asserting the exit code, that the
//! message names the file/key/line, that nothing panicked and that earlier artifacts, the lock and the cache
//! are intact.

mod data;
mod engine;
