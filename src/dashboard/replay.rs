//! `resil dashboard --replay DIR`: plays a finished run back on the page. The events of its
//! timeline are sent as the replay clock passes them; the report (`crate::report::load`,
//! what `resil report DIR -o json` prints) is sent first, so markers and figures appear as
//! the clock reaches them, and again at the end as final. Used by `crate::dashboard`.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::board::Input;
use crate::report::ReportError;
use crate::report::model::Report;
use crate::results::timeline::Event;

/// The played-back time: the run's start plus the real time since the replay began, times
/// the speed, stopping at the run's end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplayClock {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub speed: f64,
}

impl ReplayClock {
    /// The run's time `elapsed` (real time) into the replay.
    pub fn at(&self, elapsed: Duration) -> DateTime<Utc> {
        let played_ms = (elapsed.as_secs_f64() * self.speed * 1000.0) as i64;
        (self.start + chrono::Duration::milliseconds(played_ms)).min(self.end)
    }

    /// How long (real time) into the replay the run's time `at` is reached.
    pub fn when(&self, at: DateTime<Utc>) -> Duration {
        let run_ms = (at - self.start).num_milliseconds().max(0) as f64;
        Duration::from_secs_f64(run_ms / 1000.0 / self.speed)
    }
}

/// A finished run, read for playing back.
#[derive(Debug, Clone)]
pub struct Recording {
    pub report: Report,
    pub events: Vec<Event>,
    pub clock: ReplayClock,
}

impl Recording {
    /// Reads the run in `dir` (or the newest run under it).
    pub fn read(dir: &Path, speed: f64) -> Result<Recording, ReportError> {
        let (report, ..) = crate::report::load(dir, None, None)?;
        let run =
            crate::results::RunDir::open(dir).or_else(|_| crate::results::RunDir::newest(dir))?;
        let mut events = crate::results::timeline::read(&run.file(crate::results::TIMELINE_FILE))?;
        events.sort_by_key(|e| e.ts);
        let start = report.run.started_at;
        let last = events.last().map_or(start, |e| e.ts);
        let end = report.run.ended_at.unwrap_or(last).max(last);
        Ok(Recording {
            report,
            events,
            clock: ReplayClock { start, end, speed },
        })
    }
}

/// Sends the recording's inputs as the replay clock (started at `began`) reaches them.
pub async fn play(
    recording: Recording,
    began: tokio::time::Instant,
    inputs: mpsc::UnboundedSender<Input>,
    shutdown: CancellationToken,
) {
    let clock = recording.clock;
    let report = Box::new(recording.report);
    let _ = inputs.send(Input::Report {
        report: report.clone(),
        complete: false,
    });
    for event in recording.events {
        tokio::select! {
            // The dashboard is closing.
            _ = shutdown.cancelled() => return,
            // The clock reached the event.
            _ = tokio::time::sleep_until(began + clock.when(event.ts)) => {}
        }
        if inputs.send(Input::Event(event)).is_err() {
            return;
        }
    }
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep_until(began + clock.when(clock.end)) => {
            let _ = inputs.send(Input::Report { report, complete: true });
        }
    }
}
