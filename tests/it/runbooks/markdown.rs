//! Reading a runbook: its fenced blocks and `<!-- runbook: ... -->` directives in order,
//! the commands in a block, shell words, the `resil` invocations in a command and the
//! trailing `# exits N` / `# until Ctrl-C` annotations.

/// One fenced code block or one `<!-- runbook: ... -->` directive, in file order.
#[derive(Debug, PartialEq)]
pub(super) enum Item {
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

pub(super) fn parse_markdown(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    // The fenced block being read, an `Item::Block` until its closing fence.
    let mut open: Option<Item> = None;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let trimmed = line.trim_start();
        if let Some(Item::Block { lines, .. }) = open.as_mut() {
            if trimmed.starts_with("```") {
                items.extend(open.take());
            } else {
                lines.push((number, line.to_string()));
            }
        } else if let Some(info) = trimmed.strip_prefix("```") {
            let mut words = info.split_whitespace().map(str::to_string);
            open = Some(Item::Block {
                lang: words.next().unwrap_or_default(),
                attrs: words.collect(),
                lines: Vec::new(),
            });
        } else if let Some(rest) = trimmed.strip_prefix("<!-- runbook:") {
            let text = rest.trim_end().trim_end_matches("-->").trim().to_string();
            items.push(Item::Directive { line: number, text });
        }
    }
    items
}

/// One command of a block: continuation lines (`\`) and here-documents joined.
#[derive(Debug, PartialEq)]
pub(super) struct ShellCommand {
    /// 1-based line of the command's first line.
    pub(super) line: usize,
    /// The command as bash gets it.
    pub(super) text: String,
}

pub(super) fn commands(lines: &[(usize, String)]) -> Vec<ShellCommand> {
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
pub(super) enum Token {
    Word(String),
    Op(String),
}

/// Splits a command line like a POSIX shell does, enough for runbooks: quotes,
/// backslashes, comments and the control and redirection operators.
pub(super) fn shell_words(text: &str) -> Vec<Token> {
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
pub(super) fn resil_invocations(text: &str) -> Vec<Vec<String>> {
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
pub(super) fn expected_exit(text: &str) -> i32 {
    text.rsplit_once("# exits ")
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether the command is one a presenter stops with Ctrl-C.
pub(super) fn until_ctrl_c(text: &str) -> bool {
    text.trim_end().ends_with("# until Ctrl-C")
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
