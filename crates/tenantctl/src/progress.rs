//! Progress bars for long local runs: the steps report records done as tracing events
//! under [`steps::progress::TARGET`]; this layer draws one bar per act and system on
//! stderr (hidden when stderr is not a terminal), and lines printed meanwhile go
//! through [`println`] so they do not tear the bars.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};

static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);
static OPEN: LazyLock<Mutex<HashMap<(String, String), ProgressBar>>> =
    LazyLock::new(Mutex::default);

/// Prints a line to stdout above the bars.
pub fn println(line: &str) {
    BARS.suspend(|| println!("{line}"));
}

/// Leaves every bar at its last count (an execution ended) and starts afresh.
pub fn finish() {
    if let Ok(mut open) = OPEN.lock() {
        for (_, b) in open.drain() {
            b.finish();
        }
    }
}

/// The layer that turns progress events into bars.
#[derive(Debug, Default)]
pub struct Bars;

#[derive(Default)]
struct Fields {
    act: String,
    system: String,
    records: Option<u64>,
}

impl Visit for Fields {
    fn record_str(&mut self, f: &Field, v: &str) {
        match f.name() {
            "act" => self.act = v.to_owned(),
            "system" => self.system = v.to_owned(),
            _ => {}
        }
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        if f.name() == "records" {
            self.records = Some(v);
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> Layer<S> for Bars {
    fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
        if e.metadata().target() != steps::progress::TARGET {
            return;
        }
        let mut f = Fields::default();
        e.record(&mut f);
        let Some(n) = f.records else { return };
        let Ok(mut bars) = OPEN.lock() else {
            return;
        };
        let bar = bars
            .entry((f.act.clone(), f.system.clone()))
            .or_insert_with(|| {
                let b = BARS.add(ProgressBar::new_spinner());
                b.set_style(
                    ProgressStyle::with_template(
                        "  {spinner} {prefix:<28} {pos:>10} records  {elapsed}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.set_prefix(format!("{} {}", f.act, f.system));
                b
            });
        bar.set_position(n);
        bar.tick();
    }
}
