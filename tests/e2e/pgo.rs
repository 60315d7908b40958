//! The release build's profile (`host/pgo`, profile-guided optimisation): cargo runs rustc
//! through `host/pgo/rustc`, which adds the profile to optimised code for x86-64 Linux
//! built without `--target`, and to nothing else; the profile is an indexed LLVM profile.

use std::path::Path;
use std::process::Command;

use crate::server::{repo_path, temp_dir};

/// What `host/pgo/rustc` runs "rustc" with: here `echo`, which prints its arguments.
fn passed_on(args: &[&str]) -> String {
    passed_on_by(&repo_path("host/pgo/rustc"), args)
}

fn passed_on_by(wrapper: &Path, args: &[&str]) -> String {
    let out = Command::new(wrapper)
        .arg("echo")
        .args(args)
        .output()
        .expect("run host/pgo/rustc");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

#[test]
fn optimised_code_for_this_machine_is_built_with_the_profile() {
    let args = [
        "--crate-name",
        "wasmtpd",
        "--edition=2024",
        "-C",
        "opt-level=3",
        "-C",
        "lto=thin",
    ];
    let line = passed_on(&args);
    if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        let profile = repo_path("host/pgo/wasmtpd.profdata").canonicalize().unwrap();
        assert_eq!(line, format!("{} -C profile-use={}", args.join(" "), profile.display()));
    } else {
        assert_eq!(line, args.join(" "));
    }
}

#[test]
fn everything_else_is_built_as_without_the_wrapper() {
    for args in [
        &["-vV"][..],
        &["--crate-name", "wasmtpd", "-C", "opt-level=0"],
        &["--crate-name", "build_script_build", "--crate-type", "bin"],
        &["--crate-name", "sink", "--target", "wasm32-wasip2", "-C", "opt-level=3"],
    ] {
        assert_eq!(passed_on(args), args.join(" "), "{args:?}");
    }
    // Optimised code with a target named, or a profile or instrumentation of its own.
    for extra in [
        &["--target", "x86_64-unknown-linux-gnu"][..],
        &["-Cprofile-generate=/tmp/counts"],
        &["-C", "profile-use=/mine.profdata"],
        &["-C", "instrument-coverage"],
    ] {
        let args = [&["--crate-name", "wasmtpd", "-C", "opt-level=3"][..], extra].concat();
        assert_eq!(passed_on(&args), args.join(" "), "{args:?}");
    }
}

#[test]
fn without_the_profile_file_optimised_code_is_built_as_without_the_wrapper() {
    let dir = temp_dir();
    let wrapper = dir.join("rustc");
    std::fs::copy(repo_path("host/pgo/rustc"), &wrapper).unwrap();
    let args = ["--crate-name", "wasmtpd", "-C", "opt-level=3"];
    assert_eq!(passed_on_by(&wrapper, &args), args.join(" "));
}

#[test]
fn cargo_builds_through_the_wrapper_and_the_profile_is_an_indexed_llvm_profile() {
    let config = std::fs::read_to_string(repo_path(".cargo/config.toml")).unwrap();
    assert!(config.contains("rustc-wrapper = \"host/pgo/rustc\""), "{config}");
    let profile = std::fs::read(repo_path("host/pgo/wasmtpd.profdata")).unwrap();
    assert_eq!(profile.get(..8), Some(&b"\xfflprofi\x81"[..]), "not an indexed profile");
}
