//! An existing axum app with "Add to Notion" inside it: the flow under /notion, a hook that
//! records each connection in the app's own table, and the app's own success page.
//!
//! Run with `cargo run --example embed_in_axum` (a Notion emulator is started too), then open
//! http://127.0.0.1:3000/ and click the link.

use std::path::Path;
use std::sync::Arc;

use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Router, extract::State};
use notion_oauth_handler::config::Settings;
use notion_oauth_handler::domain::{BotId, EventType};
use notion_oauth_handler::embed::{
    ConnectView, ConnectionHook, Embedded, HookEvent, HookFuture, NotionOAuth, Outcome,
};
use notion_oauth_handler::lifecycle::{Freshness, Lifecycle, WhichTokens};
use sqlx::SqlitePool;

/// Keeps the app's own table in step with Notion connections.
pub(crate) struct RememberConnection {
    /// The app's own database.
    pub(crate) pool: SqlitePool,
}

impl ConnectionHook for RememberConnection {
    fn on_event<'a>(&'a self, event: &'a HookEvent) -> HookFuture<'a> {
        Box::pin(async move {
            let data = &event.data;
            let connected = match event.event_type {
                EventType::Created | EventType::Updated | EventType::Refreshed => true,
                EventType::Revoked | EventType::NeedsReauth => false,
                EventType::Denied => return Ok(()),
            };
            // The app's user is the `ref` it put on the connect link.
            let Some(user) = data["ref"].as_str() else { return Ok(()) };
            sqlx::query(
                "INSERT INTO notion_links (user_ref, bot_id, workspace, connected) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_ref) DO UPDATE SET bot_id = excluded.bot_id,
                     workspace = excluded.workspace, connected = excluded.connected",
            )
            .bind(user)
            .bind(data["bot_id"].as_str())
            .bind(data["workspace_name"].as_str())
            .bind(connected)
            .execute(&self.pool)
            // An error is retried, like a failed webhook.
            .await?;
            Ok(())
        })
    }
}

/// The app's own page after a successful connection; the other pages stay built in.
pub(crate) struct AppPages;

impl ConnectView for AppPages {
    fn respond(&self, outcome: &Outcome<'_>) -> Option<Response> {
        match outcome {
            Outcome::Connected { workspace_name, .. } => Some(
                Html(format!(
                    "<h1 id=\"app-success\">You're all set: {} is connected.</h1><a href=\"/\">Back to the app</a>",
                    html_escape(workspace_name.unwrap_or("your workspace"))
                ))
                .into_response(),
            ),
            _ => None,
        }
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// What the app's own routes reach: its table, and the flow's tokens.
#[derive(Clone)]
struct AppState {
    pool: SqlitePool,
    notion: Arc<Lifecycle>,
}

async fn home(State(app): State<AppState>) -> Html<String> {
    let rows: Vec<(String, Option<String>, Option<String>, bool)> = sqlx::query_as(
        "SELECT user_ref, bot_id, workspace, connected FROM notion_links ORDER BY user_ref",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap_or_default();
    let mut list = String::new();
    for (user, bot_id, workspace, connected) in rows {
        // Where the app would call Notion for this user, it asks for the token the same way.
        let token = match bot_id.filter(|_| connected) {
            Some(bot_id) => match app
                .notion
                .token(&BotId::new(bot_id), Freshness::Stored, WhichTokens::Access)
                .await
            {
                Ok(token) => format!("token generation {}", token.generation),
                Err(error) => format!("no token: {error}"),
            },
            None => "no token".to_owned(),
        };
        list.push_str(&format!(
            "<li>{}: {} ({}), {}</li>",
            html_escape(&user),
            html_escape(workspace.as_deref().unwrap_or("-")),
            if connected { "connected" } else { "not connected" },
            html_escape(&token),
        ));
    }
    Html(format!(
        "<h1>My app</h1><p><a href=\"/notion/connect?ref=user-1\">Connect Notion</a></p><ul>{list}</ul>"
    ))
}

/// The whole app: its own routes and table, plus the flow (`settings.server.base_path` is
/// where the flow's pages live, "/notion" here).
pub(crate) async fn build(
    settings: Settings,
    base_dir: &Path,
    app_db: SqlitePool,
) -> anyhow::Result<(Router, Embedded)> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS notion_links (user_ref TEXT PRIMARY KEY, bot_id TEXT, workspace TEXT, connected BOOLEAN)",
    )
    .execute(&app_db)
    .await?;
    let config = settings.validate(base_dir)?;
    let notion = NotionOAuth::new(config)
        .with_hook("my-app", RememberConnection { pool: app_db.clone() })
        .with_view(AppPages)
        .build()
        .await?;
    let state = AppState { pool: app_db, notion: notion.lifecycle().clone() };
    let app = Router::new().route("/", get(home)).with_state(state).merge(notion.router());
    Ok((app, notion))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join("noh-embed-example");
    std::fs::create_dir_all(&dir)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let notion = mock_notion::Emulator::spawn(
        mock_notion::EmulatorConfig {
            redirect_uris: vec![format!("{origin}/notion/callback")],
            ..Default::default()
        },
        "127.0.0.1:0",
    )
    .await?;
    let mut settings = Settings::default();
    settings.server.public_url = Some(origin.clone());
    settings.server.base_path = "/notion".into();
    settings.notion.client_id = Some(mock_notion::EmulatorConfig::default().client_id);
    settings.notion.client_secret =
        Some(mock_notion::EmulatorConfig::default().client_secret.into());
    settings.notion.api_base_url = notion.base_url();
    // A demo starts afresh each run: a new database and a new key (a real app keeps its key, secret,
    // or the tokens it stored cannot be read again).
    let _ = std::fs::remove_file(dir.join("notion.db"));
    settings.storage.url = format!("sqlite://{}", dir.join("notion.db").display());
    let (_, master_key) =
        notion_oauth_handler::vault::MasterKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.security.master_key = Some(master_key);
    let app_db =
        SqlitePool::connect(&format!("sqlite://{}?mode=rwc", dir.join("app.db").display())).await?;
    let (app, _notion) = build(settings, &dir, app_db).await?;
    println!("Open {origin}/");
    // With each request's peer address, so per-client rate limits apply to the flow's routes.
    axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await?;
    Ok(())
}
