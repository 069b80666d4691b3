//! Throwaway benchmark: one SQLite writer doing group commit (BEGIN IMMEDIATE, a SAVEPOINT per
//! job, one COMMIT per batch), built on sqlx 0.9's SQLite driver (a worker thread per
//! connection, one channel round trip per statement) versus rusqlite on a dedicated OS thread
//! (jobs are boxed closures run synchronously inside the batch).
//!
//! Usage: sqlite_floor <variant> [--secs N] [--warmup N] [--tasks N] [--db PATH]
//! variants:
//!   sqlx            SqliteConnection, writer is a tokio task, savepoint per job when batch > 1
//!   sqlx-nosp       same, never a savepoint (comparison only)
//!   sqlx-any        AnyConnection over SQLite (what the server uses), savepoints as `sqlx`
//!   rusqlite        rusqlite on a dedicated OS thread, savepoint per job when batch > 1
//!   rusqlite-nosp   same, never a savepoint (comparison only)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::{Connection, Database};
use tokio::sync::{mpsc, oneshot};

const QUEUE: usize = 1024;
const BATCH: usize = 128;

const SCHEMA: &str = "
CREATE TABLE connections (bot_id TEXT PRIMARY KEY NOT NULL, workspace_id TEXT NOT NULL, workspace_name TEXT, owner_type TEXT NOT NULL, token_type TEXT NOT NULL, access_token BLOB, refresh_token BLOB, key_id TEXT NOT NULL, token_response TEXT NOT NULL, ref TEXT, status TEXT NOT NULL DEFAULT 'active', authorizations INTEGER NOT NULL DEFAULT 1, generation INTEGER NOT NULL DEFAULT 1, tokens_issued_at INTEGER NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX connections_workspace_id ON connections (workspace_id);
CREATE INDEX connections_ref ON connections (ref);
CREATE INDEX connections_status ON connections (status);
CREATE TABLE connection_events (id INTEGER PRIMARY KEY AUTOINCREMENT, bot_id TEXT NOT NULL, kind TEXT NOT NULL, message TEXT, request_id TEXT, created_at INTEGER NOT NULL);
CREATE INDEX connection_events_bot_id ON connection_events (bot_id, id);
";

const UPSERT: &str = "INSERT INTO connections (bot_id, workspace_id, workspace_name, owner_type, token_type, access_token, refresh_token, key_id, token_response, ref, tokens_issued_at, created_at, updated_at) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
ON CONFLICT (bot_id) DO UPDATE SET \
workspace_id = excluded.workspace_id, workspace_name = excluded.workspace_name, owner_type = excluded.owner_type, \
token_type = excluded.token_type, access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
key_id = excluded.key_id, token_response = excluded.token_response, ref = COALESCE(excluded.ref, connections.ref), \
status = 'active', authorizations = connections.authorizations + 1, generation = connections.generation + 1, \
tokens_issued_at = excluded.tokens_issued_at, updated_at = excluded.updated_at \
RETURNING authorizations";

const EVENT: &str =
    "INSERT INTO connection_events (bot_id, kind, request_id, created_at) VALUES ($1, $2, $3, $4)";

// ---------------------------------------------------------------------------------------------
// Workload

struct Params {
    bot_id: String,
    workspace_id: String,
    workspace_name: String,
    access_token: Vec<u8>,
    refresh_token: Vec<u8>,
    key_id: String,
    token_response: String,
    request_id: String,
    now: i64,
}

fn uuid() -> String {
    let b: u128 = fastrand::u128(..);
    let b = (b & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{b:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    fastrand::fill(&mut v);
    v
}

impl Params {
    fn random() -> Self {
        let bot_id = uuid();
        let workspace_id = uuid();
        let workspace_name = format!("Workspace {}", fastrand::u32(..));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let owner = uuid();
        // ~400 bytes of JSON, shaped like a token response with the secrets stripped.
        let token_response = format!(
            concat!(
                r#"{{"bot_id":"{}","workspace_id":"{}","workspace_name":"{}","workspace_icon":"https://example.com/icons/{}.png","#,
                r#""owner":{{"type":"user","user":{{"object":"user","id":"{}","name":"Some Person","avatar_url":null,"type":"person","#,
                r#""person":{{"email":"person{}@example.com"}}}}}},"duplicated_template_id":null,"request_id":"{}","token_type":"bearer"}}"#
            ),
            bot_id,
            workspace_id,
            workspace_name,
            fastrand::u64(..),
            owner,
            fastrand::u32(..),
            uuid(),
        );
        Self {
            bot_id,
            workspace_id,
            workspace_name,
            access_token: random_bytes(60),
            refresh_token: random_bytes(60),
            key_id: "key-2026-01".to_owned(),
            token_response,
            request_id: uuid(),
            now,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared counters

#[allow(dead_code)]
const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const DONE: u8 = 2;

#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    batched_jobs: AtomicU64,
    completed: AtomicU64,
    commit_ns: AtomicU64,
    phase: AtomicU8,
}

type Answer = Result<i64, String>;

// ---------------------------------------------------------------------------------------------
// sqlx writer (generic over the sqlx database: Sqlite, or Any over SQLite), a tokio task

type SqlxWork<DB> = Box<
    dyn for<'c> FnOnce(&'c mut <DB as Database>::Connection) -> BoxFuture<'c, Result<i64, sqlx::Error>>
        + Send,
>;

struct SqlxJob<DB: Database> {
    work: SqlxWork<DB>,
    reply: oneshot::Sender<Answer>,
}

async fn sqlx_writer<DB: Database>(
    mut connection: DB::Connection,
    mut jobs: mpsc::Receiver<SqlxJob<DB>>,
    savepoints: bool,
    stats: Arc<Stats>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while jobs.recv_many(&mut batch, BATCH).await > 0 {
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.batched_jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let mut transaction = match connection.begin_with(sqlx::SqlStr::from_static("BEGIN IMMEDIATE")).await {
            Ok(t) => t,
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.to_string()));
                }
                continue;
            }
        };
        let use_savepoints = savepoints && batch.len() > 1;
        let mut ran = Vec::with_capacity(batch.len());
        let mut broken: Option<String> = None;
        for job in batch.drain(..) {
            if broken.is_some() {
                let _ = job.reply.send(Err(broken.clone().unwrap()));
                continue;
            }
            if !use_savepoints {
                let result = (job.work)(&mut *transaction).await;
                ran.push((result, job.reply));
                continue;
            }
            let mut savepoint = match (&mut *transaction).begin().await {
                Ok(s) => s,
                Err(e) => {
                    let _ = job.reply.send(Err(e.to_string()));
                    broken = Some(e.to_string());
                    continue;
                }
            };
            let result = (job.work)(&mut *savepoint).await;
            let kept = if result.is_ok() { savepoint.commit().await } else { savepoint.rollback().await };
            ran.push((result, job.reply));
            if let Err(e) = kept {
                broken = Some(e.to_string());
            }
        }
        let only_failures = ran.iter().all(|(r, _)| r.is_err());
        let committed: Result<(), String> = match broken {
            Some(e) => {
                let _ = transaction.rollback().await;
                Err(e)
            }
            None if only_failures => transaction.rollback().await.map_err(|e| e.to_string()),
            None => {
                let t = Instant::now();
                let r = transaction.commit().await.map_err(|e| e.to_string());
                stats.commit_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                r
            }
        };
        for (result, reply) in ran {
            let answer = match (result, &committed) {
                (Ok(_), Err(e)) => Err(e.clone()),
                (r, _) => r.map_err(|e| e.to_string()),
            };
            let _ = reply.send(answer);
        }
    }
    let _ = connection.close().await;
}

fn sqlite_job(p: Params) -> SqlxWork<sqlx::Sqlite> {
    Box::new(move |c: &mut sqlx::SqliteConnection| {
        Box::pin(async move {
            let authorizations: i64 = sqlx::query_scalar(UPSERT)
                .bind(p.bot_id.clone())
                .bind(p.workspace_id)
                .bind(p.workspace_name)
                .bind("user")
                .bind("bearer")
                .bind(p.access_token)
                .bind(p.refresh_token)
                .bind(p.key_id)
                .bind(p.token_response)
                .bind(None::<String>)
                .bind(p.now)
                .bind(p.now)
                .bind(p.now)
                .fetch_one(&mut *c)
                .await?;
            sqlx::query(EVENT)
                .bind(p.bot_id)
                .bind("authorized")
                .bind(p.request_id)
                .bind(p.now)
                .execute(&mut *c)
                .await?;
            Ok(authorizations)
        })
    })
}

fn any_job(p: Params) -> SqlxWork<sqlx::Any> {
    Box::new(move |c: &mut sqlx::AnyConnection| {
        Box::pin(async move {
            let authorizations: i64 = sqlx::query_scalar(UPSERT)
                .bind(p.bot_id.clone())
                .bind(p.workspace_id)
                .bind(p.workspace_name)
                .bind("user")
                .bind("bearer")
                .bind(p.access_token)
                .bind(p.refresh_token)
                .bind(p.key_id)
                .bind(p.token_response)
                .bind(None::<String>)
                .bind(p.now)
                .bind(p.now)
                .bind(p.now)
                .fetch_one(&mut *c)
                .await?;
            sqlx::query(EVENT)
                .bind(p.bot_id)
                .bind("authorized")
                .bind(p.request_id)
                .bind(p.now)
                .execute(&mut *c)
                .await?;
            Ok(authorizations)
        })
    })
}

// ---------------------------------------------------------------------------------------------
// rusqlite writer on a dedicated OS thread

type RusqliteWork = Box<dyn FnOnce(&rusqlite::Transaction) -> rusqlite::Result<i64> + Send>;

struct RusqliteJob {
    work: RusqliteWork,
    reply: oneshot::Sender<Answer>,
}

fn rusqlite_writer(
    mut connection: rusqlite::Connection,
    mut jobs: mpsc::Receiver<RusqliteJob>,
    savepoints: bool,
    stats: Arc<Stats>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while jobs.blocking_recv_many(&mut batch, BATCH) > 0 {
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.batched_jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let transaction = match connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        {
            Ok(t) => t,
            Err(e) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(e.to_string()));
                }
                continue;
            }
        };
        let use_savepoints = savepoints && batch.len() > 1;
        let mut ran = Vec::with_capacity(batch.len());
        let mut broken: Option<String> = None;
        let exec = |sql: &str| -> rusqlite::Result<()> {
            transaction.prepare_cached(sql)?.execute([]).map(|_| ())
        };
        for job in batch.drain(..) {
            if let Some(e) = &broken {
                let _ = job.reply.send(Err(e.clone()));
                continue;
            }
            if !use_savepoints {
                let result = (job.work)(&transaction);
                ran.push((result, job.reply));
                continue;
            }
            if let Err(e) = exec("SAVEPOINT job") {
                let _ = job.reply.send(Err(e.to_string()));
                broken = Some(e.to_string());
                continue;
            }
            let result = (job.work)(&transaction);
            let kept = if result.is_ok() {
                exec("RELEASE job")
            } else {
                exec("ROLLBACK TO job").and_then(|_| exec("RELEASE job"))
            };
            ran.push((result, job.reply));
            if let Err(e) = kept {
                broken = Some(e.to_string());
            }
        }
        let only_failures = ran.iter().all(|(r, _)| r.is_err());
        let committed: Result<(), String> = match broken {
            Some(e) => {
                let _ = transaction.rollback();
                Err(e)
            }
            None if only_failures => transaction.rollback().map_err(|e| e.to_string()),
            None => {
                let t = Instant::now();
                let r = transaction.commit().map_err(|e| e.to_string());
                stats.commit_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                r
            }
        };
        for (result, reply) in ran {
            let answer = match (result, &committed) {
                (Ok(_), Err(e)) => Err(e.clone()),
                (r, _) => r.map_err(|e| e.to_string()),
            };
            let _ = reply.send(answer);
        }
    }
}

fn rusqlite_job(p: Params) -> RusqliteWork {
    Box::new(move |t: &rusqlite::Transaction| {
        let authorizations: i64 = t.prepare_cached(UPSERT)?.query_row(
            rusqlite::params![
                p.bot_id,
                p.workspace_id,
                p.workspace_name,
                "user",
                "bearer",
                p.access_token,
                p.refresh_token,
                p.key_id,
                p.token_response,
                None::<String>,
                p.now,
                p.now,
                p.now
            ],
            |row| row.get(0),
        )?;
        t.prepare_cached(EVENT)?
            .execute(rusqlite::params![p.bot_id, "authorized", p.request_id, p.now])?;
        Ok(authorizations)
    })
}

// ---------------------------------------------------------------------------------------------
// Submitting

#[derive(Clone)]
enum Submitter {
    Sqlite(mpsc::Sender<SqlxJob<sqlx::Sqlite>>),
    Any(mpsc::Sender<SqlxJob<sqlx::Any>>),
    Rusqlite(mpsc::Sender<RusqliteJob>),
}

impl Submitter {
    async fn submit(&self, p: Params) -> Answer {
        let (reply, answer) = oneshot::channel();
        let sent = match self {
            Self::Sqlite(q) => q.send(SqlxJob { work: sqlite_job(p), reply }).await.is_ok(),
            Self::Any(q) => q.send(SqlxJob { work: any_job(p), reply }).await.is_ok(),
            Self::Rusqlite(q) => q.send(RusqliteJob { work: rusqlite_job(p), reply }).await.is_ok(),
        };
        if !sent {
            return Err("writer stopped".into());
        }
        answer.await.map_err(|_| "writer stopped".to_string())?
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

#[derive(Clone, Copy, Default)]
struct Usage {
    cpu_us: u64,
    nvcsw: u64,
    nivcsw: u64,
}

fn rusage() -> Usage {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Usage {
        cpu_us: tv(ru.ru_utime) + tv(ru.ru_stime),
        nvcsw: ru.ru_nvcsw as u64,
        nivcsw: ru.ru_nivcsw as u64,
    }
}

/// Per thread: (name, on-CPU ns from schedstat, voluntary, involuntary switches).
fn threads() -> HashMap<u32, (String, u64, u64, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return out };
    for entry in dir.flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let base = entry.path();
        let comm = std::fs::read_to_string(base.join("comm")).unwrap_or_default().trim().to_owned();
        let run_ns = std::fs::read_to_string(base.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
            .unwrap_or(0);
        let status = std::fs::read_to_string(base.join("status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0u64)
        };
        out.insert(tid, (comm, run_ns, field("voluntary_ctxt_switches:"), field("nonvoluntary_ctxt_switches:")));
    }
    out
}

fn thread_class(name: &str) -> &'static str {
    if name.starts_with("tokio") {
        "tokio"
    } else if name.starts_with("sqlx-sqlite") || name.starts_with("sqlite-writer") {
        "sqlite"
    } else {
        "other"
    }
}

/// Busy and total jiffies of the whole machine (to see what else was running).
fn machine_cpu() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = s.lines().next().unwrap_or_default();
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

struct Args {
    variant: String,
    secs: u64,
    warmup: u64,
    tasks: usize,
    db: String,
    quiet: u64,
    sync: String,
}

fn args() -> Args {
    let mut a = Args {
        variant: String::new(),
        secs: 10,
        warmup: 2,
        tasks: 64,
        db: "/tmp/sqlite-floor-bench.db".into(),
        quiet: 0,
        sync: "FULL".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--secs" => a.secs = it.next().unwrap().parse().unwrap(),
            "--warmup" => a.warmup = it.next().unwrap().parse().unwrap(),
            "--tasks" => a.tasks = it.next().unwrap().parse().unwrap(),
            "--db" => a.db = it.next().unwrap(),
            "--sync" => a.sync = it.next().unwrap().to_uppercase(),
            "--quiet-wait" => a.quiet = it.next().unwrap().parse().unwrap(),
            v => a.variant = v.to_owned(),
        }
    }
    a
}

fn main() {
    let a = args();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{}", a.db, suffix));
    }
    {
        let c = rusqlite::Connection::open(&a.db).unwrap();
        c.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
        c.execute_batch(SCHEMA).unwrap();
    }
    let waited = wait_for_quiet(a.quiet);
    eprintln!("waited {waited}s for a quiet machine");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(a));
}

/// Waits (up to `max` s) until the rest of the machine has been idle-ish for a second, so a
/// run does not start in the middle of someone else's compile. Returns the seconds waited.
fn wait_for_quiet(max: u64) -> u64 {
    let start = Instant::now();
    loop {
        let m0 = machine_cpu();
        std::thread::sleep(Duration::from_secs(1));
        let m1 = machine_cpu();
        let busy = (m1.0 - m0.0) as f64 / (m1.1 - m0.1).max(1) as f64 * 200.0;
        if busy < 15.0 || start.elapsed().as_secs() >= max {
            return start.elapsed().as_secs();
        }
    }
}

async fn run(a: Args) {
    let stats = Arc::new(Stats::default());
    let mut writer_thread = None;
    let mut writer_task = None;
    let submitter = match a.variant.as_str() {
        "sqlx" | "sqlx-nosp" => {
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
            let options = SqliteConnectOptions::new()
                .filename(&a.db)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(match a.sync.as_str() {
                    "OFF" => SqliteSynchronous::Off,
                    "NORMAL" => SqliteSynchronous::Normal,
                    _ => SqliteSynchronous::Full,
                })
                .foreign_keys(true);
            let mut c = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
            let settings: (i64, String, i64) =
                sqlx::query_as("SELECT (SELECT synchronous FROM pragma_synchronous), (SELECT journal_mode FROM pragma_journal_mode), (SELECT foreign_keys FROM pragma_foreign_keys)")
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
            eprintln!("writer settings (synchronous, journal_mode, foreign_keys) = {settings:?}");
            let (tx, rx) = mpsc::channel(QUEUE);
            writer_task = Some(tokio::spawn(sqlx_writer::<sqlx::Sqlite>(
                c,
                rx,
                a.variant == "sqlx",
                stats.clone(),
            )));
            Submitter::Sqlite(tx)
        }
        "sqlx-any" => {
            use sqlx::Executor;
            sqlx::any::install_default_drivers();
            let mut c = sqlx::AnyConnection::connect(&format!("sqlite://{}", a.db)).await.unwrap();
            for pragma in [
                "PRAGMA busy_timeout = 5000".to_string(),
                "PRAGMA journal_mode = WAL".to_string(),
                format!("PRAGMA synchronous = {}", a.sync),
                "PRAGMA foreign_keys = ON".to_string(),
            ] {
                c.execute(sqlx::AssertSqlSafe(pragma)).await.unwrap();
            }
            let (tx, rx) = mpsc::channel(QUEUE);
            writer_task = Some(tokio::spawn(sqlx_writer::<sqlx::Any>(c, rx, true, stats.clone())));
            Submitter::Any(tx)
        }
        "rusqlite" | "rusqlite-nosp" => {
            let c = rusqlite::Connection::open(&a.db).unwrap();
            c.execute_batch(&format!(
                "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
                a.sync
            ))
            .unwrap();
            let settings: (i64, String, i64) = c
                .query_row("SELECT (SELECT synchronous FROM pragma_synchronous), (SELECT journal_mode FROM pragma_journal_mode), (SELECT foreign_keys FROM pragma_foreign_keys)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap();
            eprintln!("writer settings (synchronous, journal_mode, foreign_keys) = {settings:?}");
            let (tx, rx) = mpsc::channel(QUEUE);
            let savepoints = a.variant == "rusqlite";
            let s = stats.clone();
            writer_thread = Some(
                std::thread::Builder::new()
                    .name("sqlite-writer".into())
                    .spawn(move || rusqlite_writer(c, rx, savepoints, s))
                    .unwrap(),
            );
            Submitter::Rusqlite(tx)
        }
        v => panic!("unknown variant {v:?}"),
    };

    let mut tasks = Vec::new();
    for _ in 0..a.tasks {
        let submitter = submitter.clone();
        let stats = stats.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 14);
            loop {
                let phase = stats.phase.load(Ordering::Relaxed);
                if phase == DONE {
                    break;
                }
                let p = Params::random();
                let t0 = Instant::now();
                let r = submitter.submit(p).await;
                let dt = t0.elapsed();
                if let Err(e) = r {
                    panic!("job failed: {e}");
                }
                stats.completed.fetch_add(1, Ordering::Relaxed);
                if stats.phase.load(Ordering::Relaxed) == MEASURE {
                    latencies.push(dt.as_micros().min(u32::MAX as u128) as u32);
                }
            }
            latencies
        }));
    }
    drop(submitter);

    tokio::time::sleep(Duration::from_secs(a.warmup)).await;
    let (c0, b0, bj0, cn0) = (
        stats.completed.load(Ordering::Relaxed),
        stats.batches.load(Ordering::Relaxed),
        stats.batched_jobs.load(Ordering::Relaxed),
        stats.commit_ns.load(Ordering::Relaxed),
    );
    let u0 = rusage();
    let th0 = threads();
    let m0 = machine_cpu();
    let t0 = Instant::now();
    stats.phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(a.secs)).await;
    stats.phase.store(DONE, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let u1 = rusage();
    let th1 = threads();
    let m1 = machine_cpu();
    let (c1, b1, bj1, cn1) = (
        stats.completed.load(Ordering::Relaxed),
        stats.batches.load(Ordering::Relaxed),
        stats.batched_jobs.load(Ordering::Relaxed),
        stats.commit_ns.load(Ordering::Relaxed),
    );

    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    if let Some(t) = writer_task {
        t.await.unwrap();
    }
    if let Some(t) = writer_thread {
        tokio::task::spawn_blocking(move || t.join().unwrap()).await.unwrap();
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];

    let jobs = (c1 - c0) as f64;
    let cs = ((u1.nvcsw - u0.nvcsw) + (u1.nivcsw - u0.nivcsw)) as f64;
    let machine_busy_pct = (m1.0 - m0.0) as f64 / (m1.1 - m0.1) as f64 * 200.0; // % of one core, 2 cores
    let own_pct = (u1.cpu_us - u0.cpu_us) as f64 / 1e6 / elapsed * 100.0;

    // Per-thread-class breakdown.
    let mut classes: HashMap<&'static str, (u64, u64, u64)> = HashMap::new();
    for (tid, (name, run, v, iv)) in &th1 {
        let (r0, v0, iv0) = th0.get(tid).map(|x| (x.1, x.2, x.3)).unwrap_or((0, 0, 0));
        let e = classes.entry(thread_class(name)).or_default();
        e.0 += run - r0;
        e.1 += v - v0;
        e.2 += iv - iv0;
    }
    let class = |k: &str| classes.get(k).copied().unwrap_or_default();
    let (tk, sq, ot) = (class("tokio"), class("sqlite"), class("other"));

    // Sanity: every completed job left one row in each table.
    let (rows, events): (i64, i64) = {
        let c = rusqlite::Connection::open(&a.db).unwrap();
        (
            c.query_row("SELECT count(*) FROM connections", [], |r| r.get(0)).unwrap(),
            c.query_row("SELECT count(*) FROM connection_events", [], |r| r.get(0)).unwrap(),
        )
    };
    let total_done = stats.completed.load(Ordering::Relaxed);

    println!(
        "RESULT variant={} sync={} jobs_s={:.0} p50_us={} p99_us={} batch={:.2} commit_ms={:.2} cpu_us_job={:.1} cs_job={:.2} vcs_job={:.2} ivcs_job={:.2} \
         tokio_cpu_us_job={:.1} tokio_cs_job={:.2} sqlite_cpu_us_job={:.1} sqlite_cs_job={:.2} other_cpu_us_job={:.1} other_cs_job={:.2} \
         own_cpu_pct={:.0} machine_busy_pct={:.0} others_pct={:.0} jobs={} rows={} events={} total_done={}",
        a.variant,
        a.sync,
        jobs / elapsed,
        pct(0.50),
        pct(0.99),
        (bj1 - bj0) as f64 / (b1 - b0) as f64,
        (cn1 - cn0) as f64 / 1e6 / (b1 - b0) as f64,
        (u1.cpu_us - u0.cpu_us) as f64 / jobs,
        cs / jobs,
        (u1.nvcsw - u0.nvcsw) as f64 / jobs,
        (u1.nivcsw - u0.nivcsw) as f64 / jobs,
        tk.0 as f64 / 1e3 / jobs,
        (tk.1 + tk.2) as f64 / jobs,
        sq.0 as f64 / 1e3 / jobs,
        (sq.1 + sq.2) as f64 / jobs,
        ot.0 as f64 / 1e3 / jobs,
        (ot.1 + ot.2) as f64 / jobs,
        own_pct,
        machine_busy_pct,
        (machine_busy_pct - own_pct).max(0.0),
        jobs,
        rows,
        events,
        total_done,
    );
}
