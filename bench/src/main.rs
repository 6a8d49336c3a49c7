//! `relay-bench`: the relay load benchmark. See the crate's README section "Performance".
//!
//! For each number of calls N it starts the real `media-sidecar` alone on one core, and
//! `openai-sim` in echo mode and the control plane on the other core together with this
//! process, which plays Twilio for N calls (`load`). Calls ramp up, settle, then a steady
//! window is measured: per-frame round trips Twilio → sidecar → OpenAI → sidecar → Twilio,
//! lost / duplicated / misrouted frames, the sidecar's CPU per call-second and RSS per
//! call (from `/proc`), and the load core's own use, so a reader can tell when the load
//! side and not the sidecar is the limit. `--floor` measures the same load against a
//! trivial echo server on the sidecar's core first: the harness's own floor.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use switchboard_bench::figures::{Figures, Spent, P99_LIMIT_MS};
use switchboard_bench::load::{self, Plan, FRAME};
use switchboard_bench::system::{self, Bare, Floor, Layout, Usage};
use switchboard_bench::{bare, floor};
use tokio::time::Instant;

/// Relay load benchmark: N simulated calls through one media sidecar pinned to one core.
#[derive(Debug, Parser)]
#[command(name = "relay-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Numbers of concurrent calls to run, one run each, e.g. `100,200,400,800`.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    calls: Vec<usize>,
    /// Length of the measured steady window, seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    window: u64,
    /// Settling time between the last call's start and the window, seconds.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Calls started per second during the ramp.
    #[arg(long, default_value_t = 100.0)]
    ramp: f64,
    /// Core of the sidecar (or of the floor's echo server).
    #[arg(long, default_value_t = 0)]
    sidecar_cpu: usize,
    /// Core of the load: this process, openai-sim and the control plane.
    #[arg(long, default_value_t = 1)]
    load_cpu: usize,
    /// Do not pin anything (figures are then not comparable).
    #[arg(long)]
    no_pin: bool,
    /// Measure the harness's floor (a trivial echo server) before each run.
    #[arg(long)]
    floor: bool,
    /// Measure a bare relay (no control plane, no bookkeeping) before each run.
    #[arg(long)]
    bare: bool,
    /// Directory of the media-sidecar, control-plane and openai-sim binaries
    /// [default: this binary's directory].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Log filter of the services (their default, `info`, so what is measured is what
    /// runs).
    #[arg(long, default_value = "info")]
    log: String,
    /// Also write every run's figures to this file as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The floor's echo server (started by the bench itself).
    #[command(hide = true)]
    FloorEcho {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// The bare relay (started by the bench itself).
    #[command(hide = true)]
    BareRelay {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        openai_url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let served = match &cli.command {
        Some(Command::FloorEcho { listen }) => {
            Some(runtime().and_then(|rt| rt.block_on(floor::serve(*listen))))
        }
        Some(Command::BareRelay { listen, openai_url }) => {
            Some(runtime().and_then(|rt| rt.block_on(bare::serve(*listen, openai_url.clone()))))
        }
        None => None,
    };
    if let Some(served) = served {
        return match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("relay-bench: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relay-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One thread: the bench is pinned to one core, and a single-threaded runtime is the
/// cheapest way to drive hundreds of sockets from it.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    if cli.calls.contains(&0) {
        anyhow::bail!("--calls: every run needs at least one call");
    }
    if cli.sidecar_cpu == cli.load_cpu && !cli.no_pin {
        anyhow::bail!(
            "--sidecar-cpu and --load-cpu are both {}: the sidecar must have its core to itself",
            cli.load_cpu
        );
    }
    let bin_dir = match &cli.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the bench's directory")?
            .to_path_buf(),
    };
    let pinned = !cli.no_pin && taskset_works();
    if !cli.no_pin && !pinned {
        eprintln!("relay-bench: `taskset` is not available; nothing is pinned");
    }
    if pinned {
        pin_self(cli.load_cpu)?;
    }
    let work = tempfile::tempdir()?;
    let layout = Layout {
        bin_dir,
        sidecar_cpu: pinned.then_some(cli.sidecar_cpu),
        load_cpu: pinned.then_some(cli.load_cpu),
        work_dir: work.path().to_path_buf(),
        log: cli.log.clone(),
    };
    let rt = runtime()?;
    println!(
        "relay-bench: sidecar on core {}, load on core {}; {} s window after {} s warm-up; ramp {} calls/s",
        layout.sidecar_cpu.map_or("any".into(), |c| c.to_string()),
        layout.load_cpu.map_or("any".into(), |c| c.to_string()),
        cli.window,
        cli.warmup,
        cli.ramp
    );
    let mut all = Vec::new();
    for &calls in &cli.calls {
        let floor = if cli.floor {
            let figures = rt.block_on(run_floor(&layout, cli, calls))?;
            println!("{figures}\n");
            Some(figures)
        } else {
            None
        };
        let bare = if cli.bare {
            let figures = rt.block_on(run_bare(&layout, cli, calls))?;
            println!("{figures}\n");
            Some(figures)
        } else {
            None
        };
        let figures = rt.block_on(run_sidecar(&layout, cli, calls))?;
        println!("{figures}");
        if let Some(bare) = &bare {
            println!(
                "  over the bare relay: {:+.3} ms CPU per call-second, {:+.1} KiB per call",
                figures.cpu_ms_per_call_second - bare.cpu_ms_per_call_second,
                figures.rss_kib_per_call - bare.rss_kib_per_call
            );
        }
        if let Some(floor) = &floor {
            println!(
                "  over the floor: p50 {:+.2} ms, p99 {:+.2} ms",
                figures.rtt_p50_ms - floor.rtt_p50_ms,
                figures.rtt_p99_ms - floor.rtt_p99_ms
            );
        }
        println!();
        all.extend(floor);
        all.extend(bare);
        all.push(figures);
    }
    print_summary(&all);
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&all)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

fn taskset_works() -> bool {
    std::process::Command::new("taskset")
        .args(["-c", "0", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Pins this process (every thread it will start) to `cpu`.
fn pin_self(cpu: usize) -> anyhow::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).context("the load core")?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .with_context(|| format!("pin the bench to core {cpu}"))
}

/// The instants of one run, from now.
fn plan(cli: &Cli, calls: usize, voice_url: Option<String>, stream_url: String) -> Plan {
    let origin = Instant::now();
    let ramp = Duration::from_secs_f64(calls as f64 / cli.ramp.max(1.0));
    let window_start = origin + ramp + Duration::from_secs(cli.warmup);
    Plan {
        voice_url,
        stream_url,
        account_sid: system::ACCOUNT_SID.into(),
        auth_token: system::TWILIO_AUTH_TOKEN.into(),
        to: system::AGENT_NUMBER.into(),
        calls,
        origin,
        cadence_start: origin + FRAME * 10,
        window_start,
        window_end: window_start + Duration::from_secs(cli.window),
        linger: Duration::from_secs(1),
    }
}

/// What one run measures besides the calls: the target and the load core's processes.
struct Probes<'a> {
    target: &'a system::Process,
    openai: Option<&'a system::Process>,
    control_plane: Option<&'a system::Process>,
}

#[derive(Clone, Copy)]
struct Samples {
    target: Usage,
    callers: Usage,
    openai: Usage,
    control_plane: Usage,
}

impl Probes<'_> {
    fn sample(&self) -> Samples {
        Samples {
            target: self.target.sample(),
            callers: Usage::of("self"),
            openai: self.openai.map(system::Process::sample).unwrap_or_default(),
            control_plane: self
                .control_plane
                .map(system::Process::sample)
                .unwrap_or_default(),
        }
    }
}

/// Places the calls on the ramp, samples at the window's edges, gathers the outcomes.
async fn drive(plan: Plan, rate: f64, probes: Probes<'_>, target: &str) -> Figures {
    let idle = probes.target.sample();
    let calls = plan.calls;
    let window_s = (plan.window_end - plan.window_start).as_secs_f64();
    let plan = Arc::new(plan);
    let client = reqwest::Client::new();
    let mut tasks = Vec::with_capacity(calls);
    for index in 0..calls {
        let plan = Arc::clone(&plan);
        let client = client.clone();
        // Call i starts at i / rate.
        let at = plan.origin + Duration::from_secs_f64(index as f64 / rate);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            load::run_call(index as u32, &plan, client).await
        }));
    }
    tokio::time::sleep_until(plan.window_start).await;
    let before = probes.sample();
    tokio::time::sleep_until(plan.window_end).await;
    let after = probes.sample();
    let mut outcomes = Vec::with_capacity(calls);
    for task in tasks {
        outcomes.push(task.await.unwrap_or_default());
    }
    let mut figures = Figures {
        target: target.into(),
        calls,
        window_s,
        ..Figures::default()
    };
    figures.add_calls(&outcomes);
    figures.add_target(idle, before.target, after.target);
    figures.add_load(
        Spent::between(before.callers, after.callers, window_s),
        Spent::between(before.openai, after.openai, window_s),
        Spent::between(before.control_plane, after.control_plane, window_s),
    );
    figures
}

/// Every run starts afresh: new processes, new store, logs of their own.
fn fresh(layout: &Layout) -> anyhow::Result<(Layout, tempfile::TempDir)> {
    let dir = tempfile::tempdir_in(&layout.work_dir)?;
    let layout = Layout {
        work_dir: dir.path().to_path_buf(),
        ..layout.clone()
    };
    Ok((layout, dir))
}

async fn run_sidecar(layout: &Layout, cli: &Cli, calls: usize) -> anyhow::Result<Figures> {
    let (layout, _dir) = fresh(layout)?;
    let system = system::System::start(&layout, calls).await?;
    let plan = plan(cli, calls, Some(system.voice_url.clone()), String::new());
    let probes = Probes {
        target: &system.sidecar,
        openai: Some(&system.openai),
        control_plane: Some(&system.control_plane),
    };
    let figures = drive(plan, cli.ramp.max(1.0), probes, "sidecar").await;
    system.stop();
    Ok(figures)
}

async fn run_floor(layout: &Layout, cli: &Cli, calls: usize) -> anyhow::Result<Figures> {
    let (layout, _dir) = fresh(layout)?;
    let floor = Floor::start(&layout)?;
    let plan = plan(cli, calls, None, floor.stream_url.clone());
    let probes = Probes {
        target: &floor.echo,
        openai: None,
        control_plane: None,
    };
    let figures = drive(plan, cli.ramp.max(1.0), probes, "floor").await;
    floor.echo.stop();
    Ok(figures)
}

async fn run_bare(layout: &Layout, cli: &Cli, calls: usize) -> anyhow::Result<Figures> {
    let (layout, _dir) = fresh(layout)?;
    let bare = Bare::start(&layout)?;
    let plan = plan(cli, calls, None, bare.stream_url.clone());
    let probes = Probes {
        target: &bare.relay,
        openai: Some(&bare.openai),
        control_plane: None,
    };
    let figures = drive(plan, cli.ramp.max(1.0), probes, "bare").await;
    bare.relay.stop();
    bare.openai.stop();
    Ok(figures)
}

fn print_summary(all: &[Figures]) {
    println!(
        "{:<8} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11} {:>10} {:>9}  held",
        "target",
        "calls",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "lost",
        "CPU ms/c·s",
        "KiB/call",
        "load core"
    );
    for f in all {
        println!(
            "{:<8} {:>6} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>11.3} {:>10.1} {:>8.0}%  {}",
            f.target,
            f.calls,
            f.rtt_p50_ms,
            f.rtt_p99_ms,
            f.rtt_p999_ms,
            f.rtt_max_ms,
            f.lost,
            f.cpu_ms_per_call_second,
            f.rss_kib_per_call,
            f.load_core_pct,
            if f.holds() { "yes" } else { "no" }
        );
    }
    let sidecar = all.iter().filter(|f| f.target == "sidecar");
    match sidecar.clone().filter(|f| f.holds()).map(|f| f.calls).max() {
        Some(n) => {
            let saturated = sidecar
                .clone()
                .filter(|f| f.calls == n)
                .any(Figures::load_saturated);
            println!(
                "largest N held (0 lost, p99 ≤ {P99_LIMIT_MS} ms): {n}{}",
                if saturated {
                    " — the load core was saturated there: the load side, not the sidecar, was the limit"
                } else {
                    ""
                }
            );
        }
        None => println!("no run held 0 lost with p99 ≤ {P99_LIMIT_MS} ms"),
    }
}
