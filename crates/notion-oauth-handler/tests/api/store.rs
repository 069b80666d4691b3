//! The store's contract, held against both built-in backends through the trait alone, and a
//! store of the app's own plugged into the embedded flow.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::join_all;
use notion_oauth::TokenResponse;
use notion_oauth_handler::domain::{
    BotId, ConnectionStatus, DeliveryStatus, EventType, HistoryKind, RefSource, Upserted,
};
use notion_oauth_handler::embed::{ConnectionHook, HookEvent, HookFuture, NotionOAuth};
use notion_oauth_handler::store::{
    self, ApiKeys, Claim, ConnectLinks, ConnectionFilter, ConnectionSummary, Connections, Delivery,
    DeliverySummary, Event, History, HistoryEntry, LeaseFor, Outbox, RefreshFailure,
    RefreshFailureKind, Refreshes, Retry, Routing, SealedGrant, SealedTokens, SqlStore, Store,
    StoreError, StoredApiKey, WhichTokens, now,
};
use notion_oauth_handler::vault::{MasterKey, Vault};
use secrecy::SecretString;

use url::Url;

use crate::helpers::{Browser, eventually, postgres_url, random_key};

fn grant(bot_id: &str, access: &str, refresh: Option<&str>) -> TokenResponse {
    serde_json::from_value(serde_json::json!({
        "access_token": access, "token_type": "bearer", "refresh_token": refresh,
        "bot_id": bot_id, "workspace_id": "ws-1", "workspace_name": "Acme Corp",
        "owner": {"type": "workspace", "workspace": true}
    }))
    .unwrap()
}

fn bot(id: &str) -> BotId {
    BotId::new(id)
}

/// `app` hears everything; `audit` only revocations.
fn routing() -> Routing {
    Routing::none().with_target("app", EventType::ALL).with_target("audit", &[EventType::Revoked])
}

/// The built-in store at `url`, routed as [`routing`] says.
async fn routed(url: &str) -> Arc<dyn Store> {
    Arc::new(SqlStore::connect(url, routing()).await.unwrap())
}

async fn queued(store: &dyn Store) -> Vec<(String, String, Option<String>)> {
    let mut rows = store.deliveries(None, 100).await.unwrap();
    rows.reverse();
    rows.into_iter()
        .map(|d| (d.target, d.event_type.to_string(), d.bot_id.map(|b| b.to_string())))
        .collect()
}

fn failure(kind: RefreshFailureKind, message: &str) -> RefreshFailure<'_> {
    RefreshFailure { kind, message, request_id: None }
}

/// Every promise the server relies on, asked of `store` (routed as [`routing`] says) through
/// the trait.
async fn holds_the_contract(store: Arc<dyn Store>) {
    let vault =
        Vault::new(&MasterKey::from_base64(&SecretString::from(random_key())).unwrap(), &[]);
    store.ping().await.unwrap();

    // A state's nonce is used once, even by racing callbacks.
    let expires = now() + 600;
    let racing = join_all((0..8).map(|_| store.consume_state("nonce-1", expires))).await;
    assert_eq!(racing.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 1, "one winner");

    // Created, then re-authorized: the ref stays when the second flow had none.
    let first = grant("bot-1", "ntn_access_one", Some("ntn_refresh_one"));
    let sealed = SealedGrant::seal(&vault, &first).unwrap();
    let outcome = store.upsert_connection(&sealed, Some("user-1")).await.unwrap();
    assert_eq!(outcome, Upserted::Created);
    let second = grant("bot-1", "ntn_access_two", Some("ntn_refresh_two"));
    let sealed = SealedGrant::seal(&vault, &second).unwrap();
    let outcome = store.upsert_connection(&sealed, None).await.unwrap();
    assert_eq!(outcome, Upserted::Reauthorized);
    let connection = store.connection(&bot("bot-1")).await.unwrap().unwrap();
    assert_eq!(
        (connection.reference.as_deref(), connection.authorizations, connection.status.as_str()),
        (Some("user-1"), 2, "active")
    );

    // Tokens come back sealed, and open to the newest pair.
    let sealed = store.sealed_tokens(&bot("bot-1")).await.unwrap().unwrap();
    let raw = sealed.access_token.clone().unwrap();
    assert!(!raw.windows(b"ntn_access_two".len()).any(|w| w == b"ntn_access_two"));
    let tokens = sealed.open(&vault, &bot("bot-1"), WhichTokens::AccessAndRefresh).unwrap();
    assert_eq!(tokens.access_token.unwrap().expose_secret(), "ntn_access_two");
    assert_eq!(tokens.refresh_token.unwrap().expose_secret(), "ntn_refresh_two");
    // The access token alone leaves the refresh token sealed.
    let access = store.sealed_tokens(&bot("bot-1")).await.unwrap().unwrap();
    let access = access.open(&vault, &bot("bot-1"), WhichTokens::Access).unwrap();
    assert_eq!(access.access_token.unwrap().expose_secret(), "ntn_access_two");
    assert!(access.refresh_token.is_none());
    // Bound to their bot: another bot's name does not open them.
    let stolen = store.sealed_tokens(&bot("bot-1")).await.unwrap().unwrap().open(
        &vault,
        &bot("bot-2"),
        WhichTokens::AccessAndRefresh,
    );
    assert!(matches!(stolen, Err(StoreError::Vault(_))), "{stolen:?}");
    assert!(store.sealed_tokens(&bot("bot-unknown")).await.unwrap().is_none());
    let generation = tokens.generation;

    // Each event is queued, with its change, for the targets that want it.
    assert_eq!(
        queued(&*store).await,
        vec![
            ("app".into(), "connection.created".into(), Some("bot-1".into())),
            ("app".into(), "connection.updated".into(), Some("bot-1".into())),
        ]
    );

    // Deliveries go in order per connection: a claimed or dead one holds back the next.
    let until = now() + 60;
    let created = store.claim_delivery("w1", until, &["app"]).await.unwrap().unwrap();
    assert_eq!(created.event_type.as_str(), "connection.created");
    assert!(store.claim_delivery("w2", until, &["app"]).await.unwrap().is_none());
    assert!(store.claim_delivery("w2", until, &["audit"]).await.unwrap().is_none());
    assert!(store.mark_failed(created.id, "w1", "boom", Retry::DeadLetter).await.unwrap());
    assert!(store.claim_delivery("w2", until, &["app"]).await.unwrap().is_none(), "dead holds");
    assert_eq!(store.deliveries(Some(DeliveryStatus::Dead), 10).await.unwrap().len(), 1);
    assert!(store.redeliver(created.id).await.unwrap());
    assert!(!store.redeliver(created.id).await.unwrap(), "pending already");
    let again = store.claim_delivery("w2", until, &["app"]).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (created.id, 0));
    assert!(!store.mark_delivered(again.id, "w1").await.unwrap(), "w1 lost it");
    assert!(store.mark_delivered(again.id, "w2").await.unwrap());
    let updated = store.claim_delivery("w2", until, &["app"]).await.unwrap().unwrap();
    assert_eq!(updated.event_type.as_str(), "connection.updated");
    // A stopping process frees what its workers held.
    assert_eq!(store.release_delivery_locks("w2").await.unwrap(), 1);
    let freed = store.claim_delivery("w3", until, &["app"]).await.unwrap().unwrap();
    assert_eq!(freed.id, updated.id);
    assert!(store.mark_delivered(freed.id, "w3").await.unwrap());

    // One refresher at a time, and only from the generation it read.
    let bot_1 = bot("bot-1");
    let owners: Vec<String> = (0..4).map(|i| format!("o{i}")).collect();
    let claims = join_all(
        owners.iter().map(|o| store.claim_lease(&bot_1, generation, o, until, LeaseFor::Refresh)),
    )
    .await;
    let won: Vec<usize> =
        (0..4).filter(|i| matches!(claims[*i].as_ref().unwrap(), Claim::Claimed { .. })).collect();
    assert_eq!(won.len(), 1, "{claims:?}");
    assert!(claims.iter().all(|c| matches!(c, Ok(Claim::Claimed { .. } | Claim::Held))));
    let owner = format!("o{}", won[0]);
    assert!(store.renew_lease(&bot("bot-1"), &owner, until + 10).await.unwrap());
    assert!(!store.renew_lease(&bot("bot-1"), "stranger", until + 10).await.unwrap());
    let stale = store
        .claim_lease(&bot("bot-1"), generation - 1, "o9", until, LeaseFor::Refresh)
        .await
        .unwrap();
    assert_eq!(stale, Claim::Moved);

    // A refresh from an old generation changes nothing; from the current one it rotates.
    let rotated = grant("bot-1", "ntn_access_three", Some("ntn_refresh_three"));
    let sealed = SealedGrant::seal(&vault, &rotated).unwrap();
    let late = store.complete_refresh(&sealed, generation - 1).await;
    assert_eq!(late.unwrap(), None);
    let next = store.complete_refresh(&sealed, generation).await.unwrap();
    assert_eq!(next, Some(generation + 1));
    let tokens = store.sealed_tokens(&bot("bot-1")).await.unwrap().unwrap().open(
        &vault,
        &bot("bot-1"),
        WhichTokens::AccessAndRefresh,
    );
    assert_eq!(tokens.unwrap().access_token.unwrap().expose_secret(), "ntn_access_three");

    // A refused refresh token: needs_reauth, said once, and never from a stale generation.
    let failure = RefreshFailure {
        kind: RefreshFailureKind::Refused,
        message: "refresh token refused",
        request_id: Some("req-1"),
    };
    assert!(!store.fail_refresh(&bot("bot-1"), generation, failure).await.unwrap());
    assert!(store.fail_refresh(&bot("bot-1"), generation + 1, failure).await.unwrap());
    let connection = store.connection(&bot("bot-1")).await.unwrap().unwrap();
    assert_eq!(connection.status, ConnectionStatus::NeedsReauth);

    // Revoking forgets the tokens and tells both targets.
    assert!(!store.revoke_connection(&bot("bot-1"), generation, "gone", None).await.unwrap());
    assert!(store.revoke_connection(&bot("bot-1"), generation + 1, "gone", None).await.unwrap());
    let sealed = store.sealed_tokens(&bot("bot-1")).await.unwrap().unwrap();
    assert!(sealed.access_token.is_none() && sealed.refresh_token.is_none());
    assert_eq!(sealed.status, ConnectionStatus::Revoked);

    // A cancelled flow has no connection, only the app's ref; the same ref again within the
    // window is not queued again (anyone can cancel flows), another ref is.
    store.record_denied(Some("user-2"), RefSource::Plain).await.unwrap();
    store.record_denied(Some("user-2"), RefSource::Plain).await.unwrap();

    let events: Vec<(String, String)> = queued(&*store)
        .await
        .into_iter()
        .skip(2)
        .map(|(target, event, _)| (target, event))
        .collect();
    let expected = [
        ("app", "connection.refreshed"),
        ("app", "connection.needs_reauth"),
        ("app", "connection.revoked"),
        ("audit", "connection.revoked"),
        ("app", "connection.denied"),
    ];
    assert_eq!(events, expected.map(|(t, e)| (t.to_owned(), e.to_owned())));
    let history: Vec<String> = store
        .events(&bot("bot-1"), 50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    assert_eq!(
        history,
        ["revoked", "needs_reauth", "refresh_failed", "refreshed", "reconnected", "connected"]
    );

    // API keys: stored by digest, revoked once.
    store.insert_api_key("key-1", "backend", b"digest").await.unwrap();
    assert_eq!(store.api_key("key-1").await.unwrap().unwrap().secret_hash, b"digest");
    assert_eq!(store.api_keys().await.unwrap().len(), 1);
    assert!(store.revoke_api_key("key-1").await.unwrap());
    assert!(!store.revoke_api_key("key-1").await.unwrap());

    // One-time links: used once, even by racing clicks; expired ones never.
    store.insert_connect_link(b"link-1", Some("user-3"), None, now() + 60).await.unwrap();
    store.insert_connect_link(b"link-old", Some("user-4"), None, now() - 1).await.unwrap();
    let clicks = join_all((0..4).map(|_| store.use_connect_link(b"link-1"))).await;
    let used: Vec<_> = clicks.into_iter().filter_map(|c| c.unwrap()).collect();
    let expected = store::UsedLink {
        reference: Some("user-3".to_owned()),
        return_to: None,
        expires_at: used.first().map_or(0, |u| u.expires_at),
    };
    assert_eq!(used, vec![expected]);
    assert!((now() + 59..=now() + 60).contains(&used[0].expires_at));
    assert_eq!(store.use_connect_link(b"link-old").await.unwrap(), None);

    // The bodies are the documented envelope, with the connection after the change, no token.
    let claimed = store.claim_delivery("w4", until, &["app"]).await.unwrap().unwrap();
    let body: serde_json::Value = serde_json::from_str(&claimed.payload).unwrap();
    assert_eq!(body["id"], claimed.event_id.as_str());
    assert_eq!(
        (body["type"].as_str(), claimed.event_type.as_str()),
        (Some("connection.refreshed"), "connection.refreshed")
    );
    assert!(
        time::OffsetDateTime::parse(
            body["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );
    assert_eq!(
        (body["data"]["bot_id"].as_str(), body["data"]["ref"].as_str()),
        (Some("bot-1"), Some("user-1"))
    );
    assert!(!claimed.payload.contains("ntn_"), "{}", claimed.payload);
    // A dead letter holds back its own connection and target only.
    assert!(store.mark_failed(claimed.id, "w4", "gone", Retry::DeadLetter).await.unwrap());
    let next = store.claim_delivery("w4", until, &["app"]).await.unwrap().unwrap();
    assert_eq!(next.event_type.as_str(), "connection.denied");
    let audit = store.claim_delivery("w4", until, &["audit"]).await.unwrap().unwrap();
    assert_eq!(audit.event_type.as_str(), "connection.revoked");
    assert_eq!(store.redeliver_dead().await.unwrap(), 1);

    holds_the_refresh_contract(&*store, &vault).await;
    store.close().await;
}

/// Leases that run out, pairs without a refresh token, checks: on connections with no targets.
async fn holds_the_refresh_contract(store: &dyn Store, vault: &Vault) {
    let with_refresh = SealedGrant::seal(vault, &grant("bot-2", "ntn_a2", Some("ntn_r2"))).unwrap();
    store.upsert_connection(&with_refresh, Some("user-2")).await.unwrap();
    let without = SealedGrant::seal(vault, &grant("bot-3", "ntn_a3", None)).unwrap();
    store.upsert_connection(&without, Some("user-3")).await.unwrap();
    let due: Vec<String> = store
        .due_for_refresh(now() + 1)
        .await
        .unwrap()
        .into_iter()
        .map(|(bot, _)| bot.to_string())
        .collect();
    assert!(due.contains(&"bot-2".to_owned()) && !due.contains(&"bot-3".to_owned()), "{due:?}");
    assert!(store.due_for_refresh(now() - 3600).await.unwrap().is_empty());
    let to_check = store.due_for_check(now() + 1).await.unwrap();
    assert!(to_check.contains(&bot("bot-2")) && !to_check.contains(&bot("bot-1")));

    // A holder whose lease ran out loses it, and the next one learns its refresh was cut short.
    let generation = store.sealed_tokens(&bot("bot-2")).await.unwrap().unwrap().generation;
    let first = store
        .claim_lease(&bot("bot-2"), generation, "a", now() - 1, LeaseFor::Refresh)
        .await
        .unwrap();
    assert_eq!(first, Claim::Claimed { interrupted: None });
    let second = store
        .claim_lease(&bot("bot-2"), generation, "b", now() + 60, LeaseFor::Refresh)
        .await
        .unwrap();
    assert!(matches!(second, Claim::Claimed { interrupted: Some(_) }), "{second:?}");
    assert!(!store.renew_lease(&bot("bot-2"), "a", now() + 60).await.unwrap());
    let summary = store.connection(&bot("bot-2")).await.unwrap().unwrap();
    assert!(summary.refresh_interrupted_at.is_some());

    // A refresh that brings no refresh token keeps the stored one, clears the marker, frees the
    // lock.
    let rotated = SealedGrant::seal(vault, &grant("bot-2", "ntn_a2b", None)).unwrap();
    let next = store.complete_refresh(&rotated, generation).await.unwrap().unwrap();
    let tokens = store
        .sealed_tokens(&bot("bot-2"))
        .await
        .unwrap()
        .unwrap()
        .open(vault, &bot("bot-2"), WhichTokens::AccessAndRefresh)
        .unwrap();
    assert_eq!(tokens.access_token.unwrap().expose_secret(), "ntn_a2b");
    assert_eq!(tokens.refresh_token.unwrap().expose_secret(), "ntn_r2");
    assert!(
        store.connection(&bot("bot-2")).await.unwrap().unwrap().refresh_interrupted_at.is_none()
    );
    let third =
        store.claim_lease(&bot("bot-2"), next, "c", now() + 60, LeaseFor::Refresh).await.unwrap();
    assert_eq!(third, Claim::Claimed { interrupted: None });
    assert_eq!(
        store.claim_lease(&bot("bot-2"), next, "d", now() + 60, LeaseFor::Refresh).await.unwrap(),
        Claim::Held
    );
    store.release_lease(&bot("bot-2"), "c").await.unwrap();
    assert!(matches!(
        store.claim_lease(&bot("bot-2"), next, "d", now() + 60, LeaseFor::Refresh).await.unwrap(),
        Claim::Claimed { .. }
    ));
    // An unknown outcome keeps the marker for the next refresher.
    let unknown = failure(RefreshFailureKind::OutcomeUnknown, "timed out");
    assert!(store.fail_refresh(&bot("bot-2"), next, unknown).await.unwrap());
    assert_eq!(
        store.sealed_tokens(&bot("bot-2")).await.unwrap().unwrap().generation,
        next,
        "same pair"
    );
    let after =
        store.claim_lease(&bot("bot-2"), next, "e", now() + 60, LeaseFor::Refresh).await.unwrap();
    assert!(matches!(after, Claim::Claimed { interrupted: Some(_) }), "{after:?}");
    store.release_lease(&bot("bot-2"), "e").await.unwrap();

    // A check: noted whatever the generation; an inactive token revokes only at its generation.
    store.record_check(&bot("bot-2"), false, next - 1, None).await.unwrap();
    let checked = store.connection(&bot("bot-2")).await.unwrap().unwrap();
    assert_eq!(checked.status, ConnectionStatus::Active);
    assert!(checked.checked_at.is_some());
    store.record_check(&bot("bot-2"), false, next, None).await.unwrap();
    let revoked = store.sealed_tokens(&bot("bot-2")).await.unwrap().unwrap();
    assert_eq!((revoked.status.as_str(), revoked.generation), ("revoked", next + 1));
    let entry = HistoryEntry {
        kind: HistoryKind::RefreshInterrupted,
        message: Some("note"),
        request_id: None,
    };
    store.record_event(&bot("bot-3"), entry).await.unwrap();
    let history: Vec<String> = store
        .events(&bot("bot-3"), 1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    assert_eq!(history, ["refresh_interrupted"]);

    // Listing: filtered, and paged by bot id.
    let by_ref = ConnectionFilter {
        reference: Some("user-3".into()),
        limit: 10,
        ..ConnectionFilter::default()
    };
    let found: Vec<String> = store
        .list_connections(&by_ref)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.bot_id.to_string())
        .collect();
    assert_eq!(found, ["bot-3"]);
    let page =
        ConnectionFilter { after: Some(bot("bot-1")), limit: 1, ..ConnectionFilter::default() };
    let found: Vec<String> = store
        .list_connections(&page)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.bot_id.to_string())
        .collect();
    assert_eq!(found, ["bot-2"]);
}

#[tokio::test]
async fn the_sqlite_store_holds_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("contract.db").display());
    holds_the_contract(routed(&url).await).await;
}

#[tokio::test]
async fn the_postgres_store_holds_the_contract() {
    let Some(database) = postgres_url().await else { return };
    holds_the_contract(routed(&database.url).await).await;
}

/// Many callbacks at once, through two instances sharing the database, each state claimed by
/// three racing callbacks: every nonce is won exactly once, however the claims were grouped
/// into statements, and a nonce won before stays won.
async fn each_state_is_won_once_by_racing_callbacks_across_instances(url: &str) {
    let (one, two) = (
        SqlStore::connect(url, Routing::none()).await.unwrap(),
        SqlStore::connect(url, Routing::none()).await.unwrap(),
    );
    let expires = now() + 600;
    assert!(one.consume_state("used-before", expires).await.unwrap());
    let nonces: Vec<String> =
        (0..150).map(|n| format!("racing-{n}")).chain(["used-before".to_owned()]).collect();
    let claims =
        nonces.iter().flat_map(|nonce| [&one, &two, &one].map(|store| (store, nonce.clone())));
    let won = join_all(claims.map(|(store, nonce)| async move {
        (nonce.clone(), store.consume_state(&nonce, expires).await.unwrap())
    }))
    .await;
    for nonce in &nonces {
        let wins = won.iter().filter(|(claimed, won)| claimed == nonce && *won).count();
        let expected = usize::from(nonce != "used-before");
        assert_eq!(wins, expected, "{nonce} was won {wins} times");
    }
    assert!(!two.consume_state("racing-7", expires).await.unwrap(), "won again later");
}

#[tokio::test]
async fn each_state_is_won_once_by_racing_callbacks_across_instances_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("racing.db").display());
    each_state_is_won_once_by_racing_callbacks_across_instances(&url).await;
}

#[tokio::test]
async fn each_state_is_won_once_by_racing_callbacks_across_instances_on_postgres() {
    let Some(database) = postgres_url().await else { return };
    each_state_is_won_once_by_racing_callbacks_across_instances(&database.url).await;
}

/// PostgreSQL records the nonces of concurrent callbacks with one statement; one that the
/// database refuses (text with a NUL, which our states never carry) fails its own callback and
/// no other.
#[tokio::test]
async fn a_nonce_postgres_refuses_fails_alone_among_those_recorded_with_it() {
    let Some(database) = postgres_url().await else { return };
    let store = SqlStore::connect(&database.url, Routing::none()).await.unwrap();
    let expires = now() + 600;
    let nonces: Vec<String> = (0..40)
        .map(|n| if n == 17 { "poisoned\0nonce".to_owned() } else { format!("fine-{n}") })
        .collect();
    let answers = join_all(nonces.iter().map(|nonce| store.consume_state(nonce, expires))).await;
    for (nonce, answer) in nonces.iter().zip(&answers) {
        if nonce.contains('\0') {
            assert!(answer.is_err(), "PostgreSQL took a NUL: {answer:?}");
        } else {
            assert!(matches!(answer, Ok(true)), "{nonce}: {answer:?}");
        }
    }
}

/// Anyone can cancel flows: one `ref` is queued once per window, and denials, which belong to
/// no connection, are delivered after the connections' own events.
async fn denials_are_queued_once_per_ref_and_wait_behind_connections(url: &str) {
    let store = routed(url).await;
    for reference in ["a", "b", "a", "c", "a"] {
        store.record_denied(Some(reference), RefSource::Plain).await.unwrap();
    }
    // A typed `?ref=a` does not hold back the denial of a link the app signed for `a`.
    store.record_denied(Some("a"), RefSource::Vouched).await.unwrap();
    let vault =
        Vault::new(&MasterKey::from_base64(&SecretString::from(random_key())).unwrap(), &[]);
    let grant = SealedGrant::seal(&vault, &grant("bot-q", "ntn_q", None)).unwrap();
    store.upsert_connection(&grant, None).await.unwrap();

    let queued = store.deliveries(None, 50).await.unwrap();
    let denials = queued.iter().filter(|d| d.event_type == "connection.denied").count();
    assert_eq!(denials, 4, "{queued:?}");
    let first = store.claim_delivery("w", now() + 60, &["app"]).await.unwrap().unwrap();
    assert_eq!(first.event_type.as_str(), "connection.created");
}

#[tokio::test]
async fn denials_are_queued_once_per_ref_and_wait_behind_connections_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("denials.db").display());
    denials_are_queued_once_per_ref_and_wait_behind_connections(&url).await;
}

#[tokio::test]
async fn denials_are_queued_once_per_ref_and_wait_behind_connections_on_postgres() {
    let Some(database) = postgres_url().await else { return };
    denials_are_queued_once_per_ref_and_wait_behind_connections(&database.url).await;
}

/// What can never be used again goes: spent nonces, and deliveries finished (delivered or dead)
/// before the retention; pending ones and nonces still in their time stay.
async fn what_is_spent_is_forgotten_after_its_time(url: &str) {
    let store = routed(url).await;
    let vault =
        Vault::new(&MasterKey::from_base64(&SecretString::from(random_key())).unwrap(), &[]);
    for name in ["bot-f1", "bot-f2", "bot-f3"] {
        let grant = SealedGrant::seal(&vault, &grant(name, "ntn_f", None)).unwrap();
        store.upsert_connection(&grant, None).await.unwrap();
    }
    let until = now() + 60;
    let delivered = store.claim_delivery("w", until, &["app"]).await.unwrap().unwrap();
    assert!(store.mark_delivered(delivered.id, "w").await.unwrap());
    let dead = store.claim_delivery("w", until, &["app"]).await.unwrap().unwrap();
    assert!(store.mark_failed(dead.id, "w", "boom", Retry::DeadLetter).await.unwrap());
    assert!(store.consume_state("spent", now() - 10).await.unwrap());
    assert!(store.consume_state("in-time", now() + 600).await.unwrap());

    // Nothing finished before an hour ago: only the spent nonce goes.
    assert_eq!(store.forget_expired(now() - 3600).await.unwrap(), 1);
    assert_eq!(store.deliveries(None, 10).await.unwrap().len(), 3);
    assert_eq!(store.forget_expired(now() + 1).await.unwrap(), 2);

    let left = store.deliveries(None, 10).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].status, DeliveryStatus::Pending);
    assert!(store.consume_state("spent", now() + 600).await.unwrap(), "forgotten");
    assert!(!store.consume_state("in-time", now() + 600).await.unwrap(), "still remembered");
}

#[tokio::test]
async fn what_is_spent_is_forgotten_after_its_time_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("forget.db").display());
    what_is_spent_is_forgotten_after_its_time(&url).await;
}

#[tokio::test]
async fn what_is_spent_is_forgotten_after_its_time_on_postgres() {
    let Some(database) = postgres_url().await else { return };
    what_is_spent_is_forgotten_after_its_time(&database.url).await;
}

/// A key rotation: every pair sealed under an old key is sealed again under the active one, and
/// a pair replaced meanwhile (another generation) is left alone.
async fn a_rotation_reseals_every_token_under_the_active_key(url: &str) {
    let store = SqlStore::connect(url, Routing::none()).await.unwrap();
    let key = || MasterKey::from_base64(&SecretString::from(random_key())).unwrap();
    let (old, new) = (key(), key());
    let before = Vault::new(&old, &[]);
    for (name, refresh) in [("bot-r1", Some("nrt_r1")), ("bot-r2", None)] {
        let grant = SealedGrant::seal(&before, &grant(name, &format!("ntn_{name}"), refresh));
        store.upsert_connection(&grant.unwrap(), None).await.unwrap();
    }
    let vault = Vault::new(&new, std::slice::from_ref(&old));
    let active = vault.active_key_id();

    let batch = store.sealed_with_other_keys(&active, 100).await.unwrap();
    assert_eq!(batch.len(), 2);
    for (bot_id, sealed) in &batch {
        let resealed = sealed.resealed(&vault, bot_id).unwrap();
        assert!(!store.reseal(bot_id, sealed.generation + 1, &resealed).await.unwrap(), "stale");
        assert!(store.reseal(bot_id, sealed.generation, &resealed).await.unwrap());
    }

    assert!(store.sealed_with_other_keys(&active, 100).await.unwrap().is_empty());
    assert_eq!(store.sealing_key_ids().await.unwrap(), [active]);
    let only_new = Vault::new(&new, &[]);
    let tokens = store.sealed_tokens(&bot("bot-r1")).await.unwrap().unwrap();
    let tokens = tokens.open(&only_new, &bot("bot-r1"), WhichTokens::AccessAndRefresh).unwrap();
    assert_eq!(tokens.access_token.unwrap().expose_secret(), "ntn_bot-r1");
    assert_eq!(tokens.refresh_token.unwrap().expose_secret(), "nrt_r1");
    store.close().await;
}

#[tokio::test]
async fn a_rotation_reseals_every_token_under_the_active_key_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("rotate.db").display());
    a_rotation_reseals_every_token_under_the_active_key(&url).await;
}

#[tokio::test]
async fn a_rotation_reseals_every_token_under_the_active_key_on_postgres() {
    let Some(database) = postgres_url().await else { return };
    a_rotation_reseals_every_token_under_the_active_key(&database.url).await;
}

/// With nothing routed, PostgreSQL writes an authorization and its history row in one
/// statement; SQLite in one transaction. Either way both are there, with the right kind.
async fn an_unrouted_authorization_keeps_its_history(url: &str) {
    let store = SqlStore::connect(url, Routing::none()).await.unwrap();
    let vault =
        Vault::new(&MasterKey::from_base64(&SecretString::from(random_key())).unwrap(), &[]);
    let first = SealedGrant::seal(&vault, &grant("bot-u", "ntn_one", Some("ntn_r1"))).unwrap();
    let again = SealedGrant::seal(&vault, &grant("bot-u", "ntn_two", None)).unwrap();

    let created = store.upsert_connection(&first, Some("user-1")).await.unwrap();
    let reauthorized = store.upsert_connection(&again, None).await.unwrap();

    assert_eq!((created, reauthorized), (Upserted::Created, Upserted::Reauthorized));
    let history: Vec<HistoryKind> =
        store.events(&bot("bot-u"), 10).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(history, [HistoryKind::Reconnected, HistoryKind::Connected]);
    let connection = store.connection(&bot("bot-u")).await.unwrap().unwrap();
    assert_eq!((connection.authorizations, connection.reference.as_deref()), (2, Some("user-1")));
    let tokens = store.sealed_tokens(&bot("bot-u")).await.unwrap().unwrap();
    let tokens = tokens.open(&vault, &bot("bot-u"), WhichTokens::AccessAndRefresh).unwrap();
    assert_eq!(tokens.access_token.unwrap().expose_secret(), "ntn_two");
    assert!(store.deliveries(None, 10).await.unwrap().is_empty());
    store.close().await;
}

#[tokio::test]
async fn an_unrouted_authorization_keeps_its_history_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("unrouted.db").display());
    an_unrouted_authorization_keeps_its_history(&url).await;
}

#[tokio::test]
async fn an_unrouted_authorization_keeps_its_history_on_postgres() {
    let Some(database) = postgres_url().await else { return };
    an_unrouted_authorization_keeps_its_history(&database.url).await;
}

/// Sixty users finishing their flows at once, ten of them twice (two tabs), with nobody routed
/// to hear of it (on PostgreSQL such connections are stored together): each bot is created
/// once and re-authorized once per repeat, keeps a history row per authorization, and opens
/// to a pair it was given, with every field of the grant stored.
async fn connections_stored_at_once_keep_each_bots_count_history_and_tokens(url: &str) {
    let store = SqlStore::connect(url, Routing::none()).await.unwrap();
    let vault =
        Vault::new(&MasterKey::from_base64(&SecretString::from(random_key())).unwrap(), &[]);
    let name = |n: usize| format!("bot-t{n}");
    let grants: Vec<SealedGrant> = (0..60)
        .chain(0..10)
        .map(|n| {
            let refresh = (n % 3 != 0).then(|| format!("ntn_refresh_{n}"));
            let granted = grant(&name(n), &format!("ntn_access_{n}"), refresh.as_deref());
            SealedGrant::seal(&vault, &granted).unwrap()
        })
        .collect();
    let stored =
        join_all(grants.iter().map(|grant| store.upsert_connection(grant, Some("tabs")))).await;

    for n in 0..60 {
        let bot = bot(&name(n));
        let times = if n < 10 { 2 } else { 1 };
        let outcomes: Vec<Upserted> = grants
            .iter()
            .zip(&stored)
            .filter(|(grant, _)| grant.bot_id == bot)
            .map(|(_, outcome)| *outcome.as_ref().unwrap())
            .collect();
        let created = outcomes.iter().filter(|o| **o == Upserted::Created).count();
        assert_eq!((created, outcomes.len()), (1, times), "{bot:?}: {outcomes:?}");
        let history = store.events(&bot, 10).await.unwrap();
        let kinds: Vec<HistoryKind> = history.iter().map(|e| e.kind).collect();
        let expected = if times == 2 {
            vec![HistoryKind::Reconnected, HistoryKind::Connected]
        } else {
            vec![HistoryKind::Connected]
        };
        assert_eq!(kinds, expected, "{bot:?}");
        let connection = store.connection(&bot).await.unwrap().unwrap();
        assert_eq!(
            (connection.authorizations, connection.reference.as_deref()),
            (times as i64, Some("tabs"))
        );
        assert_eq!(
            (connection.workspace_id.as_str(), connection.workspace_name.as_deref()),
            ("ws-1", Some("Acme Corp"))
        );
        let tokens = store.sealed_tokens(&bot).await.unwrap().unwrap();
        let tokens = tokens.open(&vault, &bot, WhichTokens::AccessAndRefresh).unwrap();
        assert_eq!(tokens.access_token.unwrap().expose_secret(), format!("ntn_access_{n}"));
        let refresh = tokens.refresh_token.map(|t| t.expose_secret().to_owned());
        assert_eq!(refresh, (n % 3 != 0).then(|| format!("ntn_refresh_{n}")), "{bot:?}");
    }
    store.close().await;
}

#[tokio::test]
async fn connections_stored_at_once_keep_each_bots_count_history_and_tokens_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("at-once.db").display());
    connections_stored_at_once_keep_each_bots_count_history_and_tokens(&url).await;
}

#[tokio::test]
async fn connections_stored_at_once_keep_each_bots_count_history_and_tokens_on_postgres() {
    let Some(database) = postgres_url().await else { return };
    connections_stored_at_once_keep_each_bots_count_history_and_tokens(&database.url).await;
}

/// On PostgreSQL connections that arrive together are stored by one statement; one the
/// database refuses (a NUL in the workspace's name, which Notion's JSON cannot carry to us)
/// fails its own callback and no other, and leaves nothing behind.
#[tokio::test]
async fn a_connection_postgres_refuses_fails_alone_among_those_stored_with_it() {
    let Some(database) = postgres_url().await else { return };
    let store = SqlStore::connect(&database.url, Routing::none()).await.unwrap();
    let vault =
        Vault::new(&MasterKey::from_base64(&SecretString::from(random_key())).unwrap(), &[]);
    let grants: Vec<SealedGrant> = (0..30)
        .map(|n| {
            let granted = grant(&format!("bot-p{n}"), &format!("ntn_p{n}"), None);
            let mut sealed = SealedGrant::seal(&vault, &granted).unwrap();
            if n == 11 {
                sealed.workspace_name = Some("Acme\0Corp".to_owned());
            }
            sealed
        })
        .collect();
    let stored = join_all(grants.iter().map(|grant| store.upsert_connection(grant, None))).await;
    for (n, outcome) in stored.iter().enumerate() {
        let connection = store.connection(&bot(&format!("bot-p{n}"))).await.unwrap();
        if n == 11 {
            assert!(outcome.is_err() && connection.is_none(), "{outcome:?}");
        } else {
            assert!(matches!(outcome, Ok(Upserted::Created)), "{n}: {outcome:?}");
            assert_eq!(connection.unwrap().authorizations, 1);
        }
    }
    store.close().await;
}

/// An app's own store: the built-in one, except that writing a connection fails while `down`
/// (its database is being failed over, say).
#[derive(Debug)]
struct FailingOver {
    inner: SqlStore,
    down: Arc<AtomicBool>,
}

#[store::async_trait]
impl Connections for FailingOver {
    async fn upsert_connection(
        &self,
        grant: &SealedGrant,
        reference: Option<&str>,
    ) -> Result<Upserted, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Other("the database is failing over".into()));
        }
        self.inner.upsert_connection(grant, reference).await
    }
    async fn list_connections(
        &self,
        filter: &ConnectionFilter,
    ) -> Result<Vec<ConnectionSummary>, StoreError> {
        self.inner.list_connections(filter).await
    }
    async fn connection(&self, bot_id: &BotId) -> Result<Option<ConnectionSummary>, StoreError> {
        self.inner.connection(bot_id).await
    }
    async fn sealed_tokens(&self, bot_id: &BotId) -> Result<Option<SealedTokens>, StoreError> {
        self.inner.sealed_tokens(bot_id).await
    }
}

#[store::async_trait]
impl History for FailingOver {
    async fn record_event(
        &self,
        bot_id: &BotId,
        entry: HistoryEntry<'_>,
    ) -> Result<(), StoreError> {
        self.inner.record_event(bot_id, entry).await
    }
    async fn record_denied(
        &self,
        reference: Option<&str>,
        source: RefSource,
    ) -> Result<(), StoreError> {
        self.inner.record_denied(reference, source).await
    }
    async fn events(&self, bot_id: &BotId, limit: i64) -> Result<Vec<Event>, StoreError> {
        self.inner.events(bot_id, limit).await
    }
}

#[store::async_trait]
impl Refreshes for FailingOver {
    async fn due_for_refresh(&self, cutoff: i64) -> Result<Vec<(BotId, i64)>, StoreError> {
        self.inner.due_for_refresh(cutoff).await
    }
    async fn due_for_check(&self, cutoff: i64) -> Result<Vec<BotId>, StoreError> {
        self.inner.due_for_check(cutoff).await
    }
    async fn claim_lease(
        &self,
        bot_id: &BotId,
        generation: i64,
        owner: &str,
        lease_until: i64,
        purpose: LeaseFor,
    ) -> Result<Claim, StoreError> {
        self.inner.claim_lease(bot_id, generation, owner, lease_until, purpose).await
    }
    async fn renew_lease(
        &self,
        bot_id: &BotId,
        owner: &str,
        lease_until: i64,
    ) -> Result<bool, StoreError> {
        self.inner.renew_lease(bot_id, owner, lease_until).await
    }
    async fn release_lease(&self, bot_id: &BotId, owner: &str) -> Result<(), StoreError> {
        self.inner.release_lease(bot_id, owner).await
    }
    async fn complete_refresh(
        &self,
        grant: &SealedGrant,
        from_generation: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.inner.complete_refresh(grant, from_generation).await
    }
    async fn fail_refresh(
        &self,
        bot_id: &BotId,
        from_generation: i64,
        failure: RefreshFailure<'_>,
    ) -> Result<bool, StoreError> {
        self.inner.fail_refresh(bot_id, from_generation, failure).await
    }
    async fn record_check(
        &self,
        bot_id: &BotId,
        active: bool,
        from_generation: i64,
        request_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.inner.record_check(bot_id, active, from_generation, request_id).await
    }
    async fn revoke_connection(
        &self,
        bot_id: &BotId,
        from_generation: i64,
        reason: &str,
        request_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.inner.revoke_connection(bot_id, from_generation, reason, request_id).await
    }
}

#[store::async_trait]
impl Outbox for FailingOver {
    async fn claim_delivery(
        &self,
        worker: &str,
        locked_until: i64,
        targets: &[&str],
    ) -> Result<Option<Delivery>, StoreError> {
        self.inner.claim_delivery(worker, locked_until, targets).await
    }
    async fn mark_delivered(&self, id: i64, worker: &str) -> Result<bool, StoreError> {
        self.inner.mark_delivered(id, worker).await
    }
    async fn mark_failed(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry: Retry,
    ) -> Result<bool, StoreError> {
        self.inner.mark_failed(id, worker, error, retry).await
    }
    async fn extend_delivery_lock(
        &self,
        id: i64,
        worker: &str,
        locked_until: i64,
    ) -> Result<(), StoreError> {
        self.inner.extend_delivery_lock(id, worker, locked_until).await
    }
    async fn release_delivery_locks(&self, worker_prefix: &str) -> Result<u64, StoreError> {
        self.inner.release_delivery_locks(worker_prefix).await
    }
    async fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<DeliverySummary>, StoreError> {
        self.inner.deliveries(status, limit).await
    }
    async fn redeliver(&self, id: i64) -> Result<bool, StoreError> {
        self.inner.redeliver(id).await
    }
    async fn redeliver_dead(&self) -> Result<u64, StoreError> {
        self.inner.redeliver_dead().await
    }
}

#[store::async_trait]
impl ApiKeys for FailingOver {
    async fn insert_api_key(
        &self,
        id: &str,
        name: &str,
        secret_hash: &[u8],
    ) -> Result<(), StoreError> {
        self.inner.insert_api_key(id, name, secret_hash).await
    }
    async fn api_keys(&self) -> Result<Vec<StoredApiKey>, StoreError> {
        self.inner.api_keys().await
    }
    async fn api_key(&self, id: &str) -> Result<Option<StoredApiKey>, StoreError> {
        self.inner.api_key(id).await
    }
    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.revoke_api_key(id).await
    }
    async fn touch_api_key(&self, id: &str) -> Result<(), StoreError> {
        self.inner.touch_api_key(id).await
    }
}

#[store::async_trait]
impl ConnectLinks for FailingOver {
    async fn insert_connect_link(
        &self,
        token_digest: &[u8],
        reference: Option<&str>,
        return_to: Option<&str>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.inner.insert_connect_link(token_digest, reference, return_to, expires_at).await
    }
    async fn use_connect_link(
        &self,
        token_digest: &[u8],
    ) -> Result<Option<store::UsedLink>, StoreError> {
        self.inner.use_connect_link(token_digest).await
    }
}

#[store::async_trait]
impl Store for FailingOver {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn consume_state(&self, nonce: &str, expires_at: i64) -> Result<bool, StoreError> {
        self.inner.consume_state(nonce, expires_at).await
    }
    async fn forget_expired(&self, deliveries_before: i64) -> Result<u64, StoreError> {
        self.inner.forget_expired(deliveries_before).await
    }
    async fn close(&self) {
        self.inner.close().await;
    }
}

/// Records the refs of the connections it hears of.
struct Heard(Arc<std::sync::Mutex<Vec<String>>>);

impl ConnectionHook for Heard {
    fn on_event<'a>(&'a self, event: &'a HookEvent) -> HookFuture<'a> {
        Box::pin(async move {
            let reference = event.data["ref"].as_str().unwrap_or("").to_owned();
            self.0.lock().unwrap().push(format!("{} {reference}", event.event_type));
            Ok(())
        })
    }
}

#[tokio::test]
async fn an_embedding_app_brings_its_own_store_and_a_failed_write_saves_nothing() {
    // The flow on its own port, keeping everything in the app's store.
    let app = crate::helpers::spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    app.emulator().add_redirect_uri(&format!("{origin}/callback"));
    let own_dir = tempfile::tempdir().unwrap();
    let own_url = format!("sqlite://{}", own_dir.path().join("own.db").display());
    let down = Arc::new(AtomicBool::new(true));
    let failing = down.clone();
    let own = move |routing| async move {
        Ok(FailingOver { inner: SqlStore::connect(&own_url, routing).await?, down: failing })
    };
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut settings = app.settings.clone();
    settings.server.public_url = Some(origin.clone());
    let config = settings.validate(app.dir.path()).unwrap();
    let embedded = NotionOAuth::new(config)
        .with_hook("app", Heard(heard.clone()))
        .with_store(own)
        .build()
        .await
        .unwrap();
    let router = embedded.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let add = |reference: &'static str| {
        let (app, origin) = (&app, origin.clone());
        async move {
            let browser = Browser::new();
            let started = browser.get(&format!("{origin}/connect?ref={reference}")).await;
            let location = started.headers()["location"].to_str().unwrap();
            let back = app.decide(&Url::parse(location).unwrap(), "allow", "Ada Lovelace").await;
            let page = browser.get(back.as_str()).await;
            (page.status().as_u16(), page.text().await.unwrap())
        }
    };

    // The app's database fails over while the user approves: nothing is saved, and the user is
    // told to try again.
    let (status, page) = add("user-1").await;
    assert_eq!(status, 500, "{page}");
    assert!(page.contains("data-reason=\"internal\"") && page.contains("Nothing was saved"));
    for secret in app.emulator().issued_secrets() {
        assert!(!page.contains(secret.as_str()), "a token on the error page");
    }
    let everything = ConnectionFilter { limit: 10, ..ConnectionFilter::default() };
    let own = embedded.store();
    assert!(own.list_connections(&everything).await.unwrap().is_empty());
    assert!(own.deliveries(None, 10).await.unwrap().is_empty());
    assert!(app.connections().await.is_empty(), "the configured database is not used");

    // Back up: the retry connects, into the app's store, and the hook hears of it.
    down.store(false, Ordering::SeqCst);
    let (status, page) = add("user-1").await;
    assert_eq!(status, 200, "{page}");
    let connections = own.list_connections(&everything).await.unwrap();
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].reference.as_deref(), Some("user-1"));
    eventually("the hook hearing of it", std::time::Duration::from_secs(5), || {
        std::future::ready((!heard.lock().unwrap().is_empty()).then_some(()))
    })
    .await;
    assert_eq!(*heard.lock().unwrap(), ["connection.created user-1"]);
    assert!(app.connections().await.is_empty(), "the configured database is not used");
    embedded.shutdown().await;
}

#[tokio::test]
async fn a_change_whose_delivery_cannot_be_queued_is_not_stored_either() {
    // Arrange: a connection, then an outbox that refuses every row (as a full disk would).
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("atomic.db").display());
    let vault =
        Vault::new(&MasterKey::from_base64(&SecretString::from(random_key())).unwrap(), &[]);
    let first = SealedGrant::seal(&vault, &grant("bot-1", "ntn_one", Some("ntn_r1"))).unwrap();
    // Set up with nothing routed, so the outbox starts empty.
    let unrouted = SqlStore::connect(&url, Routing::none()).await.unwrap();
    unrouted.upsert_connection(&first, Some("user-1")).await.unwrap();
    let store = routed(&url).await;
    let mut sqlite = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )
    .execute(&mut sqlite)
    .await
    .unwrap();
    let before = store.connection(&bot("bot-1")).await.unwrap().unwrap();
    let generation = store.sealed_tokens(&bot("bot-1")).await.unwrap().unwrap().generation;

    // Act: every kind of change that reports itself.
    let other = SealedGrant::seal(&vault, &grant("bot-2", "ntn_two", None)).unwrap();
    let created = store.upsert_connection(&other, Some("user-2")).await;
    let again = SealedGrant::seal(&vault, &grant("bot-1", "ntn_again", None)).unwrap();
    let reauthorized = store.upsert_connection(&again, None).await;
    let refreshed = store.complete_refresh(&again, generation).await;
    let refused = failure(RefreshFailureKind::Refused, "refused");
    let failed = store.fail_refresh(&bot("bot-1"), generation, refused).await;
    let revoked = store.revoke_connection(&bot("bot-1"), generation, "gone", None).await;
    let checked = store.record_check(&bot("bot-1"), false, generation, None).await;
    let denied = store.record_denied(Some("user-3"), RefSource::Plain).await;

    // Assert: each failed, and left everything as it was.
    for (what, failed) in [
        ("created", created.is_err()),
        ("reauthorized", reauthorized.is_err()),
        ("refreshed", refreshed.is_err()),
        ("failed", failed.is_err()),
        ("revoked", revoked.is_err()),
        ("checked", checked.is_err()),
        ("denied", denied.is_err()),
    ] {
        assert!(failed, "{what} succeeded without its delivery");
    }
    assert!(store.connection(&bot("bot-2")).await.unwrap().is_none());
    let after = store.connection(&bot("bot-1")).await.unwrap().unwrap();
    assert_eq!(
        (after.status.as_str(), after.authorizations, after.checked_at, after.updated_at),
        (before.status.as_str(), before.authorizations, before.checked_at, before.updated_at)
    );
    let tokens = store.sealed_tokens(&bot("bot-1")).await.unwrap().unwrap();
    assert_eq!(tokens.generation, generation);
    let tokens = tokens.open(&vault, &bot("bot-1"), WhichTokens::AccessAndRefresh).unwrap();
    assert_eq!(tokens.access_token.unwrap().expose_secret(), "ntn_one");
    let history: Vec<String> = store
        .events(&bot("bot-1"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    assert_eq!(history, ["connected"]);
    assert!(store.deliveries(None, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn processes_opening_a_new_database_at_once_all_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let opened =
        futures_util::future::join_all((0..6).map(|_| SqlStore::connect(&url, Routing::none())))
            .await;
    assert!(opened.iter().all(Result::is_ok), "{:?}", opened.iter().find_map(|r| r.as_ref().err()));
}

/// The recent copies the API reads (its key, the token asked for): a store's own write shows at
/// once, a write by another process within `store::RECENT`; on both backends.
async fn recent_copies_are_honest(url: &str) {
    let vault =
        Vault::new(&MasterKey::from_base64(&SecretString::from(random_key())).unwrap(), &[]);
    let here: Arc<dyn Store> = Arc::new(SqlStore::connect(url, Routing::none()).await.unwrap());
    let elsewhere: Arc<dyn Store> = Arc::new(SqlStore::open_existing(url).await.unwrap());
    let revoked = |key: Option<StoredApiKey>| key.unwrap().revoked_at.is_some();

    // Keys: revoked here, refused at once; revoked elsewhere, refused within the bound.
    here.insert_api_key("0123456789ab", "here", &[1; 32]).await.unwrap();
    here.insert_api_key("ba9876543210", "elsewhere", &[2; 32]).await.unwrap();
    for id in ["0123456789ab", "ba9876543210"] {
        assert!(!revoked(here.recent_api_key(id).await.unwrap()), "a new key is not revoked");
    }
    assert!(here.revoke_api_key("0123456789ab").await.unwrap());
    assert!(revoked(here.recent_api_key("0123456789ab").await.unwrap()), "stale after own write");
    assert!(elsewhere.revoke_api_key("ba9876543210").await.unwrap());
    let bound = store::RECENT + std::time::Duration::from_millis(500);
    eventually("a key revoked elsewhere is seen revoked", bound, || async {
        revoked(here.recent_api_key("ba9876543210").await.unwrap()).then_some(())
    })
    .await;

    // Tokens: a refresh here shows at once, one elsewhere within the bound.
    let bot_id = bot("bot-recent");
    let sealed = SealedGrant::seal(&vault, &grant("bot-recent", "ntn_a1", Some("ntn_r1"))).unwrap();
    here.upsert_connection(&sealed, None).await.unwrap();
    let generation = |tokens: Option<SealedTokens>| tokens.unwrap().generation;
    assert_eq!(generation(here.recent_sealed_tokens(&bot_id).await.unwrap()), 1);
    let sealed = SealedGrant::seal(&vault, &grant("bot-recent", "ntn_a2", Some("ntn_r2"))).unwrap();
    assert_eq!(here.complete_refresh(&sealed, 1).await.unwrap(), Some(2));
    let served = here.recent_tokens(&vault, &bot_id, WhichTokens::Access).await.unwrap().unwrap();
    assert_eq!(served.access_token.unwrap().expose_secret(), "ntn_a2", "stale after own refresh");
    let sealed = SealedGrant::seal(&vault, &grant("bot-recent", "ntn_a3", Some("ntn_r3"))).unwrap();
    assert_eq!(elsewhere.complete_refresh(&sealed, 2).await.unwrap(), Some(3));
    eventually("a token refreshed elsewhere is served", bound, || async {
        (generation(here.recent_sealed_tokens(&bot_id).await.unwrap()) == 3).then_some(())
    })
    .await;
    here.close().await;
    elsewhere.close().await;
}

#[tokio::test]
async fn recent_copies_show_own_writes_at_once_and_others_within_the_bound_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    recent_copies_are_honest(&format!("sqlite://{}", dir.path().join("recent.db").display())).await;
}

#[tokio::test]
async fn recent_copies_show_own_writes_at_once_and_others_within_the_bound_on_postgres() {
    let Some(database) = postgres_url().await else { return };
    recent_copies_are_honest(&database.url).await;
}

/// Writes committed together: many at once from many tasks, some of which fail (a duplicate
/// key), each answered with its own outcome; what succeeded is stored and what failed is not.
#[tokio::test]
async fn concurrent_writes_commit_together_and_a_failing_one_is_undone_alone() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("batch.db").display());
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url, Routing::none()).await.unwrap());
    store.insert_api_key("000000000000", "taken", &[0; 32]).await.unwrap();
    // Every fourth insert reuses the taken id and must fail; the rest must all land.
    let ids: Vec<String> = (1..=200)
        .map(|n| if n % 4 == 0 { "000000000000".into() } else { format!("{n:012}") })
        .collect();
    let answers = join_all(ids.iter().map(|id| store.insert_api_key(id, "batch", &[7; 32]))).await;
    for (id, answer) in ids.iter().zip(&answers) {
        assert_eq!(answer.is_err(), id == "000000000000", "{id}: {answer:?}");
    }
    let stored = store.api_keys().await.unwrap();
    assert_eq!(stored.len(), 1 + 150, "every good insert stored, no failed one");
    assert_eq!(stored.iter().filter(|k| k.name == "taken").count(), 1);
    store.close().await;
    // Closed: later writes are refused, not lost in a queue nobody reads.
    let after = store.insert_api_key("999999999999", "late", &[9; 32]).await;
    assert!(matches!(after, Err(StoreError::WriterStopped)), "{after:?}");
}
