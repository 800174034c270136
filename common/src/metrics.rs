//! The process's own Prometheus figures, apart from the gateway's HTTP ones: each service
//! registers a source of readings as it starts (documents loaded, commits, runs going and
//! waiting, ...), and `/metrics` (the gateway's, or `CODESYNC_METRICS_ADDR` in any process)
//! reads them all at each scrape. Sources are held weakly: a service that is gone stops
//! reporting.

use std::sync::{Arc, Mutex, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// What a reading is: a counter only ever grows (Prometheus takes its rate), a gauge goes both
/// ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One figure at the time of the scrape; `name` without the `codesync_` prefix (and, for a
/// counter, without `_total`, which the exposition adds).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub value: f64,
    /// The series' labels (`topic="room-events"`); readings of one name share its help and kind.
    pub labels: Vec<(&'static str, String)>,
}

impl Reading {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Self { name, help, kind: Kind::Counter, value: value as f64, labels: Vec::new() }
    }

    /// A counter of a quantity that is not a count (seconds spent).
    pub fn total(name: &'static str, help: &'static str, value: f64) -> Self {
        Self { name, help, kind: Kind::Counter, value, labels: Vec::new() }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Self {
        Self { name, help, kind: Kind::Gauge, value, labels: Vec::new() }
    }

    pub fn with_label(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((key, value.into()));
        self
    }
}

/// Something that reports readings when scraped.
pub trait Source: Send + Sync + 'static {
    fn readings(&self) -> Vec<Reading>;
}

static SOURCES: Mutex<Vec<Weak<dyn Source>>> = Mutex::new(Vec::new());

fn sources() -> std::sync::MutexGuard<'static, Vec<Weak<dyn Source>>> {
    SOURCES.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reports `source`'s readings for as long as it lives.
pub fn register(source: Arc<dyn Source>) {
    let mut sources = sources();
    sources.retain(|source| source.strong_count() > 0);
    sources.push(Arc::downgrade(&source));
}

#[derive(Debug)]
struct Readings;

impl Collector for Readings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let live: Vec<Arc<dyn Source>> = sources().iter().filter_map(Weak::upgrade).collect();
        // The readings by name, in the order names first appear; one series per name and labels
        // (a second live source of the same series, as in tests that start a service twice in
        // one process, is left out rather than exposed twice).
        let mut families: Vec<(&'static str, Vec<Reading>)> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for reading in live.iter().flat_map(|source| source.readings()) {
            if !seen.insert((reading.name, reading.labels.clone())) {
                continue;
            }
            match families.iter_mut().find(|(name, _)| *name == reading.name) {
                Some((_, readings)) => readings.push(reading),
                None => families.push((reading.name, vec![reading])),
            }
        }
        for (name, readings) in families {
            let first = &readings[0];
            // Counts print as whole numbers; seconds and the like as they are.
            let whole = first.kind == Kind::Counter && readings.iter().all(|reading| reading.value.fract() == 0.0);
            let metric_type = match first.kind {
                Kind::Counter => ConstCounter::new(0u64).metric_type(),
                Kind::Gauge => ConstGauge::new(0.0f64).metric_type(),
            };
            let mut family = encoder.encode_descriptor(name, first.help, None, metric_type)?;
            if readings.len() == 1 && first.labels.is_empty() {
                encode_value(first, whole, family)?;
            } else {
                for reading in &readings {
                    let labels: Vec<(&str, &str)> =
                        reading.labels.iter().map(|(key, value)| (*key, value.as_str())).collect();
                    encode_value(reading, whole, family.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

fn encode_value(reading: &Reading, whole: bool, target: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
    match reading.kind {
        Kind::Counter if whole => ConstCounter::new(reading.value.max(0.0) as u64).encode(target),
        Kind::Counter => ConstCounter::new(reading.value.max(0.0)).encode(target),
        Kind::Gauge => ConstGauge::new(reading.value).encode(target),
    }
}

/// Every registered source's readings, in the OpenMetrics text format (ending in `# EOF`).
pub fn encode() -> String {
    let mut registry = Registry::with_prefix("codesync");
    registry.register_collector(Box::new(Readings));
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::error!(%error, "cannot encode the process's metrics");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<Reading>);

    impl Source for Fixed {
        fn readings(&self) -> Vec<Reading> {
            self.0.clone()
        }
    }

    #[test]
    fn sources_report_while_they_live() {
        let source = Arc::new(Fixed(vec![
            Reading::counter("test_commits", "Commits", 7),
            Reading::gauge("test_loaded", "Loaded", 2.0),
        ]));
        register(source.clone());
        let text = encode();
        assert!(text.contains("# TYPE codesync_test_commits counter"), "{text}");
        assert!(text.contains("codesync_test_commits_total 7"), "{text}");
        assert!(!text.contains("codesync_test_commits_total 7."), "whole counts stay whole: {text}");
        assert!(text.contains("codesync_test_loaded 2"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        drop(source);
        assert!(!encode().contains("codesync_test_commits"));

        let labelled = Arc::new(Fixed(vec![
            Reading::gauge("test_backlog", "Waiting", 3.0).with_label("topic", "room-events"),
            Reading::gauge("test_backlog", "Waiting", 0.0).with_label("topic", "ai-events"),
        ]));
        register(labelled.clone());
        let text = encode();
        assert_eq!(text.matches("# TYPE codesync_test_backlog gauge").count(), 1, "{text}");
        assert!(text.contains("codesync_test_backlog{topic=\"room-events\"} 3"), "{text}");
        assert!(text.contains("codesync_test_backlog{topic=\"ai-events\"} 0"), "{text}");
    }
}
