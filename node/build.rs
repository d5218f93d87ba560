//! Records the wasmtime version the node is built with (from the workspace lock file), so
//! `info()` can report it.

fn main() {
    // Read when the script runs, not baked in when it is compiled: a compile cache may
    // hand this script's binary to another checkout.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    let lock = std::path::Path::new(&dir).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let version = text
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"wasmtime\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=RWC_WASMTIME_VERSION={version}");
}
