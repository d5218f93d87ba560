//! Panics that the code under test catches and turns into an error (a connection does for
//! a panicking method, the node for a panicking instance actor) are still bugs. The fuzzing
//! twins record every panic of the process, caught or not, and fail if one happened while
//! they ran.

use std::sync::{Mutex, Once};

/// Where each panic so far happened (`thread at file:line`), since the first call of
/// [`seen`].
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// How many panics the process has had; the first call starts recording them (it puts a
/// hook in front of the one installed, which still runs).
pub fn seen() -> usize {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let place = info
                .location()
                .map_or_else(|| "?".to_owned(), ToString::to_string);
            let mut panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
            panics.push(format!(
                "thread '{}' at {place}",
                thread.name().unwrap_or("?")
            ));
            drop(panics);
            previous(info);
        }));
    });
    PANICS.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// Panics if any panic happened since [`seen`] returned `before`, naming where.
pub fn assert_none_since(before: usize, during: &str) {
    let panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        panics.len() == before,
        "something panicked {during} (the messages are above), though it was caught: {}",
        panics[before..].join("; ")
    );
}
