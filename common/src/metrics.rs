//! The process's own Prometheus figures, apart from the gateway's HTTP ones: each service
//! registers a source of readings as it starts (documents loaded, commits, runs going and
//! waiting, ...), and `/metrics` (the gateway's, or `CODESYNC_METRICS_ADDR` in any process)
//! reads them all at each scrape. Sources are held weakly: a service that is gone stops
//! reporting.

use std::sync::{Arc, Mutex, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
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
}

impl Reading {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Self { name, help, kind: Kind::Counter, value: value as f64 }
    }

    /// A counter of a quantity that is not a count (seconds spent).
    pub fn total(name: &'static str, help: &'static str, value: f64) -> Self {
        Self { name, help, kind: Kind::Counter, value }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Self {
        Self { name, help, kind: Kind::Gauge, value }
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
        let mut seen = std::collections::BTreeSet::new();
        for reading in live.iter().flat_map(|source| source.readings()) {
            // One series per name: a second live source of the same name (tests that start a
            // service twice in one process) is left out rather than exposed twice.
            if !seen.insert(reading.name) {
                continue;
            }
            match reading.kind {
                // Counts print as whole numbers; seconds and the like as they are.
                Kind::Counter if reading.value.fract() == 0.0 => {
                    let counter = ConstCounter::new(reading.value.max(0.0) as u64);
                    let metric = encoder.encode_descriptor(reading.name, reading.help, None, counter.metric_type())?;
                    counter.encode(metric)?;
                }
                Kind::Counter => {
                    let counter = ConstCounter::new(reading.value.max(0.0));
                    let metric = encoder.encode_descriptor(reading.name, reading.help, None, counter.metric_type())?;
                    counter.encode(metric)?;
                }
                Kind::Gauge => {
                    let gauge = ConstGauge::new(reading.value);
                    let metric = encoder.encode_descriptor(reading.name, reading.help, None, gauge.metric_type())?;
                    gauge.encode(metric)?;
                }
            }
        }
        Ok(())
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
    }
}
