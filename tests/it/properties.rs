//! Property tests: invariants checked on generated input (proptest) rather than on a few
//! hand-picked cases. Here: the timeline reader (`resil::results::timeline::read`), which
//! `resil report` and `resil run` point at files a killed or foreign writer may have left.

use std::path::Path;

use proptest::prelude::*;
use resil::results::ResultsError;
use resil::results::timeline;

/// Real timeline lines of every kind the fixtures hold.
fn real_lines() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results");
    let mut lines = Vec::new();
    for run in ["failover", "partial"] {
        let text = std::fs::read_to_string(dir.join(run).join("timeline.jsonl")).unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    lines
}

/// One line of a timeline file: a real event, a real event cut short or with one byte
/// changed, an empty or blank line, JSON of the wrong shape, or any bytes.
fn line() -> impl Strategy<Value = Vec<u8>> {
    let real = real_lines();
    let n = real.len();
    prop_oneof![
        4 => (0..n).prop_map({
            let real = real.clone();
            move |i| real[i].clone().into_bytes()
        }),
        2 => (0..n, any::<prop::sample::Index>()).prop_map({
            let real = real.clone();
            move |(i, cut)| {
                let bytes = real[i].as_bytes();
                bytes[..cut.index(bytes.len())].to_vec()
            }
        }),
        2 => (0..n, any::<prop::sample::Index>(), any::<u8>()).prop_map({
            let real = real.clone();
            move |(i, at, b)| {
                let mut bytes = real[i].clone().into_bytes();
                let at = at.index(bytes.len());
                bytes[at] = b;
                bytes
            }
        }),
        1 => Just(Vec::new()),
        1 => Just(b"   \t".to_vec()),
        1 => Just(br#"{"ts":"2026-11-23T08:30:00.000Z","source":"x","type":"nope"}"#.to_vec()),
        1 => Just(br#"{"ts":99999999999999999999,"source":1,"type":[]}"#.to_vec()),
        1 => Just(b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec()),
        2 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// What a failed read must look like: an error that names the file (and, for content
/// that does not parse, the line), so the user knows what to fix or delete.
fn assert_clear(err: &ResultsError, path: &Path) {
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "the error does not name the file: {message}"
    );
    if let ResultsError::Corrupt { line, .. } = err {
        assert!(
            line.is_some(),
            "a corrupt timeline line is not numbered: {message}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any file content: the reader returns events or a clear error, never panics.
    #[test]
    fn the_timeline_reader_never_panics_on_any_lines(
        lines in prop::collection::vec(line(), 0..40),
        newline_at_end in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.jsonl");
        let sep: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut bytes = lines.join(sep);
        if newline_at_end {
            bytes.extend_from_slice(sep);
        }
        std::fs::write(&path, &bytes).unwrap();
        match timeline::read(&path) {
            Ok(events) => prop_assert!(events.len() <= lines.len()),
            Err(err) => assert_clear(&err, &path),
        }
    }

    /// Any bytes at all, as a file a foreign program wrote.
    #[test]
    fn the_timeline_reader_never_panics_on_any_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.jsonl");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(err) = timeline::read(&path) {
            assert_clear(&err, &path);
        }
    }

    /// A writer killed mid-line: every complete event before the torn last line is kept.
    #[test]
    fn a_torn_last_timeline_line_keeps_every_event_before_it(
        count in 0usize..30,
        cut in any::<prop::sample::Index>(),
    ) {
        let real = real_lines();
        let whole: Vec<&String> = real.iter().cycle().take(count).collect();
        let last = &real[count % real.len()];
        // Cut strictly inside the line: a torn line never ends at its closing brace.
        let cut = cut.index(last.len() - 1).max(1);
        let mut text = String::new();
        for line in &whole {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(&last[..cut]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeline.jsonl");
        std::fs::write(&path, text).unwrap();
        let events = timeline::read(&path).unwrap();
        prop_assert_eq!(events.len(), count);
    }
}
