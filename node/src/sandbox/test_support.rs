//! What the sandbox's unit tests share.

use std::sync::Arc;

use super::{LoadedModule, Sandbox, SandboxConfig};

/// A sandbox with room for two instances.
pub(crate) fn sandbox(config: SandboxConfig) -> Sandbox {
    Sandbox::new(SandboxConfig {
        max_live_instances: 2,
        ..config
    })
    .unwrap()
}

/// Numeric exports, a memory and a global.
pub(crate) const ADD: &str = r#"(module
    (memory (export "memory") 1)
    (global (export "counter") (mut i64) (i64.const 0))
    (func $add (export "add") (param i32 i32) (result i32)
        local.get 0 local.get 1 i32.add)
    (func (export "scale") (param f64) (result f64)
        local.get 0 f64.const 2 f64.mul))"#;

/// A default sandbox with [`ADD`] loaded.
pub(crate) fn with_add() -> (Sandbox, Arc<LoadedModule>) {
    let sandbox = sandbox(SandboxConfig::default());
    let module = sandbox.load(ADD.as_bytes()).unwrap();
    (sandbox, module)
}
