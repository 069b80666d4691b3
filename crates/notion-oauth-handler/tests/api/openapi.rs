//! The API's description: the OpenAPI document, held to the routes and checked by the reference
//! validator, and the JSON answer of a route asked with the wrong method.

use std::collections::BTreeSet;

use notion_oauth_handler::config::{ConnectSettings, RateLimitSettings};

use crate::helpers::{Receiver, TestOptions, http, spawn_app, spawn_app_with, webhook};

#[tokio::test]
async fn a_wrong_method_gets_a_json_error() {
    let app = spawn_app().await;
    let answer = app.api().await.post("/connections").await;
    assert_eq!((answer.status, answer.error_code()), (405, "method_not_allowed"));
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_validates() {
    let app = spawn_app().await;
    let response = http()
        .build()
        .unwrap()
        .get(format!("{}/api/v1/openapi.json", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "the document needs no key");
    let document: serde_json::Value = response.json().await.unwrap();

    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    assert_eq!(document["servers"][0]["url"], format!("{}/api/v1", app.address));
    assert_eq!(document["components"]["securitySchemes"]["api_key"]["scheme"], "bearer");
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let expected: BTreeSet<String> = [
        "GET /connections",
        "GET /connections/{bot_id}",
        "DELETE /connections/{bot_id}",
        "GET /connections/{bot_id}/token",
        "POST /connections/{bot_id}/refresh",
        "POST /connections/{bot_id}/check",
        "GET /connections/{bot_id}/events",
        "GET /deliveries",
        "POST /connect-links",
        "POST /deliveries/{id}/redeliver",
        "GET /openapi.json",
        "GET /connections/{bot_id}/notion/{path}",
        "POST /connections/{bot_id}/notion/{path}",
        "PATCH /connections/{bot_id}/notion/{path}",
        "DELETE /connections/{bot_id}/notion/{path}",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(routes, expected);
    // The proxy's answers: either body where Notion shares a status with us, and the headers
    // that tell them apart.
    let proxy = &document["paths"]["/connections/{bot_id}/notion/{path}"];
    assert!(proxy["get"].get("requestBody").is_none(), "a GET carries no body");
    assert!(proxy["post"]["requestBody"]["content"]["multipart/form-data"].is_object());
    let conflict = &proxy["post"]["responses"]["409"];
    assert_eq!(
        conflict["content"]["application/json"]["schema"]["anyOf"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(conflict["headers"]["Noh-Error"].is_object(), "{conflict}");
    assert!(proxy["get"]["responses"]["200"]["headers"]["x-notion-request-id"].is_object());
    // The routes that go through the lifecycle list every answer it can give, once.
    for (path, method) in [
        ("/connections/{bot_id}/token", "get"),
        ("/connections/{bot_id}/refresh", "post"),
        ("/connections/{bot_id}/check", "post"),
        ("/connections/{bot_id}", "delete"),
    ] {
        let responses = document["paths"][path][method]["responses"].as_object().unwrap();
        for status in ["401", "404", "409", "500", "502", "503", "504"] {
            assert!(responses.contains_key(status), "{method} {path} omits {status}");
        }
    }

    // Every documented route answers (with a key) rather than falling through to 404.
    let api = app.api().await;
    for route in &expected {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path.replace("{bot_id}", "unknown-bot").replace("{id}", "424242");
        let answer = api.call(method.parse().unwrap(), &path).await;
        assert!(
            answer.status != 404
                || answer.error_code() == "not_found" && path.contains("unknown-bot")
                || path.contains("424242"),
            "{route}"
        );
        assert!(answer.status != 405, "{route}");
    }

    validate_with_openapi_spec_validator(&document, &app.dir);
}

/// The reference validator, from PyPI (`.ci/run` installs it). Skipped on a laptop without it,
/// required under CI=true.
fn validate_with_openapi_spec_validator(document: &serde_json::Value, dir: &tempfile::TempDir) {
    let path = dir.path().join("openapi.json");
    std::fs::write(&path, document.to_string()).unwrap();
    let output = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output();
    let available = output
        .as_ref()
        .is_ok_and(|o| !String::from_utf8_lossy(&o.stderr).contains("No module named"));
    if !available {
        crate::helpers::skip(
            "openapi-spec-validator is not installed (pip install openapi-spec-validator)",
        );
        return;
    }
    let output = output.unwrap();
    assert!(
        output.status.success(),
        "the OpenAPI document does not validate:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// schemathesis (PyPI; `.ci/run` installs it) generates requests from the served document,
/// valid and not, and walks its links from lists to items: no answer may be a 5xx, and every
/// answer must be one the document lists, in the shape it gives; every request the document
/// allows must be accepted and every one it forbids refused. Skipped on a laptop without it,
/// required under CI=true.
#[tokio::test]
async fn generated_requests_get_only_the_answers_the_document_promises() {
    let receiver = Receiver::start().await;
    let app = spawn_app_with(TestOptions {
        // Its requests without a key check that the key is enforced; here they would shut the
        // run out after ten (the limit has tests of its own).
        rate_limit: RateLimitSettings {
            failed_api_keys_per_minute: 0,
            ..RateLimitSettings::default()
        },
        connect: ConnectSettings {
            return_to_origins: vec!["https://app.example.com".into()],
            ..ConnectSettings::default()
        },
        webhooks: vec![webhook("app", &receiver.url)],
        ..TestOptions::default()
    })
    .await;
    for user in ["Ada Lovelace", "Grace Hopper", "Alan Turing"] {
        app.connected(user, Some(user)).await;
    }
    let key = app.api_key().await;
    // The proxy passes Notion's own answers back: a request the document allows (any path of
    // words) can get Notion's 400 for a path Notion does not have, which is not a refusal of
    // ours (nor is schemathesis's warning that most generated requests were refused). Every
    // other check still runs on it (no 5xx of ours, answers as documented).
    std::fs::write(
        app.dir.path().join("schemathesis.toml"),
        "checks.enabled = true\n\n[[operations]]\ninclude-tag = \"notion\"\nchecks.positive_data_acceptance.enabled = false\nwarnings = false\n",
    )
    .unwrap();
    // Run without blocking: the server answers on this test's own runtime.
    let run = tokio::process::Command::new("schemathesis")
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", app.address))
        .args(["--header", &format!("Authorization: Bearer {key}")])
        // Every check (set in the file, so that one operation can drop one of them).
        .args(["--max-examples", "40", "--seed", "1", "--workers", "2"])
        .args(["--generation-database", "none", "--no-color", "--output-sanitize", "true"])
        .current_dir(app.dir.path())
        .output()
        .await;
    let Ok(run) = run else {
        crate::helpers::skip("schemathesis is not installed (pip install schemathesis)");
        return;
    };
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found failures:\n{report}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // It ran, and reached the operations (not one skipped for want of a schema).
    assert!(report.contains("Tested: 14"), "{report}");
    assert!(report.contains(" passed"), "{report}");
    assert!(!report.contains(&key), "the key is not printed");
}
