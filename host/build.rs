//! Builds the plugins workspace (`plugins/`) for wasm32-wasip2, so that the shipped
//! plugins can be embedded in the binary and the test-only ones are there for the tests.
//! `WASMTPD_PLUGINS_DIR` tells the crate where the `.wasm` files are.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.join("../plugins");
    let wit = manifest_dir.join("../wit");
    for path in [&wit, &plugins.join("Cargo.toml"), &plugins.join("Cargo.lock")] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    for member in [
        "debug-printer",
        "proxy",
        "filter",
        "sink",
        "store",
        "greylist",
        "http-call",
        "rspamd",
        "testing/editor",
        "testing/every-hook",
        "testing/mailboxes",
        "testing/misbehave",
        "testing/no-handler",
        "testing/user-store",
    ] {
        println!("cargo:rerun-if-changed={}", plugins.join(member).display());
    }
    // The README's example plugin, a workspace of its own; built so that tests load it.
    let example = manifest_dir.join("../examples/custom-handler");
    for path in ["Cargo.toml", "Cargo.lock", "src"] {
        println!("cargo:rerun-if-changed={}", example.join(path).display());
    }

    // One target directory for every profile of the host, beside its own, so that
    // `cargo build`, `cargo test` and `cargo clippy` build the plugins only once.
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let target_dir = host_target_dir(&out_dir).unwrap_or(&out_dir).join("plugins");
    for manifest in [plugins.join("Cargo.toml"), example.join("Cargo.toml")] {
        build_for_wasm(&manifest, &target_dir);
    }
    let wasm_dir = target_dir.join(TARGET).join("release");
    println!("cargo:rustc-env=WASMTPD_PLUGINS_DIR={}", wasm_dir.display());
}

/// `cargo build --release --target wasm32-wasip2` of one workspace.
fn build_for_wasm(manifest: &Path, target_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--locked", "--target", TARGET, "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    // What cargo set for the host's own build must not leak into the plugins' build.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        build.env_remove(var);
    }
    let status = build.status().expect("cannot run cargo to build the plugins");
    assert!(
        status.success(),
        "building {} for {TARGET} failed (is the target installed? `rustup toolchain install` adds it)",
        manifest.display()
    );
}

/// The host's target directory: the ancestor of OUT_DIR that cargo tagged as one.
fn host_target_dir(out_dir: &Path) -> Option<&Path> {
    out_dir.ancestors().find(|dir| dir.join("CACHEDIR.TAG").is_file())
}
