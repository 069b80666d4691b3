// Notion's official JS SDK (@notionhq/client) against mock-notion: code exchange, refresh,
// introspect, users.me, search, its retry on 429 with Retry-After, and revoke. Prints what
// happened as JSON. NOTION_BASE, CLIENT_ID, CLIENT_SECRET and REDIRECT_URI come from the
// environment.
import { Client, collectPaginatedAPI, isFullPage } from "@notionhq/client";

const { NOTION_BASE: base, CLIENT_ID: client_id, CLIENT_SECRET: client_secret, REDIRECT_URI: redirect_uri } =
  process.env;
const credentials = { client_id, client_secret };
const out = {};

const authorize = new URL(`${base}/v1/oauth/authorize`);
authorize.search = new URLSearchParams({
  client_id, response_type: "code", owner: "user", redirect_uri, mock_decision: "allow",
  // The user ticks these on the page picker: four pages and a database.
  mock_pages: "Getting Started,Roadmap 2026,Team Wiki,OKRs,Tasks",
}).toString();
const consent = await fetch(authorize, { redirect: "manual" });
const code = new URL(consent.headers.get("location")).searchParams.get("code");

const oauth = new Client({ baseUrl: base, retry: false });
const token = await oauth.oauth.token({ ...credentials, grant_type: "authorization_code", code, redirect_uri });
out.token = { bot_id: token.bot_id, workspace_name: token.workspace_name, token_type: token.token_type };
const refreshed = await oauth.oauth.token({ ...credentials, grant_type: "refresh_token", refresh_token: token.refresh_token });
out.refreshed_same_bot = refreshed.bot_id === token.bot_id && refreshed.access_token !== token.access_token;
out.introspect_active = (await oauth.oauth.introspect({ ...credentials, token: refreshed.access_token })).active;
out.old_token_active = (await oauth.oauth.introspect({ ...credentials, token: token.access_token })).active;

const notion = new Client({ auth: refreshed.access_token, baseUrl: base, retry: { maxRetries: 2, initialRetryDelayMs: 50 } });
out.me_is_bot = (await notion.users.me({})).id === token.bot_id;
const found = await notion.search({ page_size: 2 });
out.search = { object: found.object, has_more: found.has_more, results: found.results.length };
// Every picked object, through the SDK's own pagination helper (three pages of two).
const everything = await collectPaginatedAPI(notion.search, { page_size: 2 });
out.paginated = everything.map((o) => o.object).sort();
const pages = await collectPaginatedAPI(notion.search, { filter: { property: "object", value: "page" } });
out.page_titles = pages.filter(isFullPage).map((p) => p.properties.title.title[0].plain_text).sort();
const roadmap = pages.find((p) => p.properties.title.title[0].plain_text === "Roadmap 2026");
out.retrieved = (await notion.pages.retrieve({ page_id: roadmap.id })).id === roadmap.id;
try {
  await notion.pages.retrieve({ page_id: "00000000-0000-4000-8000-000000000000" });
  out.unshared = "answered";
} catch (error) {
  out.unshared = error.code;
}

async function fault(endpoint, body) {
  const answer = await fetch(`${base}/_mock/faults/${endpoint}`, {
    method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  if (answer.status !== 204) throw new Error(`fault not set: ${answer.status}`);
}
// One 429 with Retry-After: 1, then the SDK's own retry succeeds after waiting that second.
await fault("users_me", { kind: "rate_limited", retry_after: 1, times: 1 });
let started = Date.now();
await notion.users.me({});
out.retried_429_after_ms = Date.now() - started;
await fault("search", { kind: "overloaded", retry_after: 1, times: 1 });
started = Date.now();
await notion.search({});
out.retried_529_after_ms = Date.now() - started;
// Without retries the 429 reaches the caller with Notion's code.
await fault("users_me", { kind: "rate_limited", retry_after: 1, times: 1 });
try {
  await new Client({ auth: refreshed.access_token, baseUrl: base, retry: false }).users.me({});
  out.no_retry = "answered";
} catch (error) {
  out.no_retry = error.code;
}

await oauth.oauth.revoke({ ...credentials, token: refreshed.access_token });
out.active_after_revoke = (await oauth.oauth.introspect({ ...credentials, token: refreshed.access_token })).active;
try {
  await notion.users.me({});
  out.me_after_revoke = "answered";
} catch (error) {
  out.me_after_revoke = error.code;
}
console.log(JSON.stringify(out));
