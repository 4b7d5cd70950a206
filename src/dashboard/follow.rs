//! Follows a results directory while a run writes it: the new lines of `timeline.jsonl`
//! as events, and the report (`crate::report::load`, the model `resil report` renders)
//! rebuilt every second, until the run ends or the dashboard stops. Used by
//! `crate::dashboard` for `resil dashboard --follow DIR` and `resil run --dashboard`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::board::Input;
use crate::results::timeline::Event;
use crate::results::{RunDir, RunStatus, TIMELINE_FILE};

/// How often the timeline is read for new lines: well under the page's frame interval, so
/// a line written now is on the page within a frame or two.
const TAIL_INTERVAL: Duration = Duration::from_millis(100);
/// How often the report is rebuilt: it reads the whole directory.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The part of `timeline.jsonl` read so far.
#[derive(Debug)]
pub struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// Starts at the beginning of the run's timeline.
    pub fn new(dir: &Path) -> Tail {
        Tail {
            path: dir.join(TIMELINE_FILE),
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The events in the lines completed since the last call (a torn last line waits for
    /// its end; a line that does not parse is skipped, as the report skips it).
    pub fn read_new(&mut self) -> Vec<Event> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut bytes).is_err()
        {
            return Vec::new();
        }
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        complete
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .filter_map(|line| serde_json::from_slice(line).ok())
            .collect()
    }
}

/// Feeds `inputs` from the run in `dir` until it ends (one last report, `complete`) or
/// `shutdown`.
pub async fn run(dir: PathBuf, inputs: mpsc::UnboundedSender<Input>, shutdown: CancellationToken) {
    let mut tail = Tail::new(&dir);
    let mut tick = tokio::time::interval(TAIL_INTERVAL);
    let mut last_report = tokio::time::Instant::now() - REPORT_INTERVAL;
    loop {
        tokio::select! {
            // Stopping: the dashboard is closing.
            _ = shutdown.cancelled() => return,
            // Time to look for new lines.
            _ = tick.tick() => {}
        }
        for event in tail.read_new() {
            if inputs.send(Input::Event(event)).is_err() {
                return;
            }
        }
        if last_report.elapsed() < REPORT_INTERVAL {
            continue;
        }
        last_report = tokio::time::Instant::now();
        let complete = RunDir::open(&dir)
            .and_then(|d| d.read_meta())
            .is_ok_and(|m| m.status != RunStatus::Running);
        if let Ok((report, ..)) = crate::report::load(&dir, None, None) {
            let report = Box::new(report);
            if inputs.send(Input::Report { report, complete }).is_err() || complete {
                return;
            }
        }
    }
}
