//! Prometheus exposition shared by the lab's `/metrics` and the toolkit's `--metrics-addr`:
//! which text format a scraper's `Accept` header asks for, and a registry encoded in it.
//! The metrics themselves belong to each side; this module knows none of them.
//!
//! Two text formats: the Prometheus text format 0.0.4 (the default, what `curl` gets) and
//! OpenMetrics 1.0 text, chosen when the scraper ranks `application/openmetrics-text`
//! above `text/plain` (Prometheus does). Native histograms need the protobuf format
//! ([`protobuf`]), which a Prometheus with native histograms enabled ranks first; the
//! toolkit's `--metrics-addr` serves it then ([`prefers_protobuf`]), the lab does not.

pub mod protobuf;

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

/// The `Content-Type` of OpenMetrics 1.0 text.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `Content-Type` of the protobuf exposition.
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Whether `accept` ranks the protobuf exposition (delimited `MetricFamily` messages)
/// strictly above both text formats, by `q` and then by order.
pub fn prefers_protobuf(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    // (q, position) of the best protobuf entry and of the best text entry.
    let mut proto: Option<(f32, usize)> = None;
    let mut text: Option<(f32, usize)> = None;
    for (at, entry) in accept.split(',').enumerate() {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<&str> = parts.collect();
        let q = params
            .iter()
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|v| v.parse::<f32>().ok())
            .unwrap_or(1.0);
        let slot = match media.as_str() {
            "application/vnd.google.protobuf"
                if params.contains(&"proto=io.prometheus.client.MetricFamily")
                    && params.contains(&"encoding=delimited") =>
            {
                &mut proto
            }
            "application/openmetrics-text" | "text/plain" => &mut text,
            _ => continue,
        };
        if q > 0.0 && slot.is_none_or(|(b, _)| q > b) {
            *slot = Some((q, at));
        }
    }
    match (proto, text) {
        (Some(_), None) => true,
        (Some((pq, pa)), Some((tq, ta))) => pq > tq || (pq == tq && pa < ta),
        _ => false,
    }
}

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4.
    Text,
    /// OpenMetrics 1.0 text (ends with `# EOF`).
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` header of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// The format an `Accept` header prefers: OpenMetrics when it ranks
    /// `application/openmetrics-text` strictly above `text/plain` (by `q`, then by order),
    /// the text format otherwise (no header, `*/*`, or anything else).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Text;
        };
        let mut best: Option<(f32, Format)> = None;
        for entry in accept.split(',') {
            let mut parts = entry.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|v| v.parse::<f32>().ok())
                .unwrap_or(1.0);
            let format = match media.as_str() {
                "application/openmetrics-text" => Format::OpenMetrics,
                "text/plain" => Format::Text,
                _ => continue,
            };
            // The first entry of the highest q wins ties, as listed order expresses rank.
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Text, |(_, f)| f)
    }
}

/// `registry` encoded in `format`.
pub fn encode(registry: &Registry, format: Format) -> Result<String, std::fmt::Error> {
    let mut body = String::with_capacity(4096);
    match format {
        Format::Text => prometheus_text::encode(&mut body, registry)?,
        Format::OpenMetrics => text::encode(&mut body, registry)?,
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn prometheus_accept_header_gets_openmetrics_and_curl_gets_text() {
        // What Prometheus 2.x sends.
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                    version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(Format::negotiate(None), Format::Text);
        let text_first = "text/plain;version=0.0.4,application/openmetrics-text;q=0.5";
        assert_eq!(Format::negotiate(Some(text_first)), Format::Text);
        let refused = "application/openmetrics-text;q=0";
        assert_eq!(Format::negotiate(Some(refused)), Format::Text);
    }

    #[test]
    fn a_prometheus_with_native_histograms_gets_protobuf_and_others_do_not() {
        // What Prometheus 2.42 sends with `--enable-feature=native-histograms`.
        let native = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;\
                      encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,\
                      application/openmetrics-text;version=0.0.1;q=0.75,\
                      text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(prefers_protobuf(Some(native)));
        let classic = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
        assert!(!prefers_protobuf(Some(classic)));
        assert!(!prefers_protobuf(None));
        assert!(!prefers_protobuf(Some("*/*")));
        let other_proto = "application/vnd.google.protobuf;proto=other.Message;encoding=delimited";
        assert!(!prefers_protobuf(Some(other_proto)));
        let ranked_lower = "text/plain;q=0.9,application/vnd.google.protobuf;\
                            proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5";
        assert!(!prefers_protobuf(Some(ranked_lower)));
    }

    #[test]
    fn both_formats_name_counters_with_total_and_only_openmetrics_ends_with_eof() {
        let mut registry = Registry::default();
        let c: Counter = Counter::default();
        registry.register("resil_things", "Things seen", c.clone());
        c.inc_by(3);
        let plain = encode(&registry, Format::Text).unwrap();
        assert!(
            plain.contains("# TYPE resil_things_total counter\n"),
            "{plain}"
        );
        assert!(plain.contains("resil_things_total 3\n"), "{plain}");
        assert!(!plain.contains("# EOF"));
        let om = encode(&registry, Format::OpenMetrics).unwrap();
        assert!(om.contains("# TYPE resil_things counter\n"), "{om}");
        assert!(om.ends_with("# EOF\n"), "{om}");
    }
}
