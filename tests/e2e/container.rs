//! The deployment files, as far as this machine can run them (no container engine runs
//! here; tests/check-deploy validates the files' syntax): the image builds with the
//! README's own steps, and the configurations it and the examples ship serve on the real
//! binary, with the image's HEALTHCHECK command answering. Addresses, directories and
//! Redis are moved to loopback and temporary places; nothing else is changed.

use std::process::Command;

use crate::metrics::get;
use crate::raw::RawClient;
use crate::redis_server::Redis;
use crate::server::{Server, binary, free_port, repo_path, temp_dir, temp_file};

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative)).unwrap()
}

/// `config` with its listener and metrics addresses on loopback (metrics on `metrics_port`)
/// and its directories in a temporary one, whose state directories are world-writable as
/// a Kubernetes emptyDir is (the server must make what it keeps there private).
fn on_loopback(config: &str, metrics_port: u16) -> String {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    for mount in ["state", "state/state"] {
        std::fs::create_dir(dir.join(mount)).unwrap();
        std::fs::set_permissions(dir.join(mount), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let moved = config
        .replace("\"0.0.0.0:2525\"", "\"127.0.0.1:0\"")
        .replace("\"0.0.0.0:9090\"", &format!("\"127.0.0.1:{metrics_port}\""))
        .replace("/var/cache/wasmtpd", &format!("{}/cache", dir.display()))
        .replace("/var/lib/wasmtpd", &format!("{}/state", dir.display()));
    assert!(!moved.contains("\"0.0.0.0:"), "an address left unmoved in {moved}");
    moved
}

/// The words of the Containerfile's instruction `name` (its continuation lines joined).
fn instruction(containerfile: &str, name: &str) -> String {
    let joined = containerfile.replace("\\\n", " ");
    let line = joined.lines().find(|l| l.starts_with(&format!("{name} ")));
    line.unwrap_or_else(|| panic!("no {name} in the Containerfile"))
        .to_owned()
}

#[test]
fn the_image_builds_with_the_readmes_steps() {
    let containerfile = read("Containerfile");
    let readme = read("README.md");
    // README: `rustup toolchain install && cargo run --release`.
    assert!(readme.contains("rustup toolchain install && cargo run --release\n"));
    let build = instruction(&containerfile, "RUN");
    assert!(
        build.starts_with("RUN rustup toolchain install && cargo build --release --locked --bin wasmtpd "),
        "{build}"
    );
    // The runtime stage is not root, and keeps what a server writes in volumes.
    assert!(containerfile.contains("\nUSER 10025:10025\n"));
    let volumes = instruction(&containerfile, "VOLUME");
    for dir in ["/etc/wasmtpd", "/var/lib/wasmtpd/plugins", "/var/cache/wasmtpd"] {
        assert!(volumes.contains(&format!("\"{dir}\"")), "{volumes}");
    }
    // The configuration the image copies in is the one tested below.
    assert!(containerfile.contains("COPY examples/deploy/wasmtpd.toml /etc/wasmtpd/wasmtpd.toml\n"));
}

#[test]
fn the_images_configuration_prints_mail_and_answers_its_healthcheck() {
    let metrics_port = free_port();
    let config = on_loopback(&read("examples/deploy/wasmtpd.toml"), metrics_port);
    let path = temp_file("image.toml", &config);
    let mut server = Server::start_raw(&["--config", path.to_str().unwrap()]);
    let mut client = RawClient::ehlo(server.addr);
    client.send_message("Subject: in a container\r\n\r\nhello\r\n");
    let printed = server.wait_for_messages(1);
    assert!(printed.contains("Subject: in a container"), "{printed}");

    // The HEALTHCHECK's command, as the image runs it, asking this server's metrics port.
    let healthcheck = instruction(&read("Containerfile"), "HEALTHCHECK");
    let command = healthcheck.split("CMD ").nth(1).unwrap();
    // Exec form: a JSON array of plain words.
    let words: Vec<String> = command
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|w| w.trim().trim_matches('"').to_owned())
        .collect();
    assert_eq!(words[0], "wasmtpd");
    assert!(config.contains(&format!("\"127.0.0.1:{metrics_port}\"")), "{config}");
    let args: Vec<String> = words[1..]
        .iter()
        .map(|w| w.replace("127.0.0.1:9090", &format!("127.0.0.1:{metrics_port}")))
        .collect();
    assert!(args.contains(&format!("127.0.0.1:{metrics_port}")), "{args:?}");
    let probe = Command::new(binary()).args(&args).output().unwrap();
    assert!(probe.status.success(), "{probe:?}");
    assert!(String::from_utf8_lossy(&probe.stdout).contains("/healthz: HTTP/1.1 200 OK: alive"));
}

/// The TOML in the Kubernetes manifest's ConfigMap.
fn configmap_toml(manifest: &str) -> String {
    let start = manifest
        .find("  wasmtpd.toml: |\n")
        .expect("the ConfigMap's wasmtpd.toml");
    let body = &manifest[start..];
    body.lines()
        .skip(1)
        .take_while(|l| *l != "---")
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Starts `config` with its Redis host moved to `redis`, and checks that it is ready and
/// counts its rates with the other nodes.
fn serves_with_shared_redis(config: &str, host: &str, redis: &Redis) {
    let metrics_port = free_port();
    let config = on_loopback(config, metrics_port).replace(
        &format!("redis://{host}:6379"),
        &format!("redis://127.0.0.1:{}", redis.port),
    );
    assert!(!config.contains(&format!("//{host}:")), "{config}");
    let mut server = Server::from_config(&config);
    server.wait_for_log("with the other nodes, in Redis");
    let metrics = format!("127.0.0.1:{metrics_port}");
    assert_eq!(get(&metrics, "/readyz").0, "HTTP/1.1 200 OK");
}

#[test]
fn the_compose_nodes_and_the_kubernetes_pods_configurations_serve() {
    let redis = Redis::start();
    serves_with_shared_redis(&read("examples/deploy/node/wasmtpd.toml"), "redis", &redis);
    let pod = configmap_toml(&read("examples/deploy/kubernetes.yaml"));
    assert!(pod.contains("[[listener]]"), "{pod}");
    serves_with_shared_redis(&pod, "wasmtpd-redis", &redis);
}
