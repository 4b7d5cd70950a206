//! Runbooks cannot rot: every `resil` command in runbooks/*.md and README.md must parse
//! with the real clap definition, and the runbooks' commands run, top to bottom, in a
//! private world (temporary HOME, XDG dirs and KUBECONFIG; the lab started by the
//! runbook's own `resil lab up` in a temporary state directory).
//!
//! What a runbook's fenced blocks mean to this checker (written after ```` ```sh ````):
//! - nothing: run each command in order; it must exit 0, or the code a trailing
//!   `# exits N` comment names;
//! - `background`: start each command and keep it running (another terminal in the
//!   workshop); a command ending in `# until Ctrl-C` runs until it is interrupted;
//! - `slow`: run only by `scripts/check-runbooks.sh` (`RESIL_RUNBOOKS_FULL=1`), parsed
//!   otherwise;
//! - `real-cluster` (kind, minikube, CI) and `interactive` (runs until Ctrl-C in a
//!   terminal of its own): parsed, never run.
//!
//! HTML comments steer the run without showing in the rendered page:
//! `<!-- runbook: sleep 5s -->` waits; `<!-- runbook: wait -->` waits for the background
//! commands to end, then interrupts (SIGINT, as Ctrl-C) those marked `# until Ctrl-C`,
//! which may then exit 0 or 130. Commands whose program is not installed (kubectl, curl)
//! are skipped with a note.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use resil::cli::Cli;

/// The repository root: runbooks run there (in a copy of its layout) and live there.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether to run the `slow` blocks too (scripts/check-runbooks.sh sets it).
fn full() -> bool {
    std::env::var_os("RESIL_RUNBOOKS_FULL").is_some_and(|v| !v.is_empty() && v != "0")
}

// ------------------------------------------------------------------ reading a runbook

/// One fenced code block or one `<!-- runbook: ... -->` directive, in file order.
#[derive(Debug, PartialEq)]
enum Item {
    Block {
        /// The info string's first word (`sh`, `text`, ...).
        lang: String,
        /// The rest of the info string (`background`, `slow`, ...).
        attrs: Vec<String>,
        /// (1-based line number, text) of each line inside the fence.
        lines: Vec<(usize, String)>,
    },
    Directive {
        line: usize,
        text: String,
    },
}

fn parse_markdown(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut open: Option<(String, Vec<String>, Vec<(usize, String)>)> = None;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let trimmed = line.trim_start();
        if let Some((lang, attrs, lines)) = open.as_mut() {
            if trimmed.starts_with("```") {
                items.push(Item::Block {
                    lang: std::mem::take(lang),
                    attrs: std::mem::take(attrs),
                    lines: std::mem::take(lines),
                });
                open = None;
            } else {
                lines.push((number, line.to_string()));
            }
        } else if let Some(info) = trimmed.strip_prefix("```") {
            let mut words = info.split_whitespace().map(str::to_string);
            let lang = words.next().unwrap_or_default();
            open = Some((lang, words.collect(), Vec::new()));
        } else if let Some(rest) = trimmed.strip_prefix("<!-- runbook:") {
            let text = rest.trim_end().trim_end_matches("-->").trim().to_string();
            items.push(Item::Directive { line: number, text });
        }
    }
    items
}

/// One command of a block: continuation lines (`\`) and here-documents joined.
#[derive(Debug, PartialEq)]
struct ShellCommand {
    line: usize,
    text: String,
}

fn commands(lines: &[(usize, String)]) -> Vec<ShellCommand> {
    let mut out: Vec<ShellCommand> = Vec::new();
    let mut current: Option<ShellCommand> = None;
    let mut heredoc_end: Option<String> = None;
    for (number, line) in lines {
        if let Some(end) = &heredoc_end {
            let cmd = current
                .as_mut()
                .expect("a here-document belongs to a command");
            cmd.text.push('\n');
            cmd.text.push_str(line);
            if line.trim() == end {
                heredoc_end = None;
                out.extend(current.take());
            }
            continue;
        }
        let trimmed = line.trim();
        if current.is_none() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        let cmd = current.get_or_insert_with(|| ShellCommand {
            line: *number,
            text: String::new(),
        });
        if !cmd.text.is_empty() {
            cmd.text.push('\n');
        }
        cmd.text.push_str(line);
        if trimmed.ends_with('\\') {
            continue;
        }
        if let Some(pos) = trimmed.find("<<") {
            let word = trimmed[pos + 2..]
                .trim_start_matches('-')
                .split_whitespace()
                .next();
            if let Some(word) = word {
                heredoc_end = Some(word.trim_matches(|c| c == '\'' || c == '"').to_string());
                continue;
            }
        }
        out.extend(current.take());
    }
    out.extend(current);
    out
}

/// A shell token: a word (quotes removed) or an operator (`|`, `&&`, `>`, ...).
#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Op(String),
}

/// Splits a command line like a POSIX shell does, enough for runbooks: quotes,
/// backslashes, comments and the control and redirection operators.
fn shell_words(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    let flush = |word: &mut String, in_word: &mut bool, tokens: &mut Vec<Token>| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
            },
            '#' if !in_word => {
                // A comment runs to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            c if c.is_whitespace() => flush(&mut word, &mut in_word, &mut tokens),
            '|' | '&' | ';' | '<' | '>' => {
                // `2>` and `2>&1`: the descriptor number belongs to the operator.
                if in_word && (c == '>' || c == '<') && word.chars().all(|d| d.is_ascii_digit()) {
                    word.clear();
                    in_word = false;
                }
                flush(&mut word, &mut in_word, &mut tokens);
                let mut op = c.to_string();
                while let Some(&next) = chars.peek() {
                    if matches!(next, '|' | '&' | '>' | '<') && op.len() < 3 {
                        op.push(next);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Op(op));
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut in_word, &mut tokens);
    tokens
}

/// The argument vectors of every `resil` invocation in a command (also
/// `./target/release/resil`), with redirection targets left out.
fn resil_invocations(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut segment: Vec<String> = Vec::new();
    let mut skip_next = false;
    let mut finish = |segment: &mut Vec<String>| {
        if segment
            .first()
            .is_some_and(|w| w == "resil" || w.ends_with("/resil"))
        {
            out.push(std::mem::take(segment));
        }
        segment.clear();
    };
    for token in shell_words(text) {
        match token {
            Token::Word(w) if skip_next => {
                skip_next = false;
                let _ = w;
            }
            Token::Word(w) => segment.push(w),
            Token::Op(op) if op.contains('>') || op.contains('<') => {
                // The next word is the file (or, after `>&`, the descriptor).
                skip_next = true;
            }
            Token::Op(_) => finish(&mut segment),
        }
    }
    finish(&mut segment);
    out
}

/// The exit code a trailing `# exits N` comment promises (default 0).
fn expected_exit(text: &str) -> i32 {
    text.rsplit_once("# exits ")
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether the command is one a presenter stops with Ctrl-C.
fn until_ctrl_c(text: &str) -> bool {
    text.trim_end().ends_with("# until Ctrl-C")
}

// ------------------------------------------------------------------ running a runbook

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
            // Interrupted, a command may say so with 130 (see src/exit.rs).
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
fn run_runbook(name: &str) {
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
fn wait_for_free_node_port() {
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

// ------------------------------------------------------------------ the tests

/// Markdown files whose `resil` commands must parse: every runbook and the README.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = fs::read_dir(repo().join("runbooks"))
        .expect("runbooks/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    docs.push(repo().join("README.md"));
    docs
}

#[test]
fn every_resil_command_in_the_runbooks_and_readme_parses_with_the_real_cli() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = fs::read_to_string(&doc).expect("readable");
        let name = doc
            .strip_prefix(repo())
            .unwrap_or(&doc)
            .display()
            .to_string();
        for item in parse_markdown(&text) {
            let Item::Block { lang, lines, .. } = item else {
                continue;
            };
            if lang != "sh" {
                continue;
            }
            for cmd in commands(&lines) {
                for argv in resil_invocations(&cmd.text) {
                    checked += 1;
                    if let Some(e) = parse_error(&argv) {
                        failures.push(format!("{name}:{}: `{}`: {e}", cmd.line, cmd.text));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked >= 20,
        "only {checked} resil commands found: is the parser broken?"
    );
}

/// Parses one `resil` argument vector with the real CLI; `--help`/`--version` count as
/// parsing.
fn parse_error(argv: &[String]) -> Option<String> {
    use clap::error::ErrorKind::{DisplayHelp, DisplayVersion};
    match Cli::try_parse_from(argv) {
        Err(e) if !matches!(e.kind(), DisplayHelp | DisplayVersion) => Some(e.to_string()),
        _ => None,
    }
}

#[test]
fn the_github_actions_example_is_a_workflow_whose_resil_commands_parse() {
    let path = repo().join("docs/github-actions.yml");
    let text = fs::read_to_string(&path).expect("docs/github-actions.yml exists");
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("valid YAML");
    let jobs = doc["jobs"].as_object().expect("a workflow has jobs");
    let mut checked = 0;
    let mut uploads = false;
    for job in jobs.values() {
        for step in job["steps"].as_array().expect("a job has steps") {
            uploads |= step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact"));
            let Some(run) = step["run"].as_str() else {
                continue;
            };
            for argv in run.lines().flat_map(resil_invocations) {
                checked += 1;
                if let Some(e) = parse_error(&argv) {
                    panic!("docs/github-actions.yml: `{}`: {e}", argv.join(" "));
                }
            }
        }
    }
    assert!(
        checked >= 3,
        "expected run, report and lab down steps; found {checked}"
    );
    assert!(uploads, "the example must upload the reports");
    for report in ["-o junit", "-o html"] {
        assert!(text.contains(report), "the example must render {report}");
    }
}

#[test]
fn the_readme_lists_every_scenario_file() {
    let readme = fs::read_to_string(repo().join("README.md")).expect("README.md");
    let mut missing = Vec::new();
    for entry in fs::read_dir(repo().join("scenarios")).expect("scenarios/") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".yaml") && !readme.contains(&format!("`scenarios/{name}`")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "README.md's scenario table does not list: {} (add a row for each)",
        missing.join(", ")
    );
}

#[test]
fn runbook_blue_green_hpa_failover_runs_on_a_lab() {
    wait_for_free_node_port();
    run_runbook("blue-green-hpa-failover.md");
}

#[test]
fn runbook_cost_runs() {
    if full() {
        wait_for_free_node_port();
    }
    run_runbook("cost.md");
}

#[test]
fn runbook_blocks_and_directives_are_read_in_order() {
    let md = "intro\n```sh background\nresil watch   # until Ctrl-C\n```\n\
              <!-- runbook: sleep 1s -->\n```text\nout\n```\n";
    assert_eq!(
        parse_markdown(md),
        vec![
            Item::Block {
                lang: "sh".into(),
                attrs: vec!["background".into()],
                lines: vec![(3, "resil watch   # until Ctrl-C".into())],
            },
            Item::Directive {
                line: 5,
                text: "sleep 1s".into()
            },
            Item::Block {
                lang: "text".into(),
                attrs: vec![],
                lines: vec![(7, "out".into())],
            },
        ]
    );
}

#[test]
fn commands_join_continuations_and_here_documents_and_skip_comments() {
    let lines: Vec<(usize, String)> = [
        "# a comment",
        "resil load \\",
        "  --rate 10",
        "",
        "cat > p.yaml <<'EOF'",
        "name: x",
        "EOF",
        "resil cost --pricing p.yaml",
    ]
    .iter()
    .enumerate()
    .map(|(i, l)| (i + 1, l.to_string()))
    .collect();
    let cmds = commands(&lines);
    assert_eq!(cmds.len(), 3, "{cmds:?}");
    assert_eq!(cmds[0].line, 2);
    assert_eq!(cmds[1].text, "cat > p.yaml <<'EOF'\nname: x\nEOF");
    assert_eq!(cmds[2].line, 8);
}

#[test]
fn resil_invocations_are_found_across_pipes_and_redirections() {
    assert_eq!(
        resil_invocations(
            "cargo build && ./target/release/resil run 'a b.yaml' > out.txt 2>&1 | head -3"
        ),
        vec![vec!["./target/release/resil", "run", "a b.yaml"]]
    );
    assert_eq!(
        resil_invocations("resil report results -o junit > report.xml; resil cost # exits 2"),
        vec![
            vec!["resil", "report", "results", "-o", "junit"],
            vec!["resil", "cost"],
        ]
    );
    assert_eq!(
        resil_invocations("resil load \"http://$(minikube ip):30080\" --path '/work?ms=20'"),
        vec![vec![
            "resil",
            "load",
            "http://$(minikube ip):30080",
            "--path",
            "/work?ms=20"
        ]]
    );
}

#[test]
fn exit_and_ctrl_c_annotations_are_read_from_trailing_comments() {
    assert_eq!(
        expected_exit("resil report r --slo 'p99<1us'   # exits 1"),
        1
    );
    assert_eq!(expected_exit("resil cost"), 0);
    assert!(until_ctrl_c("resil watch --out r   # until Ctrl-C"));
    assert!(!until_ctrl_c("resil watch --once"));
}
