//! The command reference (`docs/cli.md`), generated from the clap command tree so it
//! cannot drift from the binary: every command, its about text, usage line and each
//! option with its help, value name, default, environment variable and possible values.
//!
//! It reads only what clap knows (the doc comments in `cli.rs` are the help text); it
//! prints nothing and writes no file. The integration test `tests/it/cli_docs.rs` compares
//! the committed file with [`markdown`] and rewrites it when asked to; the man pages in
//! `docs/man/` come from clap_mangen in the same test.

use std::fmt::Write as _;

use clap::{Arg, ArgAction, Command};

/// The Markdown reference for `cmd` (normally `Cli::command()`) and all its subcommands.
pub fn markdown(cmd: &Command) -> String {
    let mut root = cmd.clone();
    // Building propagates global options, bin names ("resil lab up") and versions to
    // every subcommand, as the parser does before parsing.
    root.build();
    let name = root.get_name().to_string();

    let mut out = String::new();
    let _ = writeln!(out, "# `{name}` command reference");
    out.push('\n');
    out.push_str(
        "<!-- Generated from the clap definitions in src/cli.rs by src/cli_docs.rs; do not edit.\n     \
         Regenerate: RESIL_UPDATE_DOCS=1 cargo nextest run -E 'test(/cli_reference/)' -->\n\n",
    );
    if let Some(about) = about(&root) {
        let _ = writeln!(out, "{}\n", escape(&about));
    }
    let _ = writeln!(out, "Usage: `{}`\n", usage(&mut root));

    let globals: Vec<&Arg> = root
        .get_arguments()
        .filter(|a| a.is_global_set() && shown(a))
        .collect();
    if !globals.is_empty() {
        out.push_str(
            "## Global options\n\nEvery command accepts these, before or after its name. \
             `-h` prints a short help, `--help` the long one",
        );
        if root.get_version().is_some() {
            out.push_str("; `-V`/`--version` prints the version");
        }
        out.push_str(".\n\n");
        for arg in globals {
            write_arg(&mut out, arg, false);
        }
        out.push('\n');
    }

    out.push_str("## Commands\n\n");
    write_index(&mut out, &name, visible_subcommands(&root));

    let inherited = global_ids(&root, &[]);
    for sub in visible_subcommands(&root) {
        write_command(&mut out, sub, &name, 2, &inherited);
    }
    // One trailing newline, as editors and `git diff` expect.
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// A list of `subs` of the command at `parent`, each linked to its section, with its
/// one-line summary.
fn write_index<'a>(out: &mut String, parent: &str, subs: impl Iterator<Item = &'a Command>) {
    for sub in subs {
        let summary = sub
            .get_about()
            .map(|a| format!(" — {}", escape(&a.to_string())))
            .unwrap_or_default();
        let path = format!("{parent} {}", sub.get_name());
        let _ = writeln!(out, "- [`{path}`](#{}){summary}", anchor(&path));
    }
    out.push('\n');
}

/// One command's section and, below it, its subcommands' sections one level deeper.
///
/// `inherited` names the global options an ancestor already documented: building copies
/// them into every subcommand, and they are listed where they are declared, not again.
fn write_command(
    out: &mut String,
    cmd: &Command,
    parent: &str,
    depth: usize,
    inherited: &[String],
) {
    let path = format!("{parent} {}", cmd.get_name());
    let hashes = "#".repeat(depth.min(6));
    let _ = writeln!(out, "{hashes} `{path}`\n");
    if let Some(about) = about(cmd) {
        let _ = writeln!(out, "{}\n", escape(&about));
    }
    let mut owned = cmd.clone();
    let _ = writeln!(out, "Usage: `{}`\n", usage(&mut owned));

    let positionals: Vec<&Arg> = cmd.get_positionals().filter(|a| shown(a)).collect();
    if !positionals.is_empty() {
        out.push_str("Arguments:\n\n");
        for arg in positionals {
            write_arg(out, arg, true);
        }
        out.push('\n');
    }
    let options: Vec<&Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && shown(a))
        .filter(|a| !inherited.iter().any(|id| id == a.get_id().as_str()))
        .collect();
    if !options.is_empty() {
        out.push_str("Options:\n\n");
        for arg in options {
            write_arg(out, arg, true);
        }
        out.push('\n');
    }
    let subs: Vec<&Command> = visible_subcommands(cmd).collect();
    if !subs.is_empty() {
        out.push_str("Subcommands:\n\n");
        write_index(out, &path, subs.iter().copied());
        let inherited = global_ids(cmd, inherited);
        for sub in subs {
            write_command(out, sub, &path, depth + 1, &inherited);
        }
    }
}

/// One list item: `` - `-o, --output <OUTPUT>` — help [default: `table`; values: ...] ``.
/// `note_global` marks an option its subcommands accept too (the root's are introduced
/// as such instead).
fn write_arg(out: &mut String, arg: &Arg, note_global: bool) {
    let mut line = format!("- `{}`", signature(arg));
    let help = arg
        .get_long_help()
        .or_else(|| arg.get_help())
        .map(|h| h.to_string());
    if let Some(help) = help {
        // Multi-paragraph help becomes one item; paragraphs stay apart as line breaks.
        let text = help
            .split("\n\n")
            .map(|p| escape(&p.split_whitespace().collect::<Vec<_>>().join(" ")))
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = write!(line, " — {text}");
    }
    let mut notes = Vec::new();
    let says_repeatable = line.contains("repeatable");
    if matches!(arg.get_action(), ArgAction::Append | ArgAction::Count) && !says_repeatable {
        notes.push("repeatable".to_string());
    }
    if arg.get_action().takes_values() {
        if !arg.is_hide_default_value_set() && !arg.get_default_values().is_empty() {
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            notes.push(format!("default: `{}`", defaults.join(",")));
        }
        if !arg.is_hide_possible_values_set() {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| format!("`{}`", v.get_name()))
                .collect();
            if !values.is_empty() {
                notes.push(format!("values: {}", values.join(", ")));
            }
        }
    }
    if let Some(env) = arg.get_env().filter(|_| !arg.is_hide_env_set()) {
        notes.push(format!("env: `{}`", env.to_string_lossy()));
    }
    if arg.is_required_set() && !arg.is_positional() {
        notes.push("required".to_string());
    }
    if arg.is_global_set() && note_global {
        notes.push("also after a subcommand".to_string());
    }
    if !notes.is_empty() {
        let _ = write!(line, " [{}]", notes.join("; "));
    }
    out.push_str(&line);
    out.push('\n');
}

/// How the argument is written: `-n, --namespace <NS>`, `--force`, `<SCENARIO>`, `[URL]`.
fn signature(arg: &Arg) -> String {
    let value = || {
        let names: Vec<String> = match arg.get_value_names() {
            Some(names) => names.iter().map(|n| n.to_string()).collect(),
            None => vec![arg.get_id().as_str().to_uppercase()],
        };
        names
            .iter()
            .map(|n| format!("<{n}>"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if arg.is_positional() {
        let v = value();
        return if arg.is_required_set() {
            v
        } else {
            format!("[{}]", v.trim_start_matches('<').trim_end_matches('>'))
        };
    }
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(format!("-{short}"));
    }
    if let Some(long) = arg.get_long() {
        names.push(format!("--{long}"));
    }
    let mut sig = names.join(", ");
    if arg.get_action().takes_values() {
        sig.push(' ');
        sig.push_str(&value());
    }
    sig
}

/// `inherited` plus the global options `cmd` declares (which its subcommands accept too).
fn global_ids(cmd: &Command, inherited: &[String]) -> Vec<String> {
    let mut ids = inherited.to_vec();
    ids.extend(
        cmd.get_arguments()
            .filter(|a| a.is_global_set())
            .map(|a| a.get_id().to_string()),
    );
    ids
}

/// The subcommands a user sees: not hidden, and not clap's generated `help` command.
fn visible_subcommands(cmd: &Command) -> impl Iterator<Item = &Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// Whether an argument belongs in the reference: not hidden, and not clap's own
/// `--help`/`--version` (described once in the introduction).
fn shown(arg: &Arg) -> bool {
    !arg.is_hide_set()
        && !matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
}

/// The long about text when there is one (it includes the short one), else the short one.
fn about(cmd: &Command) -> Option<String> {
    cmd.get_long_about()
        .or_else(|| cmd.get_about())
        .map(|a| a.to_string().trim().to_string())
        .filter(|a| !a.is_empty())
}

/// The usage line clap prints, without its `Usage: ` prefix and styling.
fn usage(cmd: &mut Command) -> String {
    let rendered = cmd.render_usage().to_string();
    rendered
        .trim()
        .trim_start_matches("Usage:")
        .trim()
        .to_string()
}

/// The anchor GitHub gives a heading: lower case, spaces to dashes, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// Escapes what Markdown would otherwise take as HTML or emphasis (`<colour>`, `*`),
/// leaving `code spans` alone.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_code = false;
    for c in text.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '<' | '*' | '|' if !in_code => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Parser, Subcommand};

    /// A toy tree with the shapes the real one has: a global flag, a nested command, a
    /// positional, an env var, a default, possible values and a hidden command.
    #[derive(Parser)]
    #[command(name = "toy", about = "A toy CLI.")]
    struct Toy {
        /// Be louder.
        #[arg(short, long, global = true, action = clap::ArgAction::Count)]
        verbose: u8,
        #[command(subcommand)]
        command: ToyCommand,
    }

    #[derive(Subcommand)]
    enum ToyCommand {
        /// Start things.
        Start(StartArgs),
        /// Nested things.
        Group {
            /// Where the group lives.
            #[arg(long, global = true)]
            dir: Option<String>,
            #[command(subcommand)]
            command: GroupCommand,
        },
        #[command(hide = true)]
        Secret,
    }

    #[derive(Subcommand)]
    enum GroupCommand {
        /// The inner one.
        Inner,
    }

    #[derive(Args)]
    struct StartArgs {
        /// The file to start (`<name>.yaml`).
        file: std::path::PathBuf,
        /// How often, e.g. `p99<1s`.
        #[arg(long, default_value = "3", env = "TOY_TIMES")]
        times: u32,
        /// Output format.
        #[arg(short, long, value_parser = ["table", "json"])]
        output: Option<String>,
    }

    fn toy() -> String {
        use clap::CommandFactory;
        markdown(&Toy::command())
    }

    #[test]
    fn every_visible_command_gets_a_section_with_its_usage() {
        let doc = toy();
        assert!(doc.contains("## `toy start`\n\nStart things\n"), "{doc}");
        assert!(doc.contains("Usage: `toy start [OPTIONS] <FILE>`"), "{doc}");
        assert!(doc.contains("### `toy group inner`"), "{doc}");
        assert!(
            doc.contains("- [`toy group inner`](#toy-group-inner)"),
            "{doc}"
        );
        assert!(!doc.contains("secret"), "hidden commands stay out: {doc}");
        assert!(
            !doc.contains("toy help"),
            "clap's help command stays out: {doc}"
        );
    }

    #[test]
    fn options_carry_defaults_env_and_possible_values() {
        let doc = toy();
        assert!(
            doc.contains(
                "- `--times <TIMES>` — How often, e.g. `p99<1s` [default: `3`; env: `TOY_TIMES`]"
            ),
            "{doc}"
        );
        assert!(
            doc.contains("- `-o, --output <OUTPUT>` — Output format [values: `table`, `json`]"),
            "{doc}"
        );
        assert!(
            doc.contains("- `<FILE>` — The file to start (`<name>.yaml`)"),
            "{doc}"
        );
    }

    #[test]
    fn global_options_are_listed_once_not_per_command() {
        let doc = toy();
        assert_eq!(doc.matches("--verbose").count(), 1, "{doc}");
        assert!(
            doc.contains("- `-v, --verbose` — Be louder [repeatable]"),
            "{doc}"
        );
        assert!(
            !doc.contains("- `-h, --help`"),
            "clap's own flags stay out: {doc}"
        );
    }

    #[test]
    fn markdown_specials_outside_code_are_escaped() {
        assert_eq!(escape("p99<1s and `a<b|c`"), "p99\\<1s and `a<b|c`");
        assert_eq!(escape("a * b | c"), "a \\* b \\| c");
    }

    #[test]
    fn anchors_follow_github_heading_ids() {
        assert_eq!(anchor("resil chaos kill-pods"), "resil-chaos-kill-pods");
        assert_eq!(anchor("`resil lab up`"), "resil-lab-up");
    }
}
