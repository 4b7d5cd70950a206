//! `latency.hdr`: latency histograms in the HdrHistogram interval-log format (V2 deflate
//! encoding), one entry per tag — `overall`, `uncorrected`, `color=blue`, ... — so other
//! HdrHistogram tools can read them and runs can be merged without losing precision.
//!
//! Histograms record microseconds, 1 µs to 60 s, 3 significant digits.

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

use super::{Result, ResultsError};

/// Lowest and highest recordable latency (µs) and precision of every resil histogram.
pub const LOWEST_US: u64 = 1;
pub const HIGHEST_US: u64 = 60_000_000;
pub const SIGFIG: u8 = 3;

/// A new, empty latency histogram with resil's bounds. Values above the highest are
/// clamped by `saturating_record`.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low ≥ 1, high ≥ 2·low, sigfig ≤ 5).
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG).expect("constant bounds are valid")
}

/// The most histogram counters (8 bytes each) one `latency.hdr` may decode to, in all:
/// 256 MiB. resil's own histograms hold about 26,000 counters each, so a run's file is far
/// below it; a crafted header (5 significant digits up to `u64::MAX`, 50 MiB a histogram)
/// repeated line after line would otherwise take the reader's memory.
const MAX_COUNTERS: usize = 32 * 1024 * 1024;

/// One tagged histogram of a run.
#[derive(Debug, Clone)]
pub struct TaggedHistogram {
    /// `overall`, `uncorrected`, `color=blue`, ... (no spaces or commas).
    pub tag: String,
    /// Seconds since the epoch when recording started.
    pub start: Duration,
    /// How long it recorded.
    pub duration: Duration,
    pub histogram: Histogram<u64>,
}

/// Writes all histograms into `path` atomically.
pub fn write(path: &Path, histograms: &[TaggedHistogram]) -> Result<()> {
    let corrupt = |message: String| ResultsError::Corrupt {
        path: path.to_path_buf(),
        line: None,
        message,
    };
    let mut buf = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment("resil latency histograms (microseconds)")
            .with_base_time(SystemTime::UNIX_EPOCH)
            .begin_log_with(&mut buf, &mut serializer)
            .map_err(|e| corrupt(e.to_string()))?;
        for h in histograms {
            let tag =
                Tag::new(&h.tag).ok_or_else(|| corrupt(format!("invalid tag {:?}", h.tag)))?;
            writer
                .write_histogram(&h.histogram, h.start, h.duration, Some(tag))
                .map_err(|e| corrupt(e.to_string()))?;
        }
    }
    crate::atomic::write(path, &buf).map_err(|source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads every histogram in `path`; a missing file reads as none.
pub fn read(path: &Path) -> Result<Vec<TaggedHistogram>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ResultsError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let corrupt = |message: String| ResultsError::Corrupt {
        path: path.to_path_buf(),
        line: None,
        message,
    };
    let mut out = Vec::new();
    let mut deserializer = Deserializer::new();
    let mut counters = 0usize;
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| corrupt(format!("{e:?}")))?;
        let LogEntry::Interval(interval) = entry else {
            continue;
        };
        let encoded = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .map_err(|e| corrupt(e.to_string()))?;
        let histogram: Histogram<u64> = deserializer
            .deserialize(&mut encoded.as_slice())
            .map_err(|e| corrupt(format!("{e:?}")))?;
        counters = counters.saturating_add(histogram.distinct_values());
        if counters > MAX_COUNTERS {
            return Err(corrupt(format!(
                "its histograms need more than {} MiB of counters; resil writes a few MiB at most",
                MAX_COUNTERS * 8 / (1024 * 1024)
            )));
        }
        out.push(TaggedHistogram {
            tag: interval
                .tag()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            start: interval.start_timestamp(),
            duration: interval.duration(),
            histogram,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_histograms_past_the_counter_budget_is_corrupt_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.hdr");
        // The widest histogram hdrhistogram allows: about 6 million counters each.
        let wide = Histogram::<u64>::new_with_bounds(1, u64::MAX, 5).unwrap();
        let many: Vec<TaggedHistogram> = (0..8)
            .map(|i| TaggedHistogram {
                tag: format!("t{i}"),
                start: Duration::ZERO,
                duration: Duration::from_secs(1),
                histogram: wide.clone(),
            })
            .collect();
        write(&path, &many).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("MiB of counters"), "{err}");
        write(&path, &many[..2]).unwrap();
        assert_eq!(
            read(&path).unwrap().len(),
            2,
            "a few wide histograms still read"
        );
    }

    #[test]
    fn histograms_survive_a_round_trip_with_their_tags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.hdr");
        let mut overall = new_histogram();
        let mut blue = new_histogram();
        for v in 1..=10_000u64 {
            overall.saturating_record(v * 10);
            if v % 2 == 0 {
                blue.saturating_record(v * 10);
            }
        }
        overall.saturating_record(HIGHEST_US * 10); // clamped, not lost
        let written = vec![
            TaggedHistogram {
                tag: "overall".into(),
                start: Duration::from_secs(1_700_000_000),
                duration: Duration::from_secs(10),
                histogram: overall.clone(),
            },
            TaggedHistogram {
                tag: "color=blue".into(),
                start: Duration::from_secs(1_700_000_000),
                duration: Duration::from_secs(10),
                histogram: blue.clone(),
            },
        ];
        write(&path, &written).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].tag, "overall");
        assert_eq!(back[0].histogram, overall);
        assert_eq!(back[1].tag, "color=blue");
        assert_eq!(back[1].histogram.len(), 5_000);
        assert_eq!(back[0].duration, Duration::from_secs(10));
    }
}
