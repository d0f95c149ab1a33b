//! `anomalies bench`'s terminal side: the spec from the arguments, a progress bar on a
//! terminal, the report rendered in the asked format.

use anomalies::app::{self, AppError};
use anomalies::bench::{self, Spec, Workload};
use anomalies::exit;
use anomalies::render;

use crate::cli::{BenchArgs, BenchFormat, WorkloadArg};
use crate::output::{print, progress_bar, style};
use crate::requests::{connect_options, engine_choice};
use crate::runtime;

/// The most workers (and connections) a cell may have: the throwaway servers allow 250.
const MAX_WORKERS: u64 = 200;
/// The largest hot set: every account is a row made by the setup.
const MAX_HOT: u64 = 1_000_000;

pub(crate) fn bench(args: BenchArgs) -> anyhow::Result<i32> {
    let workload = match args.workload {
        WorkloadArg::Payments => Workload::Payments,
        WorkloadArg::Queue => Workload::Queue,
    };
    let usage = |e: String| AppError::Usage(e);
    let spec = Spec {
        workload,
        strategies: bench::strategies(workload, &args.strategies).map_err(usage)?,
        workers: bench::counts("workers", &args.workers, MAX_WORKERS).map_err(usage)?,
        hot: bench::counts("hot", &args.hot, MAX_HOT).map_err(usage)?,
        warmup: args.warmup,
        duration: args.duration,
        seed: args.seed,
        rendezvous: args.rendezvous,
    };
    if spec.duration.is_zero() {
        return Err(usage("--duration must be more than 0".into()).into());
    }
    let options = connect_options(&args.connection, engine_choice(args.engine))?;
    let cells = spec.strategies.len() * bench::cells_per_strategy(&spec);
    let bar = progress_bar(cells as u64);
    let report = runtime()?.block_on(app::bench(
        &options,
        &spec,
        &mut |notice| bar.suspend(|| eprintln!("{notice}")),
        &mut |cell| {
            bar.set_message(cell.to_string());
            bar.inc(1);
        },
    ))?;
    bar.finish_and_clear();
    let text = match args.format {
        BenchFormat::Table => render::bench::table(&report, style(args.color, None)),
        BenchFormat::Json => render::bench::json(&report),
        BenchFormat::Csv => render::bench::csv(&report),
        BenchFormat::Markdown => render::bench::markdown(&report),
        BenchFormat::Svg => render::bench::svg(&report),
    };
    print(&text)?;
    Ok(exit::OK)
}
