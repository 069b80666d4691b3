//! Results across rounds: the markdown table, the memory of each server and the raw JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use crate::RunArgs;
use crate::load::{Tally, percentile};
use crate::scenario::{Scenario, System};

/// A server's resident memory: idle after start, before any load, and its peak at the end.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Memory {
    pub(crate) idle_kib: Option<u64>,
    pub(crate) peak_kib: Option<u64>,
}

/// One scenario in one round.
#[derive(Debug)]
struct Round {
    round: u32,
    successes: u64,
    errors: u64,
    rate: f64,
    p50_us: Option<u32>,
    p99_us: Option<u32>,
}

/// One scenario over every round.
#[derive(Debug, Default)]
struct Stats {
    rounds: Vec<Round>,
    /// Every round's latencies, sorted, for percentiles over the whole run.
    latencies_us: Vec<u32>,
    error_kinds: BTreeMap<String, u64>,
}

impl Stats {
    fn mean(&self) -> Option<f64> {
        let n = self.rounds.len();
        (n > 0).then(|| self.rounds.iter().map(|r| r.rate).sum::<f64>() / n as f64)
    }

    fn min_max(&self) -> Option<(f64, f64)> {
        let rates = self.rounds.iter().map(|r| r.rate);
        let min = rates.clone().reduce(f64::min)?;
        let max = rates.reduce(f64::max)?;
        Some((min, max))
    }

    fn errors(&self) -> u64 {
        self.rounds.iter().map(|r| r.errors).sum()
    }
}

/// Everything measured in a run.
#[derive(Debug)]
pub(crate) struct Results {
    settings: Value,
    stats: BTreeMap<Scenario, Stats>,
    pub(crate) memory: BTreeMap<System, Memory>,
}

impl Results {
    pub(crate) fn new(args: &RunArgs) -> Self {
        let settings = json!({
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "rounds": args.rounds,
            "connections": args.connections,
            "load_threads": args.threads,
            "cores": std::thread::available_parallelism().map_or(1, usize::from),
            // Whether, not which: the URL may carry a password.
            "postgres": args.postgres.is_some(),
        });
        Self { settings, stats: BTreeMap::new(), memory: BTreeMap::new() }
    }

    /// Records one round of `scenario` and returns its progress line.
    pub(crate) fn add(
        &mut self,
        scenario: Scenario,
        round: u32,
        mut tally: Tally,
        duration: Duration,
    ) -> String {
        tally.latencies_us.sort_unstable();
        let rate = tally.successes as f64 / duration.as_secs_f64();
        let entry = Round {
            round,
            successes: tally.successes,
            errors: tally.errors,
            rate,
            p50_us: percentile(&tally.latencies_us, 0.50),
            p99_us: percentile(&tally.latencies_us, 0.99),
        };
        let line = format!(
            "{scenario:<16} {:>9} {}  p50 {} ms  p99 {} ms  {} error(s)",
            format_rate(rate),
            unit(scenario),
            millis(entry.p50_us),
            millis(entry.p99_us),
            entry.errors
        );
        let stats = self.stats.entry(scenario).or_default();
        stats.rounds.push(entry);
        stats.latencies_us.extend(tally.latencies_us);
        stats.latencies_us.sort_unstable();
        for (kind, count) in tally.error_kinds {
            *stats.error_kinds.entry(kind).or_default() += count;
        }
        line
    }

    /// `scenario`'s mean rate divided by each of its baselines' that ran.
    fn ratios(&self, scenario: Scenario) -> Vec<(Scenario, f64)> {
        let Some(mean) = self.stats.get(&scenario).and_then(Stats::mean) else {
            return Vec::new();
        };
        scenario
            .baselines()
            .iter()
            .filter_map(|&base| {
                let base_mean = self.stats.get(&base)?.mean()?;
                (base_mean > 0.0).then_some((base, mean / base_mean))
            })
            .collect()
    }
}

fn unit(scenario: Scenario) -> &'static str {
    if scenario.is_flow() { "flows/s" } else { "req/s" }
}

fn format_rate(rate: f64) -> String {
    if rate >= 100.0 { format!("{rate:.0}") } else { format!("{rate:.1}") }
}

fn millis(micros: Option<u32>) -> String {
    micros.map_or_else(|| "–".to_owned(), |us| format!("{:.2}", f64::from(us) / 1000.0))
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// The one table of a run, then each server's memory and the errors by kind.
pub(crate) fn table(results: &Results, scenarios: &[Scenario]) -> String {
    let mut out = String::new();
    let rounds = results.settings["rounds"].as_u64().unwrap_or_default();
    let _ = writeln!(
        out,
        "| scenario | system | rate, mean of {rounds} round(s) (min–max) | p50 ms | p99 ms | errors | ratio to baseline | server RSS idle → peak MiB |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for &scenario in scenarios {
        let Some(stats) = results.stats.get(&scenario) else { continue };
        let (Some(mean), Some((min, max))) = (stats.mean(), stats.min_max()) else { continue };
        let ratios = results.ratios(scenario);
        let ratio = if scenario.baselines().is_empty() {
            "baseline".to_owned()
        } else if ratios.is_empty() {
            "– (baseline not run)".to_owned()
        } else {
            ratios.iter().map(|(base, r)| format!("{r:.2}× {base}")).collect::<Vec<_>>().join("; ")
        };
        let memory = results.memory.get(&scenario.system()).copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "| {scenario} | {} | {} {} ({}–{}) | {} | {} | {} | {ratio} | {} → {} |",
            scenario.system().label(),
            format_rate(mean),
            unit(scenario),
            format_rate(min),
            format_rate(max),
            millis(percentile(&stats.latencies_us, 0.50)),
            millis(percentile(&stats.latencies_us, 0.99)),
            stats.errors(),
            mib(memory.idle_kib),
            mib(memory.peak_kib),
        );
    }
    let _ = writeln!(
        out,
        "\nServer memory (VmRSS idle after start, before any load → VmHWM peak at the end):"
    );
    for (system, memory) in &results.memory {
        if *system == System::Hello {
            continue;
        }
        let _ = writeln!(
            out,
            "- {}: {} MiB → {} MiB",
            system.label(),
            mib(memory.idle_kib),
            mib(memory.peak_kib)
        );
    }
    let with_errors: Vec<_> =
        results.stats.iter().filter(|(_, stats)| !stats.error_kinds.is_empty()).collect();
    if !with_errors.is_empty() {
        let _ = writeln!(out, "\nErrors by kind:");
        for (scenario, stats) in with_errors {
            for (kind, count) in &stats.error_kinds {
                let _ = writeln!(out, "- {scenario}: {count} × {kind}");
            }
        }
    }
    out
}

/// Every round of every scenario, for whoever wants to look closer.
pub(crate) fn json(results: &Results, scenarios: &[Scenario]) -> Value {
    let scenarios: Vec<Value> = scenarios
        .iter()
        .filter_map(|&scenario| {
            let stats = results.stats.get(&scenario)?;
            let rounds: Vec<Value> = stats
                .rounds
                .iter()
                .map(|r| {
                    json!({
                        "round": r.round,
                        "successes": r.successes,
                        "errors": r.errors,
                        "rate": r.rate,
                        "p50_us": r.p50_us,
                        "p99_us": r.p99_us,
                    })
                })
                .collect();
            let ratios: serde_json::Map<String, Value> = results
                .ratios(scenario)
                .into_iter()
                .map(|(base, ratio)| (base.name().to_owned(), json!(ratio)))
                .collect();
            Some(json!({
                "scenario": scenario.name(),
                "system": scenario.system().label(),
                "unit": unit(scenario),
                "mean_rate": stats.mean(),
                "min_rate": stats.min_max().map(|(min, _)| min),
                "max_rate": stats.min_max().map(|(_, max)| max),
                "p50_us": percentile(&stats.latencies_us, 0.50),
                "p99_us": percentile(&stats.latencies_us, 0.99),
                "errors": stats.errors(),
                "error_kinds": stats.error_kinds,
                "ratios": ratios,
                "rounds": rounds,
            }))
        })
        .collect();
    let memory: serde_json::Map<String, Value> = results
        .memory
        .iter()
        .map(|(system, m)| {
            (system.label().to_owned(), json!({ "idle_kib": m.idle_kib, "peak_kib": m.peak_kib }))
        })
        .collect();
    json!({ "settings": results.settings, "scenarios": scenarios, "memory": memory })
}
