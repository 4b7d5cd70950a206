//! Running a runbook: each command through bash in a private workspace, background
//! commands in their own process groups (interrupted with SIGINT as Ctrl-C would), every
//! wait bounded, and everything stopped when the workspace is dropped.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::markdown::{
    Item, Token, commands, expected_exit, parse_markdown, shell_words, until_ctrl_c,
};
use super::{full, repo};

/// A background command and what it was started from.
struct Background {
    child: Child,
    what: String,
    interrupt: bool,
    log: PathBuf,
}

/// A private world to run one runbook in: the repository's inputs (scenarios, cost,
/// manifests, tests/fixtures) linked into a temporary working directory, and a HOME,
/// XDG dirs and KUBECONFIG of its own. Dropping it stops what the runbook left running.
struct Workspace {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    path: String,
    background: Vec<Background>,
    logs: usize,
}

impl Workspace {
    fn new() -> Workspace {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().to_path_buf();
        for dir in ["home", "config", "state", "logs", "work"] {
            fs::create_dir_all(root.join(dir)).expect("create dir");
        }
        for input in ["scenarios", "cost", "manifests", "tests", "scripts"] {
            std::os::unix::fs::symlink(repo().join(input), root.join("work").join(input))
                .expect("link repository input");
        }
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_resil"))
            .parent()
            .expect("the binary has a directory")
            .to_path_buf();
        let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .expect("PATH")
        .to_string_lossy()
        .into_owned();
        Workspace {
            _tmp: tmp,
            root,
            path,
            background: Vec::new(),
            logs: 0,
        }
    }

    fn shell(&self, text: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(text)
            .current_dir(self.root.join("work"))
            .env("PATH", &self.path)
            .env("HOME", self.root.join("home"))
            .env("XDG_CONFIG_HOME", self.root.join("config"))
            .env("XDG_STATE_HOME", self.root.join("state"))
            .env("KUBECONFIG", self.root.join("home/kubeconfig"))
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .env_remove("RESIL_LAB_STATE_DIR")
            .env_remove("RESIL_CHAOS_STATE_DIR")
            .stdin(Stdio::null())
            // Its own process group, so Ctrl-C (SIGINT to the group) and clean-up reach
            // everything the command started, as in a terminal.
            .process_group(0);
        cmd
    }

    /// Whether the command's program is on the workspace's PATH (`resil` always is).
    fn installed(&self, program: &str) -> bool {
        program.contains('/')
            || self
                .shell(&format!("command -v '{program}'"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    fn log_file(&mut self) -> PathBuf {
        self.logs += 1;
        self.root.join("logs").join(format!("{}.log", self.logs))
    }

    /// Runs a command to completion (bounded by `limit`) and returns its exit code and
    /// its output (stdout and stderr interleaved, as a terminal shows them).
    fn run(&mut self, text: &str, limit: Duration) -> (Option<i32>, String) {
        let log = self.log_file();
        let file = fs::File::create(&log).expect("log file");
        let mut child = self
            .shell(text)
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("bash runs");
        let code = wait_bounded(&mut child, limit);
        (code, fs::read_to_string(&log).unwrap_or_default())
    }

    fn start(&mut self, text: &str) {
        let log = self.log_file();
        let file = fs::File::create(&log).expect("log file");
        let child = self
            .shell(text)
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("bash runs");
        self.background.push(Background {
            child,
            what: text.to_string(),
            interrupt: until_ctrl_c(text),
            log,
        });
    }

    /// Waits for the background commands that end on their own, then interrupts the
    /// others; returns the failures.
    fn join(&mut self, limit: Duration) -> Vec<String> {
        let mut failures = Vec::new();
        let mut finished = Vec::new();
        let (ending, interrupted): (Vec<_>, Vec<_>) =
            self.background.drain(..).partition(|b| !b.interrupt);
        for mut b in ending {
            let code = wait_bounded(&mut b.child, limit);
            let wanted = vec![expected_exit(&b.what)];
            finished.push((b, code, wanted));
        }
        for mut b in interrupted {
            let _ = killpg(Pid::from_raw(b.child.id() as i32), Signal::SIGINT);
            let code = wait_bounded(&mut b.child, Duration::from_secs(30));
            // Interrupted, a command may say so with 130 (see crates/common/src/exit.rs).
            let wanted = vec![expected_exit(&b.what), 130];
            finished.push((b, code, wanted));
        }
        for (b, code, wanted) in finished {
            let output = fs::read_to_string(&b.log).unwrap_or_default();
            println!("[background] $ {}   (exit {code:?})\n{output}", b.what);
            if !code.is_some_and(|c| wanted.contains(&c)) {
                failures.push(format!(
                    "background `{}` ended with {code:?}, expected one of {wanted:?}:\n{}",
                    b.what,
                    tail(&output)
                ));
            }
        }
        failures
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // A failed step must not leave load, watchers or a lab running on the machine.
        for b in &mut self.background {
            let _ = killpg(Pid::from_raw(b.child.id() as i32), Signal::SIGKILL);
            let _ = b.child.wait();
        }
        if self.root.join("state/resil/lab/lab.pid").exists() {
            let _ = self.run("resil lab down", Duration::from_secs(60));
        }
    }
}

/// Waits for `child` at most `limit`; kills its process group when it overstays.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code().or(Some(128 + 9)),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.wait();
                return None;
            }
        }
    }
}

fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The program a command runs (its first word), to skip commands for tools that are not
/// installed.
fn program(text: &str) -> Option<String> {
    match shell_words(text).into_iter().next() {
        Some(Token::Word(w)) => Some(w),
        _ => None,
    }
}

/// Runs a runbook's runnable blocks in order and panics with every failure found.
pub(super) fn run_runbook(name: &str) {
    let path = repo().join("runbooks").join(name);
    let text = fs::read_to_string(&path).expect("runbook exists");
    let full = full();
    let limit = if full {
        Duration::from_secs(600)
    } else {
        Duration::from_secs(90)
    };
    let mut ws = Workspace::new();
    let mut ran = 0;
    for item in parse_markdown(&text) {
        match item {
            Item::Directive { line, text } => {
                if let Some(d) = text.strip_prefix("sleep ") {
                    let d = humantime::parse_duration(d.trim())
                        .unwrap_or_else(|e| panic!("{name}:{line}: bad sleep `{d}`: {e}"));
                    std::thread::sleep(d);
                } else if text == "wait" {
                    let failures = ws.join(limit);
                    assert!(
                        failures.is_empty(),
                        "{name}:{line}: {}",
                        failures.join("\n")
                    );
                } else {
                    panic!("{name}:{line}: unknown runbook directive `{text}`");
                }
            }
            Item::Block { lang, attrs, lines } if lang == "sh" => {
                let has = |a: &str| attrs.iter().any(|x| x == a);
                if has("real-cluster") || has("interactive") || (has("slow") && !full) {
                    continue;
                }
                for cmd in commands(&lines) {
                    let prog = program(&cmd.text).unwrap_or_default();
                    if prog != "resil" && !ws.installed(&prog) {
                        println!("{name}:{}: skipped, `{prog}` is not installed", cmd.line);
                        continue;
                    }
                    ran += 1;
                    if has("background") {
                        println!("{name}:{}: started $ {}", cmd.line, cmd.text);
                        ws.start(&cmd.text);
                        continue;
                    }
                    let started = Instant::now();
                    let (code, output) = ws.run(&cmd.text, limit);
                    println!(
                        "{name}:{}: $ {}   ({:.1}s, exit {code:?})\n{output}",
                        cmd.line,
                        cmd.text,
                        started.elapsed().as_secs_f64()
                    );
                    let wanted = expected_exit(&cmd.text);
                    assert_eq!(
                        code,
                        Some(wanted),
                        "{name}:{}: `{}` exited {code:?}, the runbook expects {wanted}:\n{}",
                        cmd.line,
                        cmd.text,
                        tail(&output)
                    );
                }
            }
            Item::Block { .. } => {}
        }
    }
    let failures = ws.join(limit);
    assert!(failures.is_empty(), "{name}: {}", failures.join("\n"));
    assert!(ran > 0, "{name}: no command ran");
}

/// Waits until nothing listens on the demo's NodePort, which the lab's Service proxy
/// binds on 127.0.0.1: a lab left running elsewhere would answer in this lab's place.
pub(super) fn wait_for_free_node_port() {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpListener::bind(("127.0.0.1", 30080)).is_err() {
        assert!(
            Instant::now() < deadline,
            "127.0.0.1:30080 stays taken: another lab with the demo deployed is running \
             (`resil lab down` stops yours)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
