//! Bad engine input: cache entries, the lock, model files, names, paths, threads, temp files.
