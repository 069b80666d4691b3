//! `spawn_app` and a `TestApp` with one method per step a browser takes.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use mock_notion::{Emulator, EmulatorConfig, Endpoint, RunningEmulator};
use notion_oauth_handler::Application;
use notion_oauth_handler::config::{
    BrandingSettings, CommandHookSettings, ConnectSettings, DeliverySettings, DocumentSettings,
    PagesSettings, ProxySettings, RateLimitSettings, ServerSettings, Settings, WebhookSettings,
};
use notion_oauth_handler::domain::BotId;
use notion_oauth_handler::embed::{Embedded, NotionOAuth};
use notion_oauth_handler::store::{self, ConnectionFilter, ConnectionSummary, Store, StoredTokens};
use notion_oauth_handler::vault::{MasterKey, Vault};
use reqwest::cookie::{CookieStore, Jar};
use secrecy::SecretString;
use tokio::net::TcpListener;
use url::Url;

pub const CLIENT_SECRET: &str = "secret_test_client_secret_value_123";

/// What a test may change about the server and the emulator.
pub struct TestOptions {
    pub allow_notion_initiated: bool,
    pub timeout_seconds: u64,
    pub base_path: &'static str,
    /// Instead of the server's own http://127.0.0.1 address (for https-only behaviour).
    pub public_url: Option<&'static str>,
    pub emulator: EmulatorConfig,
    pub webhooks: Vec<WebhookSettings>,
    pub command_hook: Option<CommandHookSettings>,
    pub delivery: DeliverySettings,
    pub connect: ConnectSettings,
    pub pages: PagesSettings,
    pub branding: BrandingSettings,
    pub proxy: ProxySettings,
    /// Files written into the app's folder before its configuration is checked.
    pub files: Vec<(&'static str, Vec<u8>)>,
    /// `server.header_timeout_seconds` and `server.max_connections`.
    pub header_timeout_seconds: u64,
    pub max_connections: u64,
    pub max_connections_per_client: u64,
    /// `[rate_limit]`: the defaults, which a test making many flows from one address passes.
    pub rate_limit: RateLimitSettings,
    /// `server.trusted_proxies` and `server.forwarded_header`, when not the defaults.
    pub trusted_proxies: Option<Vec<String>>,
    pub forwarded_header: Option<&'static str>,
    /// Serve metrics on a port of their own (`TestApp::metrics_url`).
    pub metrics: bool,
    /// `[tls]`: the certificate and key files; the server is then https://localhost:PORT.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// A PostgreSQL database to store in instead of a fresh SQLite file (see [`postgres_url`]).
    pub postgres: Option<TestDatabase>,
    /// `[acme]`, for the named host: the server is then https://HOST:PORT.
    pub acme: Option<(String, notion_oauth_handler::config::AcmeSettings)>,
    /// `server.http_bind`.
    pub http_bind: Option<String>,
    /// The listener to serve on, when the test needs its port before the app exists.
    pub listener: Option<TcpListener>,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            allow_notion_initiated: false,
            timeout_seconds: 2,
            base_path: "/",
            public_url: None,
            emulator: EmulatorConfig::default(),
            webhooks: Vec::new(),
            command_hook: None,
            // Fast retries, so tests see them.
            delivery: DeliverySettings { retry_base_ms: 100, ..DeliverySettings::default() },
            connect: ConnectSettings::default(),
            pages: PagesSettings::default(),
            branding: BrandingSettings::default(),
            proxy: ProxySettings::default(),
            files: Vec::new(),
            postgres: None,
            header_timeout_seconds: ServerSettings::default().header_timeout_seconds,
            max_connections: ServerSettings::default().max_connections,
            max_connections_per_client: ServerSettings::default().max_connections_per_client,
            rate_limit: RateLimitSettings::default(),
            trusted_proxies: None,
            forwarded_header: None,
            tls: None,
            metrics: false,
            acme: None,
            http_bind: None,
            listener: None,
        }
    }
}

pub struct TestApp {
    /// `http://127.0.0.1:PORT` plus the base path, no trailing slash.
    pub address: String,
    pub settings: Settings,
    pub notion: RunningEmulator,
    pub master_key: String,

    /// `storage.url`, resolved.
    pub storage_url: String,
    /// `http://127.0.0.1:PORT/metrics` when the test asked for metrics.
    pub metrics_url: Option<String>,
    pub dir: tempfile::TempDir,
    /// Dropped with the app.
    _database: Option<TestDatabase>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// A browser: its own cookie jar, no redirects followed (each hop is asserted).
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
}

/// A client builder for tests; reqwest is built without a default TLS provider, so install
/// the one the server uses first.
pub fn http() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

impl Browser {
    pub fn new() -> Self {
        let jar = Arc::new(Jar::default());
        let client = http()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .build()
            .unwrap();
        Self { client, jar }
    }

    /// The value of the browser-binding cookie this browser holds for `url`.
    pub fn binding_cookie(&self, url: &str) -> Option<String> {
        let header = self.jar.cookies(&Url::parse(url).unwrap())?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|c| c.strip_prefix("noh_browser=").map(str::to_owned))
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.client.get(url).send().await.unwrap()
    }
}

pub struct Page {
    pub status: u16,
    pub body: String,
}

impl Page {
    /// The stable reason our error pages carry in `data-reason` (or the outcome of others).
    pub fn reason(&self) -> &str {
        let find =
            |attr: &str| self.body.split(attr).nth(1).and_then(|rest| rest.split('"').next());
        find("data-reason=\"").or_else(|| find("data-outcome=\"")).unwrap_or("")
    }
}

/// Gives up on a test whose tool or service this machine lacks. Under `CI=true` that fails
/// the test instead, since a skip there would hide a missing install step in `.ci/run`.
pub fn skip(what: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what}: required under CI=true (.ci/run installs it)"
    );
    skip_on_this_machine(what);
}

/// Gives up on a test that this machine cannot run (a file system without a feature), even
/// under CI. Either way the skip is said on stderr and added to the list that `./run-tests`
/// prints at the end, so that a skipped test is not taken for a passed one.
pub fn skip_on_this_machine(what: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    eprintln!("SKIPPED: {test}: {what}");
    if let Ok(path) = std::env::var("NOH_SKIPPED_FILE") {
        use std::io::Write;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
        if let Ok(mut file) = file {
            let _ = writeln!(file, "{test}: {what}");
        }
    }
}

/// The least a configuration needs to pass its check (everything else default).
pub fn minimal_settings() -> Settings {
    let mut settings = Settings::default();
    settings.server.public_url = Some("https://notion.example.com".into());
    settings.notion.client_id = Some("client".into());
    settings.notion.client_secret = Some(SecretString::from(CLIENT_SECRET));
    settings.security.master_key = Some(SecretString::from(random_key()));
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestOptions::default()).await
}

pub async fn spawn_app_with(options: TestOptions) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let listener = match options.listener {
        Some(listener) => listener,
        None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let port = listener.local_addr().unwrap().port();
    let origin = match (&options.tls, &options.acme) {
        (_, Some((host, _))) => format!("https://{host}:{port}"),
        (Some(_), None) => format!("https://localhost:{port}"),
        (None, None) => format!("http://{}", listener.local_addr().unwrap()),
    };
    let base = options.base_path.trim_end_matches('/');
    let mut emulator_config = options.emulator;
    emulator_config.client_id = "4a1e0f4e-0000-4000-8000-000000000001".into();
    emulator_config.client_secret = CLIENT_SECRET.into();
    emulator_config.redirect_uris = vec![format!("{origin}{base}/callback")];
    let notion = Emulator::spawn(emulator_config, "127.0.0.1:0").await.unwrap();

    let (_, master_key) = MasterKey::generate().unwrap();
    let master_key = secrecy::ExposeSecret::expose_secret(&master_key).to_owned();
    std::fs::write(dir.path().join("privacy.html"), "<h1>Privacy</h1>").unwrap();
    for (name, contents) in &options.files {
        std::fs::write(dir.path().join(name), contents).unwrap();
    }
    let mut settings = Settings::default();
    settings.server.bind = listener.local_addr().unwrap().to_string();
    settings.server.public_url =
        Some(options.public_url.map_or_else(|| origin.clone(), str::to_owned));
    settings.server.base_path = options.base_path.into();
    settings.server.header_timeout_seconds = options.header_timeout_seconds;
    settings.server.max_connections = options.max_connections;
    settings.server.max_connections_per_client = options.max_connections_per_client;
    if let Some(proxies) = options.trusted_proxies {
        settings.server.trusted_proxies = proxies;
    }
    if let Some(header) = options.forwarded_header {
        settings.server.forwarded_header = header.into();
    }
    settings.rate_limit = options.rate_limit;
    let metrics_url = options.metrics.then(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        settings.server.metrics_bind = Some(format!("127.0.0.1:{port}"));
        format!("http://127.0.0.1:{port}/metrics")
    });
    settings.acme = options.acme.map(|(_, acme)| acme);
    settings.server.http_bind = options.http_bind;
    if let Some((cert_file, key_file)) = options.tls {
        settings.tls.cert_file = Some(cert_file);
        settings.tls.key_file = Some(key_file);
    }
    settings.notion.client_id = Some("4a1e0f4e-0000-4000-8000-000000000001".into());
    settings.notion.client_secret = Some(SecretString::from(CLIENT_SECRET));
    settings.notion.api_base_url = notion.base_url();
    settings.notion.timeout_seconds = options.timeout_seconds;
    let storage_url = options
        .postgres
        .as_ref()
        .map(|database| database.url.clone())
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("connections.db").display()));
    settings.storage.url = storage_url.clone();
    settings.security.master_key = Some(SecretString::from(master_key.clone()));
    settings.security.allow_notion_initiated = options.allow_notion_initiated;
    settings.webhooks = options.webhooks;
    settings.command_hook = options.command_hook;
    settings.delivery = options.delivery;
    settings.connect = options.connect;
    settings.pages = options.pages;
    settings.branding = options.branding;
    settings.proxy = options.proxy;
    settings.documents = vec![DocumentSettings {
        path: "/privacy".into(),
        file: "privacy.html".into(),
        content_type: None,
    }];
    let config = settings.clone().validate(dir.path()).unwrap();

    let app = Application::build_with_listener(config, listener).await.unwrap();
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        address: format!("{origin}{base}"),
        settings,
        notion,
        master_key,

        storage_url,
        metrics_url,
        dir,
        _database: options.postgres,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

impl TestApp {
    pub fn emulator(&self) -> &Emulator {
        &self.notion.emulator
    }

    /// `GET /connect`, returning Notion's authorize URL from the 302.
    pub async fn connect(&self, browser: &Browser, reference: Option<&str>) -> Url {
        let mut url = Url::parse(&format!("{}/connect", self.address)).unwrap();
        if let Some(r) = reference {
            url.query_pairs_mut().append_pair("ref", r);
        }
        let response = browser.get(url.as_str()).await;
        assert_eq!(response.status().as_u16(), 302, "connect should redirect to Notion");
        Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
    }

    /// Plays the user on Notion's side (`allow` or `deny`, as `user`), returning the callback URL.
    pub async fn decide(&self, authorize: &Url, decision: &str, user: &str) -> Url {
        let mut url = authorize.clone();
        url.query_pairs_mut().append_pair("mock_decision", decision).append_pair("mock_user", user);
        let response = http()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 302, "the emulator should redirect back");
        Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
    }

    /// The browser arriving back at our callback.
    pub async fn callback(&self, browser: &Browser, url: &str) -> Page {
        let response = browser.get(url).await;
        let status = response.status().as_u16();
        Page { status, body: response.text().await.unwrap() }
    }

    /// A whole successful flow as `user`, returning the callback's page.
    pub async fn add_to_notion(
        &self,
        browser: &Browser,
        user: &str,
        reference: Option<&str>,
    ) -> Page {
        let authorize = self.connect(browser, reference).await;
        let callback = self.decide(&authorize, "allow", user).await;
        self.callback(browser, callback.as_str()).await
    }

    pub async fn callback_with_query(&self, browser: &Browser, query: &str) -> Page {
        self.callback(browser, &format!("{}/callback?{query}", self.address)).await
    }

    pub async fn store(&self) -> std::sync::Arc<dyn Store> {
        store::open_existing(&self.storage_url).await.unwrap()
    }

    pub async fn connections(&self) -> Vec<ConnectionSummary> {
        let filter = ConnectionFilter { limit: 1000, ..ConnectionFilter::default() };
        self.store().await.list_connections(&filter).await.unwrap()
    }

    pub fn vault(&self) -> Vault {
        Vault::new(
            &MasterKey::from_base64(&SecretString::from(self.master_key.clone())).unwrap(),
            &[],
        )
    }

    /// A connection's tokens, opened as the server opens them.
    pub async fn tokens(&self, bot_id: impl std::fmt::Display) -> StoredTokens {
        let bot_id = BotId::new(bot_id.to_string());
        self.store().await.tokens(&self.vault(), &bot_id).await.unwrap().unwrap()
    }

    pub fn token_requests(&self) -> usize {
        self.emulator().requests_to(Endpoint::Token).len()
    }

    /// Stops the server and waits for it, so the database files are complete on disk.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    /// Signs a state with this server's key, for tests that need a valid signature on claims
    /// the server would never issue (expired ones).
    pub fn sign_state(&self, claims: &notion_oauth::StateClaims) -> String {
        notion_oauth::StateSigner::new(
            self.vault().state_key(),
            std::time::Duration::from_secs(600),
        )
        .sign(claims)
    }
}

/// The API as the developer's backend calls it.
pub struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

/// An API answer: status, JSON body (Null when empty) and headers.
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Api {
    pub async fn call(&self, method: reqwest::Method, path: &str) -> Answer {
        self.send(method, path, None).await
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Answer {
        let request =
            self.client.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        Answer { status, body, headers }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(reqwest::Method::GET, path).await
    }

    pub async fn post(&self, path: &str) -> Answer {
        self.call(reqwest::Method::POST, path).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.call(reqwest::Method::DELETE, path).await
    }

    /// The deliveries in `status` once there is at least one (within 15 s).
    pub async fn wait_for_deliveries(&self, status: &str) -> serde_json::Value {
        let path = format!("/deliveries?status={status}");
        eventually(&format!("a {status} delivery"), Duration::from_secs(15), || async {
            let listed = self.get(&path).await.body;
            let deliveries = &listed["deliveries"];
            deliveries.as_array().is_some_and(|d| !d.is_empty()).then(|| deliveries.clone())
        })
        .await
    }

    pub fn with_key(&self, key: &str) -> Api {
        Api { client: self.client.clone(), base: self.base.clone(), key: key.to_owned() }
    }
}

impl TestApp {
    /// A new API key stored the way `api-keys create` stores one.
    pub async fn api_key(&self) -> String {
        let made = notion_oauth_handler::api_keys::generate().unwrap();
        self.store().await.insert_api_key(&made.id, "tests", &made.digest).await.unwrap();
        secrecy::ExposeSecret::expose_secret(&made.key).to_owned()
    }

    /// An API client with a fresh key.
    pub async fn api(&self) -> Api {
        Api {
            client: http().build().unwrap(),
            base: format!("{}/api/v1", self.address),
            key: self.api_key().await,
        }
    }

    /// Runs a whole flow and returns the new connection's bot id.
    pub async fn connected(&self, user: &str, reference: Option<&str>) -> String {
        let page = self.add_to_notion(&Browser::new(), user, reference).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let connections = self.connections().await;
        let connection = connections.iter().find(|c| c.owner_name.as_deref() == Some(user));
        connection.unwrap().bot_id.to_string()
    }

    /// Refresh-grant requests the emulator received.
    pub fn refresh_requests(&self) -> usize {
        self.emulator()
            .requests_to(Endpoint::Token)
            .iter()
            .filter(|r| r.body.contains("refresh_token") && !r.body.contains("authorization_code"))
            .count()
    }

    /// A second instance of the app on the same database and emulator, as another process
    /// would be (its own pool and locks), embedded in no app: its lifecycle is what tests use.
    pub async fn second_instance(&self) -> Embedded {
        let config = self.settings.clone().validate(self.dir.path()).unwrap();
        NotionOAuth::new(config).build().await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

/// What `check` finds once it finds something (`Some`), polling every 50 ms for at most
/// `within`; panics naming `what` (written out then, so it can show what was seen) if it never
/// does. For what happens in the background: a delivery, a process coming up, a lease running
/// out.
pub async fn eventually<T, F>(
    what: impl std::fmt::Display,
    within: Duration,
    mut check: impl FnMut() -> F,
) -> T
where
    F: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "{what} did not happen within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `param` of `url`'s query.
pub fn query_param(url: &Url, param: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == param).map(|(_, v)| v.into_owned())
}

/// Random bytes as base64, for keys a test needs.
pub fn random_key() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).unwrap();
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// `Receiver::answer(HANG)`: take the request, never answer in time.
pub const HANG: u16 = 999;

/// A webhook receiver on loopback that records what it gets and answers what the test says.
pub struct Receiver {
    pub url: String,
    answer: Arc<std::sync::atomic::AtomicU16>,
    received: Arc<std::sync::Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Debug)]
pub struct Received {
    pub headers: std::collections::HashMap<String, String>,
    pub body: String,
    pub answered: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let answer = Arc::new(std::sync::atomic::AtomicU16::new(200));
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (answer_for_route, received_for_route) = (answer.clone(), received.clone());
        let route = axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let (answer, received) = (answer_for_route.clone(), received_for_route.clone());
            async move {
                let status = answer.load(std::sync::atomic::Ordering::SeqCst);
                if status == HANG {
                    let headers = headers
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    received.lock().unwrap().push(Received { headers, body, answered: HANG });
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    return axum::http::StatusCode::OK;
                }
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                received.lock().unwrap().push(Received { headers, body, answered: status });
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/notion", listener.local_addr().unwrap());
        let app = axum::Router::new().route("/hooks/notion", route);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, answer, received, task }
    }

    /// The status the receiver answers from now on.
    pub fn answer(&self, status: u16) {
        self.answer.store(status, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// What was received once `done` holds (within 20 s).
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let what = Seeing { receiver: self, what };
        eventually(what, Duration::from_secs(20), || {
            let received = self.received();
            std::future::ready(done(&received).then_some(received))
        })
        .await
    }
}

/// "The receiver seeing …", with what it did see when that is written out.
struct Seeing<'a> {
    receiver: &'a Receiver,
    what: &'a str,
}

impl std::fmt::Display for Seeing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the receiver seeing {} (it saw {:?})", self.what, self.receiver.received())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Deliveries the receiver accepted (2xx), as (event type, event id) in arrival order.
pub fn accepted(received: &[Received]) -> Vec<(String, String)> {
    received
        .iter()
        .filter(|r| r.answered < 300)
        .map(|r| {
            (
                r.headers["notion-oauth-event-type"].clone(),
                r.headers["notion-oauth-event-id"].clone(),
            )
        })
        .collect()
}

pub const WEBHOOK_SECRET: &str = "whsec_test_0123456789abcdef";

/// A webhook to `url` for every event.
pub fn webhook(name: &str, url: &str) -> WebhookSettings {
    WebhookSettings {
        name: name.into(),
        url: url.into(),
        secret: Some(SecretString::from(WEBHOOK_SECRET)),
        secret_file: None,
        events: None,
        include_tokens: false,
    }
}

/// A PostgreSQL database made for one test, dropped with this.
pub struct TestDatabase {
    pub url: String,
    name: String,
    admin: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        use sqlx::Connection;
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs on the test's runtime, which must not be blocked: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut connection = sqlx::postgres::PgConnection::connect(&admin).await?;
                // FORCE: the server under test may still hold connections as it shuts down.
                let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut connection).await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("the test database {} was not dropped: {dropped:?}", self.name);
        }
    }
}

/// A fresh, empty PostgreSQL database for one test, on the server at `TEST_DATABASE_URL`
/// (default: this machine's, trust auth), dropped when the returned value is. `None` where
/// there is none, except under `CI=true`, where a missing server fails the test instead of
/// skipping it.
pub async fn postgres_url() -> Option<TestDatabase> {
    use sqlx::Connection;
    let admin = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut connection = match sqlx::postgres::PgConnection::connect(&admin).await {
        Ok(connection) => connection,
        Err(error) => {
            skip(&format!("no PostgreSQL at {admin} ({error})"));
            return None;
        }
    };
    let name = format!("noh_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut connection)
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    Some(TestDatabase { url: format!("{base}/{name}"), name, admin })
}
