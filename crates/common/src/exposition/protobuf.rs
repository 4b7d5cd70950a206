//! The Prometheus protobuf exposition (`io.prometheus.client.MetricFamily`, each message
//! length-delimited), the one format that carries native histograms. Prometheus asks for
//! it first when native histograms are enabled (`--enable-feature=native-histograms`).
//!
//! The families come from the registry's own text encoding (0.0.4), read back here, so
//! every metric a registry holds is served the same in all three formats; a histogram
//! family may add native buckets through the `native` callback (the load engine's HDR
//! histograms can, the lab's classic ones do not). Only what resil's registries write is
//! read: counters, gauges, histograms, and anything else as untyped.
//!
//! Field numbers are those of `prometheus/client_model`'s `metrics.proto`.

use std::collections::BTreeMap;

use prometheus_client::registry::Registry;

/// A native histogram's buckets (positive values only: latencies).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NativeHistogram {
    /// Bucket `i` holds values in `(2^((i-1)/2^schema), 2^(i/2^schema)]`.
    pub schema: i32,
    /// Values at or below it count in the zero bucket.
    pub zero_threshold: f64,
    pub zero_count: u64,
    /// Counts by bucket index (not cumulative).
    pub positive: BTreeMap<i32, u64>,
}

impl NativeHistogram {
    /// The index of the bucket holding `value` (> 0) at `schema`.
    pub fn index(value: f64, schema: i32) -> i32 {
        (value.log2() * f64::from(1 << schema)).ceil() as i32
    }
}

/// Where a histogram family's native buckets come from: the family's name and a
/// metric's labels (without `le`) give its native histogram, or none.
pub type NativeSource<'a> = &'a dyn Fn(&str, &[(String, String)]) -> Option<NativeHistogram>;

/// One metric of a family read back from the text format.
#[derive(Debug, Default)]
struct Metric {
    labels: Labels,
    value: f64,
    /// Histograms: `(le, cumulative count)`, `_sum`, `_count`.
    buckets: Vec<(f64, f64)>,
    sum: f64,
    count: f64,
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: String,
    metrics: Vec<Metric>,
}

/// `registry` in the protobuf exposition, native buckets from `native`.
pub fn encode(registry: &Registry, native: NativeSource<'_>) -> Result<Vec<u8>, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, registry)?;
    let mut out = Vec::with_capacity(text.len());
    for family in read_text(&text) {
        let message = family_message(&family, native);
        varint(&mut out, message.len() as u64);
        out.extend_from_slice(&message);
    }
    Ok(out)
}

/// The families of a text exposition (0.0.4) in order.
fn read_text(text: &str) -> Vec<Family> {
    let mut families: Vec<Family> = Vec::new();
    let mut help = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = rest.split_once(' ').map_or("", |(_, h)| h).to_string();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            families.push(Family {
                name: name.to_string(),
                help: std::mem::take(&mut help),
                kind: kind.to_string(),
                metrics: Vec::new(),
            });
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some(family) = families.last_mut() else {
            continue;
        };
        let Some((name, labels, value)) = sample(line) else {
            continue;
        };
        if family.kind == "histogram" {
            let suffix = name.strip_prefix(family.name.as_str()).unwrap_or("");
            let mut labels = labels;
            let le = labels
                .iter()
                .position(|(k, _)| k == "le")
                .map(|i| labels.remove(i).1);
            let metric = match family.metrics.iter_mut().find(|m| m.labels == labels) {
                Some(m) => m,
                None => {
                    family.metrics.push(Metric {
                        labels,
                        ..Metric::default()
                    });
                    family.metrics.last_mut().expect("just pushed")
                }
            };
            match (suffix, le) {
                ("_bucket", Some(le)) => metric.buckets.push((number(&le), value)),
                ("_sum", _) => metric.sum = value,
                ("_count", _) => metric.count = value,
                _ => {}
            }
        } else {
            family.metrics.push(Metric {
                labels,
                value,
                ..Metric::default()
            });
        }
    }
    families
}

/// A metric's labels, in the order the text format lists them.
type Labels = Vec<(String, String)>;

/// A sample line: name, labels, value.
fn sample(line: &str) -> Option<(String, Labels, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value = number(value);
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series.to_string(), Vec::new(), value));
    };
    let mut labels = Vec::new();
    let mut chars = rest.strip_suffix('}')?.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => v.push('\n'),
                    Some(other) => v.push(other),
                    None => return None,
                },
                c => v.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_string(), v));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some((name.to_string(), labels, value))
}

fn number(text: &str) -> f64 {
    match text {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().unwrap_or(f64::NAN),
    }
}

fn family_message(f: &Family, native: NativeSource<'_>) -> Vec<u8> {
    // MetricType: COUNTER 0, GAUGE 1, UNTYPED 3, HISTOGRAM 4.
    let kind = match f.kind.as_str() {
        "counter" => 0,
        "gauge" => 1,
        "histogram" => 4,
        _ => 3,
    };
    let mut m = Vec::new();
    string(&mut m, 1, &f.name);
    string(&mut m, 2, &f.help);
    key(&mut m, 3, 0);
    varint(&mut m, kind);
    for metric in &f.metrics {
        let mut body = Vec::new();
        for (k, v) in &metric.labels {
            let mut pair = Vec::new();
            string(&mut pair, 1, k);
            string(&mut pair, 2, v);
            bytes(&mut body, 1, &pair);
        }
        let mut value = Vec::new();
        match kind {
            4 => {
                histogram(&mut value, metric, native(&f.name, &metric.labels).as_ref());
                bytes(&mut body, 7, &value);
            }
            0 | 1 => {
                double(&mut value, 1, metric.value);
                bytes(&mut body, if kind == 0 { 3 } else { 2 }, &value);
            }
            _ => {
                double(&mut value, 1, metric.value);
                bytes(&mut body, 5, &value);
            }
        }
        bytes(&mut m, 4, &body);
    }
    m
}

fn histogram(out: &mut Vec<u8>, m: &Metric, native: Option<&NativeHistogram>) {
    key(out, 1, 0);
    varint(out, m.count as u64);
    double(out, 2, m.sum);
    for (le, cumulative) in &m.buckets {
        // The +Inf bucket is implied by the count.
        if le.is_infinite() {
            continue;
        }
        let mut b = Vec::new();
        key(&mut b, 1, 0);
        varint(&mut b, *cumulative as u64);
        double(&mut b, 2, *le);
        bytes(out, 3, &b);
    }
    let Some(n) = native else {
        return;
    };
    key(out, 5, 0);
    varint(out, zigzag(i64::from(n.schema)));
    double(out, 6, n.zero_threshold);
    key(out, 7, 0);
    varint(out, n.zero_count);
    // Spans of consecutive indexes, each offset from the end of the one before.
    let mut spans: Vec<(i32, u32)> = Vec::new();
    let mut previous: Option<i32> = None;
    for &i in n.positive.keys() {
        match previous {
            Some(p) if i == p + 1 => spans.last_mut().expect("a span is open").1 += 1,
            Some(p) => spans.push((i - p - 1, 1)),
            None => spans.push((i, 1)),
        }
        previous = Some(i);
    }
    for (offset, length) in spans {
        let mut s = Vec::new();
        key(&mut s, 1, 0);
        varint(&mut s, zigzag(i64::from(offset)));
        key(&mut s, 2, 0);
        varint(&mut s, u64::from(length));
        bytes(out, 12, &s);
    }
    // Counts as deltas from the bucket before (the first from zero).
    let mut last = 0i64;
    for &count in n.positive.values() {
        let count = count as i64;
        key(out, 13, 0);
        varint(out, zigzag(count - last));
        last = count;
    }
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn double(out: &mut Vec<u8>, field: u32, v: f64) {
    key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family as LabelFamily;
    use prometheus_client::metrics::histogram::Histogram;

    use super::*;

    #[test]
    fn sample_lines_read_back_with_escaped_labels() {
        let (name, labels, value) = sample(r#"x_total{a="b\"c",d="e,f"} 12"#).unwrap();
        assert_eq!(name, "x_total");
        assert_eq!(
            labels,
            vec![("a".into(), "b\"c".into()), ("d".into(), "e,f".into())]
        );
        assert_eq!(value, 12.0);
        assert_eq!(sample("y 1.5").unwrap().2, 1.5);
        assert!(sample(r#"h_bucket{le="+Inf"} 3"#).is_some());
    }

    #[test]
    fn native_bucket_indexes_follow_the_schema() {
        // Schema 0: (0.5, 1] is bucket 0, (1, 2] bucket 1.
        assert_eq!(NativeHistogram::index(1.0, 0), 0);
        assert_eq!(NativeHistogram::index(1.5, 0), 1);
        assert_eq!(NativeHistogram::index(0.3, 0), -1);
        // Schema 3: eight buckets per power of two.
        assert_eq!(NativeHistogram::index(2.0, 3), 8);
        assert_eq!(NativeHistogram::index(2.1, 3), 9);
    }

    #[test]
    fn families_encode_as_delimited_metric_families() {
        let mut registry = Registry::default();
        let c: LabelFamily<Vec<(String, String)>, Counter> = LabelFamily::default();
        c.get_or_create(&vec![("kind".into(), "a".into())])
            .inc_by(3);
        registry.register("resil_things", "Things", c);
        let h = Histogram::new([0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        registry.register("resil_wait_seconds", "Waits", h);
        let text = {
            let mut t = String::new();
            prometheus_client::encoding::prometheus_text::encode(&mut t, &registry).unwrap();
            t
        };
        let families = read_text(&text);
        assert_eq!(families.len(), 2, "{text}");
        assert_eq!(families[0].name, "resil_things_total");
        assert_eq!(families[0].metrics[0].value, 3.0);
        let hist = &families[1];
        assert_eq!((hist.kind.as_str(), hist.metrics.len()), ("histogram", 1));
        assert_eq!(hist.metrics[0].buckets[..2], [(0.1, 1.0), (1.0, 2.0)]);
        assert_eq!((hist.metrics[0].count, hist.metrics[0].sum), (2.0, 0.55));

        let native = |name: &str, _: &[(String, String)]| {
            (name == "resil_wait_seconds").then(|| NativeHistogram {
                schema: 0,
                zero_threshold: 1e-9,
                zero_count: 0,
                positive: [(-4, 1), (0, 1)].into(),
            })
        };
        let body = encode(&registry, &native).unwrap();
        // Two length-delimited messages (each short enough for a one-byte length), the
        // first opening with field 1, the counter family's name.
        let first = body[0] as usize;
        assert_eq!(1 + first + 1 + body[1 + first] as usize, body.len());
        assert_eq!(&body[1..3], &[0x0a, "resil_things_total".len() as u8]);
        assert_eq!(&body[3..21], b"resil_things_total");
        // Two spans (offset -4 and 3) and deltas 1, 0 in the histogram.
        let spans_and_deltas = [
            0x62, 4, 0x08, 7, 0x10, 1, 0x62, 4, 0x08, 6, 0x10, 1, 0x68, 2, 0x68, 0,
        ];
        assert!(
            body.windows(spans_and_deltas.len())
                .any(|w| w == spans_and_deltas),
            "{body:?}"
        );
    }
}
