//! One results directory holds one run: `resil load --out DIR` into a directory that
//! holds a finished run is refused, and nothing is appended to its timeline.

use crate::cluster::resil;
use crate::deploy::hardening::Impostor;
use crate::support;

#[test]
fn a_second_load_into_a_finished_runs_directory_is_refused_and_appends_nothing() {
    let port = support::free_node_port();
    let _server = Impostor::on(port);
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("run");
    let url = format!("http://127.0.0.1:{port}/");
    let load = || {
        resil(home.path())
            .args(["load", &url, "--rate", "20", "--duration", "1s", "--out"])
            .arg(&out_dir)
            .output()
            .unwrap()
    };
    let first = load();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let timeline = std::fs::read(out_dir.join("timeline.jsonl")).unwrap();
    let summary = std::fs::read(out_dir.join("summary.json")).unwrap();

    let second = load();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "{err}");
    assert!(err.contains("already holds the finished run run"), "{err}");
    assert!(err.contains("Give --out a new directory"), "{err}");
    assert_eq!(
        std::fs::read(out_dir.join("timeline.jsonl")).unwrap(),
        timeline
    );
    assert_eq!(
        std::fs::read(out_dir.join("summary.json")).unwrap(),
        summary
    );
}
