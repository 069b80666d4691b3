//! The systems under test as child processes: started on free loopback ports, waited for,
//! measured (memory) and killed, and the run that puts load on them.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use hyper::header::{self, HeaderValue};
use tokio::process::{Child, Command};

use crate::RunArgs;
use crate::load::{self, Work};
use crate::report::{self, Memory, Results};
use crate::scenario::{Scenario, System};

/// The integration every system is configured with; the emulator accepts only these.
const CLIENT_ID: &str = "0b3e5a1c-6f0e-4d1b-9a55-3c1b0e0c4e01";
const CLIENT_SECRET: &str = "secret_noh_bench";
/// Set at build time so the default finds the workspace's binary from any working directory.
const WORKSPACE_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
/// How long a system may take to answer after it is started (the server creates its schema).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// A pause between scenarios, so that one's tail (closing connections, a SQLite checkpoint)
/// does not fall into the next one's warm-up.
const SETTLE: Duration = Duration::from_secs(1);

/// A system's process; killed when dropped, so an error or Ctrl-C leaves nothing running.
struct Process {
    name: &'static str,
    child: Child,
    pid: u32,
    addr: SocketAddr,
    log: PathBuf,
}

impl Process {
    fn spawn(
        name: &'static str,
        mut command: Command,
        addr: SocketAddr,
        dir: &Path,
    ) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .current_dir(dir)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child.id().ok_or_else(|| anyhow!("{name} exited at once"))?;
        Ok(Self { name, child, pid, addr, log })
    }

    /// Waits until `GET path` gets any answer; fails with the process's output if it exits.
    async fn wait_ready(&mut self, path: &str) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited ({status}) before answering:\n{}", self.name, self.log_tail());
            }
            let probe = load::get_once(self.addr, path, &[]);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), probe).await {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "{} did not answer within {START_TIMEOUT:?}:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Resident memory now and at its peak, in KiB, from /proc (Linux only).
    fn memory(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let field = |name: &str| {
            status.lines().find_map(|line| {
                line.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
            })
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    async fn stop(mut self) {
        // Nothing of theirs needs to survive: the data lives in a folder about to be removed.
        let _ = self.child.kill().await;
    }
}

/// A free port on 127.0.0.1: bound, read and released for the child to bind.
fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A command with none of the caller's settings for the server: a run must not depend on the
/// shell it was started from. RUST_LOG goes too, so the server logs at its shipped default.
fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if name_str.starts_with("NOH_")
            || name_str.starts_with("NOTION_CLIENT_")
            || name_str == "MOCK_NOTION_CLIENT_SECRET"
            || name_str == "RUST_LOG"
        {
            command.env_remove(&name);
        }
    }
    command
}

/// A database made for this run on the `--postgres` server, dropped when this is dropped.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("noh_bench_{}", std::process::id());
        let mut url = url::Url::parse(admin_url)
            .with_context(|| format!("--postgres {admin_url} is not a URL"))?;
        url.set_path(&format!("/{name}"));
        let database =
            Self { admin_url: admin_url.to_owned(), name: name.clone(), url: url.to_string() };
        database.psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        database.psql(&format!("CREATE DATABASE {name}"))?;
        Ok(database)
    }

    /// psql understands every way a URL may authenticate, which a hand-written client would not.
    fn psql(&self, sql: &str) -> anyhow::Result<()> {
        let output = std::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.admin_url, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .context("cannot run psql, which --postgres uses to create and drop its database (apt-get install postgresql-client)")?;
        if !output.status.success() {
            bail!("psql failed on `{sql}`: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(())
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // FORCE ends the connections of a server that was killed rather than stopped.
        if let Err(error) =
            self.psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
        {
            eprintln!("could not drop the database {}: {error:#}", self.name);
        }
    }
}

/// Which sections of today's configuration a build takes: older builds refuse newer keys.
#[derive(Clone, Copy, PartialEq)]
enum Era {
    /// Before `[rate_limit]`.
    Oldest,
    /// `[rate_limit]`, before `pages.show_shared`.
    RateLimits,
    /// Both.
    Current,
}

/// Our server's configuration: loopback only, the emulator as Notion, installs started from
/// Notion allowed so a callback with a code and no state is accepted. The load comes from one
/// address, so per-client rate limits are off. The success page's list of shared pages is off:
/// the Python package calls Notion only for the exchange, and the comparison is of the same
/// work (the list costs one search call to Notion per connection, whatever the server).
fn server_config(
    addr: SocketAddr,
    emulator: SocketAddr,
    storage_url: &str,
    era: Era,
) -> anyhow::Result<String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow!("no randomness: {e}"))?;
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    Ok(format!(
        "[server]\nbind = \"{addr}\"\npublic_url = \"http://{addr}\"\n\n\
         [notion]\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\napi_base_url = \"http://{emulator}\"\n\n\
         [storage]\nurl = \"{storage_url}\"\n\n\
         [security]\nmaster_key = \"{key}\"\nallow_notion_initiated = true\n{}",
        match era {
            Era::Oldest => "",
            Era::RateLimits => {
                "\n[rate_limit]\nflow_requests_per_minute = 0\nfailed_api_keys_per_minute = 0\n"
            }
            Era::Current => {
                "\n[rate_limit]\nflow_requests_per_minute = 0\nfailed_api_keys_per_minute = 0\n\n[pages]\nshow_shared = false\n"
            }
        }
    ))
}

/// Whether `server check` takes `config` (a build from before `[rate_limit]` does not).
async fn accepts(server: &Path, config: &Path) -> anyhow::Result<bool> {
    let output = clean_command(server)
        .args(["check", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run `check`")?;
    Ok(output.status.success() || !String::from_utf8_lossy(&output.stderr).contains("rate_limit"))
}

/// Makes an API key with the CLI, as an operator would; the key is the last line it prints.
async fn create_api_key(server: &Path, config: &Path, dir: &Path) -> anyhow::Result<String> {
    let output = clean_command(server)
        .args(["api-keys", "create", "--name", "noh-bench", "--config"])
        .arg(config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run `api-keys create`")?;
    if !output.status.success() {
        bail!("`api-keys create` failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .map(str::trim)
        .rfind(|line| line.starts_with("noh_"))
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("`api-keys create` printed no key"))
}

/// Our server on one database, with what its scenarios need.
struct Ours {
    process: Process,
    /// Resident memory once it answered, before the seeding callback.
    idle_kib: Option<u64>,
    /// The key and the one connection `token` asks for, when that scenario runs.
    token: Option<(String, String)>,
}

async fn start_ours(
    name: &'static str,
    server: &Path,
    dir: &Path,
    emulator: SocketAddr,
    storage_url: &str,
    with_token: bool,
) -> anyhow::Result<Ours> {
    let addr = free_addr()?;
    let config = dir.join(format!("{name}.toml"));
    for era in [Era::Current, Era::RateLimits, Era::Oldest] {
        std::fs::write(&config, server_config(addr, emulator, storage_url, era)?)
            .with_context(|| format!("cannot write {}", config.display()))?;
        if era == Era::Oldest || accepts(server, &config).await? {
            break;
        }
    }
    let key = if with_token { Some(create_api_key(server, &config, dir).await?) } else { None };
    let mut command = clean_command(server);
    command.arg("serve").arg("--config").arg(&config);
    let mut process = Process::spawn(name, command, addr, dir)?;
    process.wait_ready("/healthz").await?;
    let idle_kib = process.memory().map(|(rss, _)| rss);
    let token = match key {
        Some(key) => Some((key.clone(), seed_connection(addr, &key).await?)),
        None => None,
    };
    Ok(Ours { process, idle_kib, token })
}

/// Stores one connection through a callback and reads its bot id back through the API.
async fn seed_connection(addr: SocketAddr, key: &str) -> anyhow::Result<String> {
    let code = format!("seed-{}", std::process::id());
    let answer = load::get_once(addr, &format!("/callback?code={code}"), &[]).await?;
    if answer.status != 200 {
        bail!("the seeding callback answered {} (expected 200)", answer.status);
    }
    let bearer = HeaderValue::from_str(&format!("Bearer {key}"))?;
    let answer =
        load::get_once(addr, "/api/v1/connections", &[(header::AUTHORIZATION, bearer)]).await?;
    let list = load::json(&answer)?;
    list["connections"][0]["bot_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no connection listed after the seeding callback: {list}"))
}

/// The Python that can import the package: `--python`, or python3 if it can.
async fn find_python(asked: Option<&str>) -> anyhow::Result<Option<String>> {
    let candidate = asked.unwrap_or("python3");
    let imports = Command::new(candidate)
        .args(["-c", "import notion_oauth_handler, aiohttp"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success());
    match (imports, asked) {
        (true, _) => Ok(Some(candidate.to_owned())),
        (false, Some(python)) => bail!(
            "{python} cannot import notion_oauth_handler: {python} -m pip install notion-oauth-handler==0.1.3"
        ),
        (false, None) => {
            println!(
                "note: skipping the Python rows: python3 cannot import notion_oauth_handler \
                 (python3 -m pip install notion-oauth-handler==0.1.3, or pass --python PATH)"
            );
            Ok(None)
        }
    }
}

/// Which scenarios to run, in round order, and notes on those that cannot be.
fn selected(args: &RunArgs) -> anyhow::Result<Vec<Scenario>> {
    let Some(only) = &args.only else {
        return Ok(Scenario::ALL.to_vec());
    };
    let mut chosen = Vec::new();
    for name in only.iter().filter(|n| !n.trim().is_empty()) {
        let scenario = Scenario::parse(name).ok_or_else(|| {
            let all: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
            anyhow!("unknown scenario `{name}`; the scenarios are {}", all.join(", "))
        })?;
        chosen.push(scenario);
    }
    // Rounds always run in the canonical order, whatever order --only listed them in.
    Ok(Scenario::ALL.into_iter().filter(|s| chosen.contains(s)).collect())
}

fn server_binary(args: &RunArgs) -> anyhow::Result<PathBuf> {
    binary(args.server.as_deref())
}

fn emulator_binary(args: &RunArgs) -> anyhow::Result<PathBuf> {
    binary(args.emulator.as_deref())
}

fn binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = given.map_or_else(
        || Path::new(WORKSPACE_ROOT).join("target/release/notion-oauth-handler"),
        Path::to_path_buf,
    );
    if !path.is_file() {
        bail!(
            "no server binary at {}: build it first with `cargo build --release -p notion-oauth-handler -p bench` (or pass --server PATH)",
            path.display()
        );
    }
    // Printed in process listings and errors: without the `crates/bench/../..` detour.
    Ok(path.canonicalize().unwrap_or(path))
}

/// Everything started for a run. Fields drop in order: processes first, then the database
/// they used, then the folder.
struct Systems {
    processes: BTreeMap<System, Process>,
    /// Memory right after each system first answered, before any load.
    idle: BTreeMap<System, u64>,
    emulator: Option<Process>,
    token: Option<(String, String)>,
    _database: Option<PgDatabase>,
    _dir: Scratch,
}

/// The run's private folder (configurations, databases, logs), removed when dropped.
///
/// Not `tempfile`: it would turn on `bitflags`' `std` feature for the whole build when the
/// bench is built with the server in one `cargo build`, which renames the server's functions
/// and so defeats its link order (`crates/notion-oauth-handler/build.rs`).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> anyhow::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| anyhow!("no randomness: {e}"))?;
        let name = format!("noh-bench-{}-{:016x}", std::process::id(), u64::from_le_bytes(suffix));
        let path = std::env::temp_dir().join(name);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("cannot make the run's folder {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Systems {
    async fn start(
        args: &RunArgs,
        scenarios: &mut Vec<Scenario>,
        python: Option<String>,
    ) -> anyhow::Result<Self> {
        let wanted: Vec<System> = scenarios.iter().map(|s| s.system()).collect();
        let needs = |system: System| wanted.contains(&system);
        let dir = Scratch::new()?;
        let path = dir.0.clone();
        let mut systems = Systems {
            processes: BTreeMap::new(),
            idle: BTreeMap::new(),
            emulator: None,
            token: None,
            _database: None,
            _dir: dir,
        };

        if needs(System::Hello) {
            let addr = free_addr()?;
            let exe = std::env::current_exe().context("cannot find this program to run hello")?;
            let mut command = Command::new(exe);
            command.arg("hello").arg("--bind").arg(addr.to_string());
            let process = Process::spawn("hello", command, addr, &path)?;
            systems.add(System::Hello, process, "/").await?;
        }
        let needs_emulator =
            needs(System::Sqlite) || needs(System::Postgres) || needs(System::Python);
        if !needs_emulator {
            return Ok(systems);
        }
        let server = server_binary(args)?;
        let emulator_addr = free_addr()?;
        let mut command = clean_command(&emulator_binary(args)?);
        command
            .args(["mock-notion", "--bench", "--bind", &emulator_addr.to_string()])
            .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
            // Bench mode checks no redirect URI, but the emulator wants one registered.
            .args(["--redirect-uri", "http://localhost/callback"]);
        let mut emulator = Process::spawn("mock-notion", command, emulator_addr, &path)?;
        emulator.wait_ready("/v1/users/me").await?;
        systems.emulator = Some(emulator);

        if needs(System::Sqlite) {
            let with_token = scenarios.contains(&Scenario::Token);
            let ours = start_ours(
                "ours-sqlite",
                &server,
                &path,
                emulator_addr,
                "sqlite://noh-bench.db",
                with_token,
            )
            .await?;
            systems.token = ours.token;
            systems.add_started(System::Sqlite, ours.process, ours.idle_kib);
        }
        if needs(System::Postgres) {
            match &args.postgres {
                Some(admin_url) => {
                    let database = PgDatabase::create(admin_url)?;
                    let url = database.url.clone();
                    systems._database = Some(database);
                    let ours =
                        start_ours("ours-postgres", &server, &path, emulator_addr, &url, false)
                            .await?;
                    systems.add_started(System::Postgres, ours.process, ours.idle_kib);
                }
                None => {
                    if args.only.is_some() {
                        println!("note: skipping callback-pg and flow-pg: no --postgres URL given");
                    }
                    scenarios.retain(|s| s.system() != System::Postgres);
                }
            }
        }
        if needs(System::Python) {
            match python {
                Some(python) => {
                    let script = path.join("python_anchor.py");
                    std::fs::write(&script, include_str!("../python_anchor.py"))?;
                    let addr = free_addr()?;
                    let mut command = Command::new(python);
                    command
                        .arg(&script)
                        .arg(addr.port().to_string())
                        .arg(format!("http://{emulator_addr}"))
                        .args([CLIENT_ID, CLIENT_SECRET]);
                    let process = Process::spawn("python", command, addr, &path)?;
                    systems.add(System::Python, process, "/auth?error=ready").await?;
                }
                None => scenarios.retain(|s| s.system() != System::Python),
            }
        }
        Ok(systems)
    }

    async fn add(
        &mut self,
        system: System,
        mut process: Process,
        probe: &str,
    ) -> anyhow::Result<()> {
        process.wait_ready(probe).await?;
        let idle_kib = process.memory().map(|(rss, _)| rss);
        self.add_started(system, process, idle_kib);
        Ok(())
    }

    fn add_started(&mut self, system: System, process: Process, idle_kib: Option<u64>) {
        if let Some(rss) = idle_kib {
            self.idle.insert(system, rss);
        }
        self.processes.insert(system, process);
    }

    fn work(&self, scenario: Scenario) -> anyhow::Result<Work> {
        Ok(match scenario {
            Scenario::Hello => simple("/", &[200]),
            Scenario::Connect => simple("/connect", &[302, 303]),
            Scenario::Token => {
                let (key, bot_id) =
                    self.token.as_ref().ok_or_else(|| anyhow!("token has no key or connection"))?;
                let bearer = HeaderValue::from_str(&format!("Bearer {key}"))?;
                Work::Get {
                    path: format!("/api/v1/connections/{bot_id}/token"),
                    code: false,
                    headers: vec![(header::AUTHORIZATION, bearer)],
                    expect: &[200],
                }
            }
            // Without a state, the denied page is shown and nothing is stored: the work of
            // every cancel, and the same request as python-denied.
            // A denial without this browser's state: a page, and nothing stored. Builds before
            // 88393db show "access was not granted" (200); later ones refuse it as a flow they
            // did not start (400 unknown_flow). Either is the page this scenario times.
            Scenario::Denied => simple("/callback?error=access_denied", &[200, 400]),
            Scenario::Callback | Scenario::CallbackPg => with_code("/callback?"),
            Scenario::Flow | Scenario::FlowPg => Work::Flow,
            Scenario::PythonCallback => with_code("/auth?"),
            Scenario::PythonDenied => simple("/auth?error=access_denied", &[403]),
        })
    }

    /// Kills every process, reading each one's peak memory just before.
    async fn stop(mut self) -> BTreeMap<System, Memory> {
        let mut memory = BTreeMap::new();
        for (system, process) in std::mem::take(&mut self.processes) {
            let peak = process.memory().map(|(_, peak)| peak);
            memory.insert(
                system,
                Memory { idle_kib: self.idle.get(&system).copied(), peak_kib: peak },
            );
            process.stop().await;
        }
        if let Some(emulator) = self.emulator.take() {
            emulator.stop().await;
        }
        memory
    }
}

fn simple(path: &str, expect: &'static [u16]) -> Work {
    Work::Get { path: path.to_owned(), code: false, headers: Vec::new(), expect }
}

/// A GET of `path` followed by `code=<new code>`, answered by a success page (200).
fn with_code(path: &str) -> Work {
    Work::Get { path: path.to_owned(), code: true, headers: Vec::new(), expect: &[200] }
}

/// The whole run: start, load every scenario `rounds` times, stop, report.
pub(crate) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut scenarios = selected(&args)?;
    let python = if scenarios.iter().any(|s| s.system() == System::Python) {
        find_python(args.python.as_deref()).await?
    } else {
        None
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "noh-bench: {} s measured after {} s warm-up, {} round(s), {} connection(s), {} load thread(s) on a {cores}-core machine",
        args.duration, args.warmup, args.rounds, args.connections, args.threads
    );
    if cfg!(debug_assertions) {
        println!(
            "note: this is a debug build of noh-bench; it may be the bottleneck (use --release)"
        );
    }

    let systems = Systems::start(&args, &mut scenarios, python).await?;
    if scenarios.is_empty() {
        bail!("no scenario left to run");
    }
    let names: Vec<&str> = scenarios.iter().map(|s| s.name()).collect();
    println!("scenarios: {}", names.join(", "));

    let mut results = Results::new(&args);
    let outcome = measure(&args, &systems, &scenarios, &mut results).await;
    let memory = systems.stop().await;
    outcome?;
    results.memory = memory;
    println!();
    println!("{}", report::table(&results, &scenarios));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report::json(&results, &scenarios))?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("raw results written to {}", path.display());
    }
    Ok(())
}

async fn measure(
    args: &RunArgs,
    systems: &Systems,
    scenarios: &[Scenario],
    results: &mut Results,
) -> anyhow::Result<()> {
    let warmup = Duration::from_secs(args.warmup);
    let duration = Duration::from_secs(args.duration);
    for round in 1..=args.rounds {
        for &scenario in scenarios {
            let process = systems
                .processes
                .get(&scenario.system())
                .ok_or_else(|| anyhow!("{scenario}: its system is not running"))?;
            let work = Arc::new(systems.work(scenario)?);
            let tag = format!("{scenario}-r{round}");
            let tally =
                load::run(process.addr, work, args.connections, warmup, duration, &tag).await?;
            let line = results.add(scenario, round, tally, duration);
            println!("round {round}/{}  {line}", args.rounds);
            tokio::time::sleep(SETTLE).await;
        }
    }
    Ok(())
}
