//! The API's keys: what opens it, and how every refusal looks alike.

use crate::helpers::{eventually, http, spawn_app};

#[tokio::test]
async fn the_api_refuses_missing_wrong_and_revoked_keys_alike() {
    let app = spawn_app().await;
    let api = app.api().await;
    let made = notion_oauth_handler::api_keys::generate().unwrap();
    let unknown = secrecy::ExposeSecret::expose_secret(&made.key).to_owned();
    let revoked = app.api_key().await;
    let revoked_id = revoked.split('_').nth(1).unwrap().to_owned();
    assert!(app.store().await.revoke_api_key(&revoked_id).await.unwrap());
    let active = app.api_key().await;
    let wrong_secret =
        format!("{}{}", &active[..active.len() - 1], if active.ends_with('A') { 'B' } else { 'A' });

    let no_key = http()
        .build()
        .unwrap()
        .get(format!("{}/api/v1/connections", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status().as_u16(), 401);
    assert_eq!(no_key.headers()["www-authenticate"], "Bearer");
    let no_key_body: serde_json::Value = no_key.json().await.unwrap();
    for key in ["garbage", unknown.as_str(), revoked.as_str(), wrong_secret.as_str(), ""] {
        let answer = api.with_key(key).get("/connections").await;
        assert_eq!(answer.status, 401, "{key}");
        assert_eq!(answer.body, no_key_body, "every refusal looks the same");
    }
    assert_eq!(api.with_key(&active).get("/connections").await.status, 200);
    let active_id = active.split('_').nth(1).unwrap();
    let recorded = app.store().await.api_key(active_id).await.unwrap().unwrap();
    assert!(recorded.last_used_at.is_some(), "a key's use is recorded");
    let never_used = app.store().await.api_key(&revoked_id).await.unwrap().unwrap();
    assert!(never_used.last_used_at.is_none(), "a refused key's is not");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let response = http()
        .build()
        .unwrap()
        .get(format!("{}/api/v1/connections", app.address))
        .header("authorization", format!("bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn a_key_revoked_by_another_process_stops_opening_the_api_within_the_bound() {
    let app = spawn_app().await;
    let key = app.api_key().await;
    let api = app.api().await.with_key(&key);
    // Used, so the server holds a recent copy of it.
    assert_eq!(api.get("/connections").await.status, 200);
    assert_eq!(api.get("/connections").await.status, 200);

    // `app.store()` is another store on the same database, as the CLI in another process is.
    let id = key.split('_').nth(1).unwrap();
    assert!(app.store().await.revoke_api_key(id).await.unwrap());

    let bound = notion_oauth_handler::store::RECENT + std::time::Duration::from_millis(500);
    eventually("the revoked key is refused", bound, || async {
        (api.get("/connections").await.status == 401).then_some(())
    })
    .await;
    for _ in 0..5 {
        assert_eq!(api.get("/connections").await.status, 401, "a refused key came back");
    }
}
