//! A connection as it is shown (everything but the tokens) and read from its row: shared by the
//! connections themselves and by the history, which puts it in each event it queues.

use serde::Serialize;
use utoipa::ToSchema;

use super::sql::Columns;
use super::{now, word};
use crate::domain::{BotId, ConnectionStatus, WorkspaceId};

/// A connection as shown to operators and the API: everything but the tokens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionSummary {
    /// The connection's bot: one user's authorization in one workspace.
    #[schema(value_type = String)]
    pub bot_id: BotId,
    /// The workspace it was installed in.
    #[schema(value_type = String)]
    pub workspace_id: WorkspaceId,
    /// The workspace's name, if it has one.
    pub workspace_name: Option<String>,
    /// The workspace's icon, usually a URL.
    pub workspace_icon: Option<String>,
    /// `user` (a person authorized it) or `workspace` (legacy).
    pub owner_type: String,
    /// The Notion user who authorized it.
    pub owner_user_id: Option<String>,
    /// That user's name.
    pub owner_name: Option<String>,
    /// That user's email, when the integration may read it.
    pub owner_email: Option<String>,
    /// The page duplicated from the integration's template, if the user chose to.
    pub duplicated_template_id: Option<String>,
    /// The app's own reference passed to `/connect`.
    #[serde(rename = "ref")]
    #[schema(rename = "ref")]
    pub reference: Option<String>,
    /// `active`, `needs_reauth` (send the user to connect again) or `revoked`.
    pub status: ConnectionStatus,
    /// Why the status is not `active`.
    pub status_reason: Option<String>,
    /// How many times the user authorized (re-authorizations replace the token pair).
    pub authorizations: i64,
    /// Set when a refresh was under way and its process stopped before storing the answer:
    /// Notion may have rotated the pair, so the stored one may no longer work.
    pub refresh_interrupted_at: Option<i64>,
    /// When the pair was last refreshed, in seconds since the Unix epoch.
    pub refreshed_at: Option<i64>,
    /// When Notion was last asked whether the token works.
    pub checked_at: Option<i64>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// Seconds since the Unix epoch.
    pub updated_at: i64,
    /// The vault key that sealed the newest token.
    #[serde(skip)]
    #[schema(ignore)]
    pub key_id: String,
}

pub(super) const SUMMARY_COLUMNS: &str =
    "bot_id, workspace_id, workspace_name, workspace_icon, owner_type, owner_user_id,
    owner_name, owner_email, duplicated_template_id, ref, status, status_reason, authorizations,
    refresh_started_at, refresh_lease_until, refresh_interrupted_at,
    refreshed_at, checked_at, created_at, updated_at, key_id";

/// A refresh whose outcome is unknown: one recorded as such, or one whose holder's lease ran out
/// before it finished (its process died).
fn interrupted_at(row: &impl Columns) -> Result<Option<i64>, sqlx::Error> {
    let started: Option<i64> = row.column("refresh_started_at")?;
    let lease_until: Option<i64> = row.column("refresh_lease_until")?;
    Ok(match (started, lease_until) {
        (Some(started), Some(until)) if until < now() => Some(started),
        _ => row.column("refresh_interrupted_at")?,
    })
}

pub(super) fn summary(row: &impl Columns) -> Result<ConnectionSummary, sqlx::Error> {
    Ok(ConnectionSummary {
        bot_id: BotId::new(row.column::<String>("bot_id")?),
        workspace_id: WorkspaceId::new(row.column::<String>("workspace_id")?),
        workspace_name: row.column("workspace_name")?,
        workspace_icon: row.column("workspace_icon")?,
        owner_type: row.column("owner_type")?,
        owner_user_id: row.column("owner_user_id")?,
        owner_name: row.column("owner_name")?,
        owner_email: row.column("owner_email")?,
        duplicated_template_id: row.column("duplicated_template_id")?,
        reference: row.column("ref")?,
        status: word(row, "status")?,
        status_reason: row.column("status_reason")?,
        authorizations: row.column("authorizations")?,
        refresh_interrupted_at: interrupted_at(row)?,
        refreshed_at: row.column("refreshed_at")?,
        checked_at: row.column("checked_at")?,
        created_at: row.column("created_at")?,
        updated_at: row.column("updated_at")?,
        key_id: row.column("key_id")?,
    })
}
