//! Starts the real binary on a free loopback port and watches its stdout and log.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago (nothing listens there now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A helper process (a DNS, Redis or other server) killed when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Upper bound on any wait in these tests; a shared machine can be slow.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Server {
    child: Child,
    /// How long waits on this server may take.
    wait: Duration,
    pub addr: SocketAddr,
    stdout: Arc<Mutex<String>>,
    log: Arc<Mutex<String>>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_wasmtpd")
}

/// A path under the repository's top level.
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

/// Writes `text` to a fresh file in the temporary directory and returns its path.
pub fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = temp_dir().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A fresh directory under the temporary directory.
pub fn temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(sweep_earlier_runs);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const TEMP_PREFIX: &str = "wasmtpd-e2e-";

/// Removes the directories of test runs that have ended (a run has no hook at its end to
/// remove its own: each left about 300). Only where `/proc` tells which processes live.
fn sweep_earlier_runs() {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMP_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Two listeners: the first runs the `misbehave` plugin in `mode` (with `extra` lines in
/// its table), the second the `sink` plugin.
pub fn misbehave_beside_sink(mode: &str, extra: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"bad\"]\n\
         [[listener]]\naddress = \"127.0.0.1:0\"\nplugins = [\"sink\"]\n\
         [plugin.bad]\nsource = \"{}\"\n{extra}[plugin.bad.settings]\nmode = \"{mode}\"\n",
        plugin_path("misbehave")
    )
}

/// A component built from plugins/ by the host's build script, e.g. `misbehave`.
pub fn plugin_path(name: &str) -> String {
    format!("{}/{}.wasm", env!("WASMTPD_PLUGINS_DIR"), name.replace('-', "_"))
}

impl Server {
    /// The server with `config` as its configuration file and `chain` as the plugin chain.
    pub fn with_config(config: &str, chain: &[&str]) -> Server {
        let path = temp_file("wasmtpd.toml", config);
        let mut args = vec!["--config", path.to_str().unwrap()];
        for plugin in chain {
            args.extend(["--plugin", plugin]);
        }
        Server::start(&args)
    }

    /// The server with exactly `config` as its configuration file (its listeners in it).
    pub fn from_config(config: &str) -> Server {
        let path = temp_file("wasmtpd.toml", config);
        Server::start_raw(&["--config", path.to_str().unwrap()])
    }

    /// `wasmtpd --listen 127.0.0.1:0 ARGS...`, once it logs the address it listens on.
    pub fn start(args: &[&str]) -> Server {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Server::start_raw(&all)
    }

    /// The binary with exactly `args`; they must make it listen on one port.
    pub fn start_raw(args: &[&str]) -> Server {
        Server::start_raw_within(args, WAIT)
    }

    /// As [`Server::start_raw`], for a server that may take up to `wait` to start (one
    /// that compiles big plugins) and its other waits.
    pub fn start_raw_within(args: &[&str], wait: Duration) -> Server {
        let mut command = Command::new(binary());
        command.args(args);
        Server::start_command(command, wait)
    }

    /// `command`, which runs the binary (perhaps through a shell that sets limits first),
    /// once it logs the address it listens on.
    pub fn start_command(command: Command, wait: Duration) -> Server {
        let mut server = Server::spawn(command, wait);
        server.wait_until_listening();
        server
    }

    /// `command` started, without waiting for anything (see [`Server::wait_until_listening`]).
    pub fn spawn(mut command: Command, wait: Duration) -> Server {
        let mut child = command
            .env("WASMTPD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wasmtpd");
        let stdout = Arc::new(Mutex::new(String::new()));
        let log = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().unwrap(), Arc::clone(&stdout));
        collect(child.stderr.take().unwrap(), Arc::clone(&log));
        Server {
            child,
            wait,
            addr: "0.0.0.0:0".parse().unwrap(),
            stdout,
            log,
        }
    }

    /// Waits until the log names the address it listens on, and keeps it.
    pub fn wait_until_listening(&mut self) {
        let line = self.wait_for_log("listening on ");
        let addr = line.split("listening on ").nth(1).unwrap().split(' ').next().unwrap();
        // A server whose first listener is a Unix socket has no TCP address to keep.
        if !addr.starts_with("unix:") {
            self.addr = addr.parse().unwrap_or_else(|_| panic!("bad address in {line:?}"));
        }
    }

    /// Every address the log says the server listens on, once `count` are there.
    pub fn addresses(&mut self, count: usize) -> Vec<SocketAddr> {
        self.wait_for_log_count("listening on ", count);
        self.log()
            .lines()
            .filter_map(|l| l.split("listening on ").nth(1))
            .filter_map(|rest| rest.split(' ').next()?.parse().ok())
            .collect()
    }

    /// User plus system CPU time the server process has used, all its threads.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("read /proc stat");
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // The kernel counts in USER_HZ, 100 a second on Linux.
        Duration::from_millis(ticks * 10)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A memory figure of the server process in MiB, from /proc: `VmRSS` (resident now)
    /// or `VmHWM` (the most it has been).
    pub fn memory_mib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("read /proc status");
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in {status}"));
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib / 1024
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log has a line containing `needle`, and returns that line.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        let log = Arc::clone(&self.log);
        self.wait_for(|| {
            log.lock()
                .unwrap()
                .lines()
                .find(|l| l.contains(needle))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{}", self.log()))
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until at least `count` log lines contain `needle`; returns the last of them.
    pub fn wait_for_log_count(&mut self, needle: &str, count: usize) -> String {
        let log = Arc::clone(&self.log);
        self.wait_for(|| {
            let log = log.lock().unwrap();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
            (lines.len() >= count).then(|| lines.last().unwrap().to_string())
        })
        .unwrap_or_else(|| panic!("fewer than {count} {needle:?} in the log:\n{}", self.log()))
    }

    /// Sends SIGHUP.
    pub fn hangup(&self) {
        self.signal("-HUP");
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGKILL: the process gets no chance to write anything more.
    pub fn kill(&mut self) {
        // At once (std sends SIGKILL itself): a `kill` command takes milliseconds to start.
        self.child.kill().unwrap();
    }

    fn signal(&self, flag: &str) {
        let status = Command::new("kill")
            .arg(flag)
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until stdout contains `needle`, and returns stdout.
    pub fn wait_for_stdout(&mut self, needle: &str) -> String {
        let stdout = Arc::clone(&self.stdout);
        self.wait_for(|| Some(stdout.lock().unwrap().clone()).filter(|s| s.contains(needle)))
            .unwrap_or_else(|| panic!("no {needle:?} on stdout:\n{}\nlog:\n{}", self.stdout(), self.log()))
    }

    /// Waits until stdout holds `count` printed messages, and returns stdout.
    pub fn wait_for_messages(&mut self, count: usize) -> String {
        let stdout = Arc::clone(&self.stdout);
        self.wait_for(|| {
            let text = stdout.lock().unwrap().clone();
            (text.matches("------------ END MESSAGE ------------").count() >= count).then_some(text)
        })
        .unwrap_or_else(|| {
            panic!(
                "fewer than {count} messages printed:\n{}\nlog:\n{}",
                self.stdout(),
                self.log()
            )
        })
    }

    fn wait_for<T>(&mut self, mut check: impl FnMut() -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + self.wait;
        while Instant::now() < deadline {
            if let Some(found) = check() {
                return Some(found);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Collect what the pipes still hold before giving up.
                std::thread::sleep(Duration::from_millis(100));
                eprintln!("wasmtpd exited early with {status}");
                return check();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "wasmtpd did not exit; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
}
