//! `.ci/run`: CI runs the README's test command, read from the README itself. Checked
//! with `--print` on this repository's README and on READMEs written to show its rules.

use std::path::Path;
use std::process::Command;

use crate::server::{repo_path, temp_dir};

/// `.ci/run --print` in `root`: its exit code, stdout and stderr.
fn print_in(root: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(root.join(".ci/run"))
        .arg("--print")
        .output()
        .expect("run .ci/run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of `.ci/run` beside a README.md holding `readme`.
fn with_readme(readme: &str) -> std::path::PathBuf {
    let root = temp_dir();
    std::fs::create_dir_all(root.join(".ci")).unwrap();
    std::fs::copy(repo_path(".ci/run"), root.join(".ci/run")).unwrap();
    std::fs::write(root.join("README.md"), readme).unwrap();
    root
}

#[test]
fn ci_runs_the_readmes_test_command() {
    let (code, command, stderr) = print_in(&repo_path(""));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(command, "tests/run\n");
}

#[test]
fn the_command_is_the_first_block_after_test_it_whatever_its_language() {
    let root = with_readme(
        "**Run it**\n```sh\ncargo run\n```\n**Test it** (all of it):\n\n```bash\r\necho one\r\necho two\r\n```\r\n\n```sh\nnot this\n```\n",
    );
    let (code, command, stderr) = print_in(&root);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(command, "echo one\necho two\n");
}

#[test]
fn a_readme_without_a_test_command_fails_and_says_why() {
    for readme in [
        "no command here\n",
        "**Test it**\njust words\n",
        "**Test it**\n```sh\ntests/run\n",
        "**Test it**\n```sh\n```\n",
    ] {
        let (code, command, stderr) = print_in(&with_readme(readme));
        assert_eq!(code, Some(2), "{readme:?}: {stderr}");
        assert!(command.is_empty(), "{readme:?}: {command}");
        assert!(stderr.contains("README.md"), "{readme:?}: {stderr}");
    }
}
