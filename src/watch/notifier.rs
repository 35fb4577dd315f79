//! File notifications: OS events or polling, debounced, delivered as messages to the watch loop.

use notify::{PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use notify_debouncer_full::{
    new_debouncer_opt, DebounceEventResult, Debouncer, FileIdCache, RecommendedCache,
};
use std::path::Path;
use std::sync::mpsc::Sender;
use std::time::Duration;

/// Watches folders (non-recursively); stops when dropped.
pub(crate) trait FolderWatcher {
    /// Starts delivering events for `dir`.
    fn watch(&mut self, dir: &Path) -> notify::Result<()>;
    /// Stops delivering events for `dir`.
    fn unwatch(&mut self, dir: &Path) -> notify::Result<()>;
}

impl<T: Watcher, C: FileIdCache> FolderWatcher for Debouncer<T, C> {
    fn watch(&mut self, dir: &Path) -> notify::Result<()> {
        Debouncer::watch(self, dir, RecursiveMode::NonRecursive)
    }

    fn unwatch(&mut self, dir: &Path) -> notify::Result<()> {
        Debouncer::unwatch(self, dir)
    }
}

/// A debounced watcher sending each batch of events through `send`; polls every `poll` if given.
pub(crate) fn start<F>(
    debounce: Duration,
    poll: Option<Duration>,
    send: F,
) -> notify::Result<Box<dyn FolderWatcher>>
where
    F: FnMut(DebounceEventResult) + Send + 'static,
{
    // The debouncer checks its queue four times per window: a burst ends at most a quarter window late. A
    // zero window would make that a busy loop.
    let debounce = debounce.max(Duration::from_millis(4));
    let tick = Some(debounce / 4);
    Ok(match poll {
        None => Box::new(new_debouncer_opt::<_, RecommendedWatcher, _>(
            debounce,
            tick,
            send,
            RecommendedCache::new(),
            notify::Config::default(),
        )?),
        Some(interval) => Box::new(new_debouncer_opt::<_, PollWatcher, _>(
            debounce,
            tick,
            send,
            RecommendedCache::new(),
            // notify's poller compares modification times in whole seconds: a file replaced within the
            // second it was written would be missed. Comparing contents catches every change, at the cost
            // of reading the watched files once per interval.
            notify::Config::default()
                .with_poll_interval(interval)
                .with_compare_contents(true),
        )?),
    })
}

/// A sink for [`start`] that forwards to the watch loop's channel (a closed channel means it is stopping).
pub(crate) fn forward<M: Send + 'static>(
    tx: Sender<M>,
    wrap: fn(DebounceEventResult) -> M,
) -> impl FnMut(DebounceEventResult) + Send + 'static {
    move |result| {
        let _ = tx.send(wrap(result));
    }
}
