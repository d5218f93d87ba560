//! Reporting panics to the node: a Wasm guest that panics traps, and the trap alone says
//! nothing of why. The hook hands the message to `rwc.panic` first, so the caller sees it.

use std::any::Any;
use std::panic::Location;
use std::sync::Once;

use crate::abi;

/// Installs the hook once; every entry point into the guest calls this first.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            abi::report_panic(&message(info.payload(), info.location()));
        }));
    });
}

/// `panicked at src/lib.rs:3:5:\nthe message`, as Rust's default hook prints it.
pub(crate) fn message(payload: &dyn Any, location: Option<&Location<'_>>) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.as_str()
    } else {
        "Box<dyn Any>"
    };
    match location {
        Some(at) => format!("panicked at {at}:\n{text}"),
        None => format!("panicked:\n{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_has_location_and_text() {
        let at = Location::caller();
        let s = message(&"boom", Some(at));
        assert_eq!(
            s,
            format!(
                "panicked at {}:{}:{}:\nboom",
                at.file(),
                at.line(),
                at.column()
            )
        );
        assert_eq!(message(&String::from("owned"), None), "panicked:\nowned");
        assert_eq!(message(&42u8, None), "panicked:\nBox<dyn Any>");
    }

    #[test]
    fn hook_reports_the_panic_message() {
        install_hook();
        install_hook();
        let line = line!() + 1;
        let _ = std::panic::catch_unwind(|| panic!("inside"));
        // Back to the default hook, so other tests' panics print as usual.
        let _ = std::panic::take_hook();
        let reported = abi::take_panics_for_tests();
        assert_eq!(reported.len(), 1, "{reported:?}");
        assert!(
            reported[0].contains(&format!("panic.rs:{line}:")),
            "{reported:?}"
        );
        assert!(reported[0].ends_with(":\ninside"), "{reported:?}");
    }
}
