//! The system under load, as real processes: `openai-sim` in echo mode and the control
//! plane on the load core, the media sidecar alone on its own core (`taskset`), all on
//! loopback; plus what `/proc` says each process spent.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::agent_settings_service_client::AgentSettingsServiceClient;

/// The account and token the callers sign with and the sidecar checks.
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000be0";
pub const TWILIO_AUTH_TOKEN: &str = "bench-twilio-auth-token";
const STREAM_TOKEN_SECRET: &str = "bench-stream-token-secret-of-32-bytes-or-more";
/// The number the callers dial; the bench's agent owns it.
pub const AGENT_NUMBER: &str = "+14155550100";

/// Linux reports process times in clock ticks of 1/100 s (`USER_HZ`) on every
/// architecture it runs on.
const TICK_MS: f64 = 10.0;

/// Where the binaries are and which cores to use.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The directory holding `media-sidecar`, `control-plane` and `openai-sim`.
    pub bin_dir: PathBuf,
    /// The sidecar's core (or the floor's echo server's).
    pub sidecar_cpu: Option<usize>,
    /// The core of the load: this process, `openai-sim` and the control plane.
    pub load_cpu: Option<usize>,
    /// Logs and the embedded store go here.
    pub work_dir: PathBuf,
    /// The services' log filter (`info` is their default: measure what runs).
    pub log: String,
}

impl Layout {
    /// The binary `name`, or an error telling how to build it.
    pub fn binary(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.bin_dir.join(name);
        if !path.exists() {
            bail!(
                "{} is missing: build the binaries first with `cargo build --release --bins`",
                path.display()
            );
        }
        Ok(path)
    }
}

/// A child process, pinned to a core when asked, killed on drop.
#[derive(Debug)]
pub struct Process {
    pub name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `binary` with `args` and a clean environment plus `env`, pinned to `cpu`.
    pub fn start(
        name: &'static str,
        binary: &Path,
        args: &[String],
        env: &[(&str, String)],
        cpu: Option<usize>,
        work_dir: &Path,
    ) -> anyhow::Result<Process> {
        let log = work_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).with_context(|| format!("{}", log.display()))?;
        // `taskset` sets the affinity and execs the binary: same pid, every thread pinned.
        let mut command = match cpu {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpu.to_string()).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        command
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("start {name} ({})", binary.display()))?;
        Ok(Process { name, child, log })
    }

    /// Waits until `addr` accepts connections.
    pub fn wait_for(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(addr).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!("{} exited with {status}: {}", self.name, self.output());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("{} did not listen on {addr}: {}", self.name, self.output())
    }

    /// What it printed.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// CPU time and memory now.
    pub fn sample(&self) -> Usage {
        Usage::of(&self.child.id().to_string())
    }

    /// SIGTERM, then a bounded wait, then SIGKILL.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `/proc` says of a process at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU time of all its threads, ms.
    pub cpu_ms: f64,
    /// Resident set, KiB.
    pub rss_kib: u64,
}

impl Usage {
    /// Reads `/proc/<pid>` (`self` for this process); zeros when unreadable.
    pub fn of(pid: &str) -> Usage {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        Usage {
            cpu_ms: cpu_ticks(&stat) as f64 * TICK_MS,
            rss_kib: rss_kib(&status),
        }
    }
}

/// `utime + stime` from a `/proc/<pid>/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last `)`.
fn cpu_ticks(stat: &str) -> u64 {
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    // After ")": state is field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

fn rss_kib(status: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A free loopback port (bound and released).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Control plane, `openai-sim` and the sidecar, started and ready, with the bench's agent.
#[derive(Debug)]
pub struct System {
    pub openai: Process,
    pub control_plane: Process,
    pub sidecar: Process,
    /// The sidecar's voice webhook.
    pub voice_url: String,
}

impl System {
    /// Starts the three services for `calls` calls.
    pub async fn start(layout: &Layout, calls: usize) -> anyhow::Result<System> {
        let (openai, openai_addr) = start_openai(layout)?;

        let grpc_addr = free_addr()?;
        let store = layout.work_dir.join("store");
        let mut control_plane = Process::start(
            "control-plane",
            &layout.binary("control-plane")?,
            &[],
            &[
                ("SWITCHBOARD_GRPC_ADDR", grpc_addr.to_string()),
                ("SWITCHBOARD_STORE", store.display().to_string()),
                ("SWITCHBOARD_LOG", layout.log.clone()),
            ],
            layout.load_cpu,
            &layout.work_dir,
        )?;
        control_plane.wait_for(grpc_addr)?;
        create_agent(grpc_addr).await?;

        let http = free_addr()?;
        let admin = free_addr()?;
        let mut sidecar = Process::start(
            "media-sidecar",
            &layout.binary("media-sidecar")?,
            &[],
            &[
                ("SWITCHBOARD_HTTP_ADDR", http.to_string()),
                ("SWITCHBOARD_ADMIN_ADDR", admin.to_string()),
                (
                    "SWITCHBOARD_CONTROL_PLANE_URL",
                    format!("http://{grpc_addr}"),
                ),
                ("SWITCHBOARD_PUBLIC_URL", format!("http://{http}")),
                ("TWILIO_AUTH_TOKEN", TWILIO_AUTH_TOKEN.into()),
                ("OPENAI_API_KEY", "bench-openai-key".into()),
                (
                    "SWITCHBOARD_OPENAI_URL",
                    format!("ws://{openai_addr}/v1/realtime"),
                ),
                (
                    "SWITCHBOARD_STREAM_TOKEN_SECRET",
                    STREAM_TOKEN_SECRET.into(),
                ),
                ("SWITCHBOARD_MAX_CALLS", (calls + 16).to_string()),
                ("SWITCHBOARD_DRAIN_GRACE", "5s".into()),
                ("SWITCHBOARD_SIDECAR_ID", "bench-sidecar".into()),
                ("SWITCHBOARD_LOG", layout.log.clone()),
            ],
            layout.sidecar_cpu,
            &layout.work_dir,
        )?;
        sidecar.wait_for(http)?;
        sidecar.wait_for(admin)?;
        Ok(System {
            openai,
            control_plane,
            sidecar,
            voice_url: format!("http://{http}/api/twilio/voice"),
        })
    }

    /// Stops the sidecar first (its calls are over), then the rest.
    pub fn stop(self) {
        self.sidecar.stop();
        self.control_plane.stop();
        self.openai.stop();
    }
}

async fn create_agent(grpc_addr: SocketAddr) -> anyhow::Result<()> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))?
        .connect()
        .await
        .context("connect to the control plane")?;
    let mut agents = AgentSettingsServiceClient::new(channel);
    let agent = pb::AgentSettings {
        name: "Relay benchmark".into(),
        phone_numbers: vec![AGENT_NUMBER.into()],
        voice: "marin".into(),
        instructions: "Echo.".into(),
        temperature: Some(0.8),
        ..pb::AgentSettings::default()
    };
    agents
        .create_agent_settings(pb::CreateAgentSettingsRequest {
            agent_settings: Some(agent),
        })
        .await
        .context("create the bench's agent")?;
    Ok(())
}

/// `openai-sim` in echo mode on the load core.
pub fn start_openai(layout: &Layout) -> anyhow::Result<(Process, SocketAddr)> {
    let addr = free_addr()?;
    let mut openai = Process::start(
        "openai-sim",
        &layout.binary("openai-sim")?,
        &[
            "--listen".into(),
            addr.to_string(),
            "--mode".into(),
            "echo".into(),
            "--log".into(),
            layout.log.clone(),
        ],
        &[],
        layout.load_cpu,
        &layout.work_dir,
    )?;
    openai.wait_for(addr)?;
    Ok((openai, addr))
}

/// The bench's bare relay on the sidecar's core, and its `openai-sim`.
#[derive(Debug)]
pub struct Bare {
    pub relay: Process,
    pub openai: Process,
    pub stream_url: String,
}

impl Bare {
    pub fn start(layout: &Layout) -> anyhow::Result<Bare> {
        let (openai, openai_addr) = start_openai(layout)?;
        let addr = free_addr()?;
        let exe = std::env::current_exe().context("the bench's own path")?;
        let mut relay = Process::start(
            "bare-relay",
            &exe,
            &[
                "bare-relay".into(),
                "--listen".into(),
                addr.to_string(),
                "--openai-url".into(),
                format!("ws://{openai_addr}/v1/realtime?model=gpt-realtime"),
            ],
            &[],
            layout.sidecar_cpu,
            &layout.work_dir,
        )?;
        relay.wait_for(addr)?;
        Ok(Bare {
            relay,
            openai,
            stream_url: format!("ws://{addr}/media"),
        })
    }
}

/// The floor: the bench's own trivial echo server, alone on the sidecar's core.
#[derive(Debug)]
pub struct Floor {
    pub echo: Process,
    pub stream_url: String,
}

impl Floor {
    pub fn start(layout: &Layout) -> anyhow::Result<Floor> {
        let addr = free_addr()?;
        let exe = std::env::current_exe().context("the bench's own path")?;
        let mut echo = Process::start(
            "floor-echo",
            &exe,
            &["floor-echo".into(), "--listen".into(), addr.to_string()],
            &[],
            layout.sidecar_cpu,
            &layout.work_dir,
        )?;
        echo.wait_for(addr)?;
        Ok(Floor {
            echo,
            stream_url: format!("ws://{addr}/media"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (media sidecar) (x)) S 1 2 3 0 -1 4194304 10 0 0 0 150 25 0 0 20 0 9";
        assert_eq!(cpu_ticks(stat), 175);
        assert_eq!(cpu_ticks("garbage"), 0);
    }

    #[test]
    fn rss_is_read_in_kib() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1964 kB\nThreads:\t1\n";
        assert_eq!(rss_kib(status), 1964);
        assert_eq!(rss_kib(""), 0);
    }

    #[test]
    fn this_process_can_be_measured() {
        let usage = Usage::of("self");
        assert!(usage.rss_kib > 0, "{usage:?}");
    }
}
