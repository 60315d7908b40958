//! The plugin author's tools: `wasmtpd new` writes a folder that builds and runs as its
//! README says, in each language; `wasmtpd check` says what a component is, or why it
//! cannot be a plugin.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::server::{binary, plugin_path, repo_path, temp_dir};

fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every hook, so that every stub is built.
const ALL_HOOKS: &str = "connect,helo,mail,rcpt,data,auth,rset,quit";

/// `wasmtpd new LANGUAGE NAME --hooks` (all of them) in a fresh directory; the folder.
fn new_plugin(language: &str, name: &str) -> PathBuf {
    let work = temp_dir();
    let out = run(&work, binary(), &["new", language, name, "--hooks", ALL_HOOKS]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("wrote {name}/")), "{said}");
    // The suite loads both cores (other tests compile plugins meanwhile): a fresh CPython
    // in a test build may take longer than the default 1 s budget to start and answer.
    let config = work.join(name).join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&config).unwrap();
    let table = format!("[plugin.{name}]\n");
    assert!(text.contains(&table), "{text}");
    std::fs::write(
        &config,
        text.replace(&table, &format!("{table}time_budget_ms = 10000\n")),
    )
    .unwrap();
    work.join(name)
}

/// Replaces the rcpt stub's answer with a refusal of one recipient, so that the test
/// sees the plugin's own code answer.
fn refuse_at_rcpt(dir: &Path, file: &str, stub: &str, refusal: &str) {
    let path = dir.join(file);
    let source = std::fs::read_to_string(&path).unwrap();
    let at = source
        .find(stub)
        .unwrap_or_else(|| panic!("no {stub:?} in {file}:\n{source}"));
    let answer = source[at..]
        .find("None")
        .or_else(|| source[at..].find("undefined"))
        .unwrap()
        + at;
    let word = if source[answer..].starts_with("None") {
        "None"
    } else {
        "undefined"
    };
    let patched = format!("{}{}{}", &source[..answer], refusal, &source[answer + word.len()..]);
    std::fs::write(&path, patched).unwrap();
}

/// The README's test line, run as written; then a recipient the plugin refuses.
fn deliver_as_the_readme_says(dir: &Path, name: &str, component: &str) {
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let test = readme
        .lines()
        .find(|l| l.starts_with("- Test: `wasmtpd "))
        .unwrap_or_else(|| panic!("no test line in\n{readme}"));
    let args: Vec<&str> = test["- Test: `wasmtpd ".len()..]
        .split('`')
        .next()
        .unwrap()
        .split(' ')
        .collect();
    let out = Command::new(binary()).args(&args).current_dir(dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "hello: 109 octets from <alice@example.org> via 127.0.0.1 for bob@example.com plugin=\"{name}\""
        )),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Subject: A first message"),
        "debug-printer prints it next:\n{stdout}"
    );

    let out = Command::new(binary())
        .args([
            "--config",
            &format!("{name}.toml"),
            "--deliver",
            "message.eml",
            "--to",
            "nobody@example.com",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("S: 550 5.1.1 no such user here"), "{stderr}");

    // The README's own check line, with room for a test machine whose cores are busy.
    let check = readme
        .lines()
        .find(|l| l.starts_with("- Check: `wasmtpd "))
        .unwrap_or_else(|| panic!("no check line in\n{readme}"));
    let mut args: Vec<&str> = check["- Check: `wasmtpd ".len()..]
        .split('`')
        .next()
        .unwrap()
        .split(' ')
        .collect();
    assert!(args.contains(&component), "{check}");
    args.extend(["--time-budget-ms", "10000"]);
    let out = run(dir, binary(), &args);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("  hooks: connect, helo, mail, rcpt, data, auth, rset, quit\n"),
        "{said}"
    );
    // With hooks, the stub does not say it keeps no state: the author decides.
    assert!(said.contains("  stateless: no"), "{said}");
    assert!(said.contains("wasmtpd:plugin/handler@0.1.0"), "{said}");
}

#[test]
fn a_new_rust_plugin_builds_and_answers() {
    let dir = new_plugin("rust", "rust-demo");
    refuse_at_rcpt(
        &dir,
        "src/lib.rs",
        "fn on_rcpt(",
        "(_rcpt_to == \"nobody@example.com\").then(|| \"550 5.1.1 no such user here\".into())",
    );
    // Its own target directory, in this repository's (kept between runs, so only the
    // first run builds wit-bindgen).
    let target = repo_path("target/scaffold-test");
    let out = Command::new("cargo")
        .args(["build", "--target", "wasm32-wasip2", "--release"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Where the README and the configuration expect it.
    let built = dir.join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&built).unwrap();
    std::fs::copy(
        target.join("wasm32-wasip2/release/rust_demo.wasm"),
        built.join("rust_demo.wasm"),
    )
    .unwrap();
    deliver_as_the_readme_says(&dir, "rust-demo", "target/wasm32-wasip2/release/rust_demo.wasm");
}

/// What examples/build-plugins installed (tests/run runs it): the new folders use it
/// instead of installing their own, so that the tests need no network here; the first-run
/// install of `build.sh` and `npm install` is what examples/build-plugins does too.
fn example_toolchain(relative: &str) -> PathBuf {
    let path = repo_path(relative);
    assert!(
        path.exists(),
        "{} is missing: run examples/build-plugins first (tests/run does)",
        path.display()
    );
    path
}

#[test]
fn a_new_python_plugin_builds_and_answers() {
    let dir = new_plugin("python", "py-demo");
    refuse_at_rcpt(
        &dir,
        "app.py",
        "def on_rcpt(",
        "(\"550 5.1.1 no such user here\" if rcpt_to == \"nobody@example.com\" else None)",
    );
    std::os::unix::fs::symlink(example_toolchain("target/plugins/examples/venv"), dir.join(".venv")).unwrap();
    run(&dir, "./build.sh", &[]);
    deliver_as_the_readme_says(&dir, "py-demo", "py-demo.wasm");
}

#[test]
fn a_new_javascript_plugin_builds_and_answers() {
    let dir = new_plugin("js", "js-demo");
    refuse_at_rcpt(
        &dir,
        "app.js",
        "onRcpt(",
        "(rcptTo === \"nobody@example.com\" ? \"550 5.1.1 no such user here\" : undefined)",
    );
    std::os::unix::fs::symlink(
        example_toolchain("examples/js-recipient-logger/node_modules"),
        dir.join("node_modules"),
    )
    .unwrap();
    run(&dir, "npm", &["run", "build"]);
    deliver_as_the_readme_says(&dir, "js-demo", "js-demo.wasm");
}

#[test]
fn new_refuses_a_bad_name_an_unknown_hook_and_an_existing_folder() {
    let work = temp_dir();
    let fails = |args: &[&str], message: &str| {
        let out = Command::new(binary()).args(args).current_dir(&work).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: no {message:?} in\n{stderr}");
    };
    fails(&["new", "rust", "My_Filter"], "\"My_Filter\" is not a plugin name");
    fails(&["new", "rust", "ok", "--hooks", "rcpt,ehlo"], "\"ehlo\" is not a hook");
    std::fs::create_dir(work.join("taken")).unwrap();
    fails(&["new", "js", "taken"], "taken exists already");
    assert!(!work.join("ok").exists(), "nothing is written when refused");
}

#[test]
fn check_says_what_a_component_exports_imports_and_needs() {
    let out = run(&temp_dir(), binary(), &["check", &plugin_path("greylist")]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("greylist.wasm: a wasmtpd plugin, version "), "{said}");
    assert!(said.contains("  starts within memory_mib = 64\n"), "{said}");
    assert!(said.contains("  stateless: no (an instance a session)"), "{said}");
    assert!(said.contains("    wasi:keyvalue/store@0.2.0-draft\n"), "{said}");
    assert!(said.contains("    store = true (the key-value store)\n"), "{said}");
    let out = run(&temp_dir(), binary(), &["check", &plugin_path("sink")]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("  hooks: none\n") && said.contains("  needs no capability granted\n"),
        "{said}"
    );
}

#[test]
fn check_refuses_what_cannot_be_a_plugin_with_the_reason() {
    let refused = |file: &str, reason: &str| {
        let out = Command::new(binary()).args(["check", file]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(reason), "{file}: no {reason:?} in\n{stderr}");
    };
    refused(
        repo_path("README.md").to_str().unwrap(),
        "README.md is not a WebAssembly file",
    );
    refused("/nonexistent/x.wasm", "cannot read /nonexistent/x.wasm");
    // A plugin without process-message.
    refused(
        &plugin_path("no-handler"),
        "does not export wasmtpd:plugin/handler@0.1.0",
    );
}

#[test]
fn the_readmes_hooks_example_builds() {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    let after = &readme[readme.find("To use hooks, write a world").expect("the hooks example")..];
    let code = after.split("```rust\n").nth(1).unwrap().split("```").next().unwrap();
    let wit = repo_path("wit");
    let code = code.replace("path: \"../../wit\"", &format!("path: {:?}", wit.to_str().unwrap()));
    let dir = temp_dir().join("readme-hooks");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/lib.rs"), code).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"readme-hooks\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
         [lib]\ncrate-type = [\"cdylib\"]\n[dependencies]\nwit-bindgen = \"=0.61.1\"\n[workspace]\n",
    )
    .unwrap();
    let out = Command::new("cargo")
        .args(["build", "--target", "wasm32-wasip2", "--release"])
        .env("CARGO_TARGET_DIR", repo_path("target/scaffold-test"))
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_tool_refuses_the_servers_options() {
    let out = Command::new(binary())
        .args(["--listen", "127.0.0.1:0", "check", &plugin_path("sink")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("wasmtpd check does one thing and takes no --listen"),
        "{stderr}"
    );
}

#[test]
fn check_starts_a_component_within_the_memory_it_is_given() {
    // The Python example's CPython does not start in 1 MiB.
    let python = repo_path("target/plugins/examples/subject_filter.wasm");
    let out = Command::new(binary())
        .args(["check", python.to_str().unwrap(), "--memory-mib", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("outgrew its memory cap of 1 MiB"), "{stderr}");
}
