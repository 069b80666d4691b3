//! In-memory authorization codes, bots and their token pairs; the identity model (user, workspace, bot ids).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use crate::random;
use crate::{ReauthMode, Revocation};

/// How many bench bots are remembered (about half a kilobyte each). A benchmark mints a bot per
/// request, so without a cap the emulator would grow for as long as it is the load target; a
/// cap this large still keeps every bot of a short manual test alive.
const BENCH_MAX_BOTS: usize = 100_000;
/// The one person behind every bench install: the code decides the workspace and the bot.
const BENCH_USER: &str = "Bench User";

/// Who authorized, where: everything the token response and `/v1/users/me` describe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) user_name: String,
    pub(crate) user_id: Uuid,
    /// `None`: the integration may not read emails, or the user has none to show.
    pub(crate) email: Option<String>,
    pub(crate) workspace_name: String,
    pub(crate) workspace_id: Uuid,
    pub(crate) bot_id: Uuid,
    /// A legacy workspace-level install: `owner` is `{type: "workspace", workspace: true}`.
    pub(crate) workspace_owned: bool,
    /// `workspace_icon`: a URL, or `None` for a workspace without one.
    pub(crate) workspace_icon: Option<String>,
}

impl Identity {
    /// Ids derive from names, so a bot_id is stable per (client, user, workspace): a re-authorization
    /// keeps it, another user in the same workspace gets another (§6, "upsert by bot_id").
    pub(crate) fn new(client_id: &str, user_name: &str, workspace_name: &str) -> Self {
        Self {
            user_name: user_name.to_owned(),
            user_id: random::stable_uuid(&["user", user_name]),
            email: Some(format!("{}@example.com", email_slug(user_name))),
            workspace_name: workspace_name.to_owned(),
            workspace_id: random::stable_uuid(&["workspace", workspace_name]),
            bot_id: random::stable_uuid(&["bot", client_id, user_name, workspace_name]),
            workspace_owned: false,
            workspace_icon: None,
        }
    }

    /// As [`Identity::new`], but a person (and so a bot) of its own: two flows that did not
    /// name their user do not re-authorize each other's connection.
    pub(crate) fn unpinned(client_id: &str, user_name: &str, workspace_name: &str) -> Self {
        Self {
            user_id: random::uuid(),
            bot_id: random::uuid(),
            ..Self::new(client_id, user_name, workspace_name)
        }
    }

    /// The install a bench-mode code stands for: its own workspace and bot, derived from the code
    /// alone, so unique codes are unique installs and a repeated code re-authorizes the same bot.
    pub(crate) fn for_bench_code(client_id: &str, code: &str) -> Self {
        let workspace_id = random::stable_uuid(&["bench workspace", client_id, code]);
        let mut workspace_name = String::from("Bench ");
        workspace_name.extend(workspace_id.simple().to_string().chars().take(8));
        Self {
            user_name: BENCH_USER.to_owned(),
            user_id: random::stable_uuid(&["user", BENCH_USER]),
            email: Some(format!("{}@example.com", email_slug(BENCH_USER))),
            workspace_name,
            workspace_id,
            bot_id: random::stable_uuid(&["bench bot", client_id, code]),
            workspace_owned: false,
            workspace_icon: None,
        }
    }
}

/// "Ada Lovelace" -> "ada.lovelace"; anything not alphanumeric is dropped so the address stays valid.
fn email_slug(name: &str) -> String {
    let words: Vec<String> = name
        .split_whitespace()
        .map(|w| {
            w.chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_lowercase())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() { "user".to_owned() } else { words.join(".") }
}

/// What a code was issued for; checked again when it is exchanged.
#[derive(Clone, Debug)]
pub(crate) struct CodeGrant {
    pub(crate) client_id: String,
    pub(crate) user_name: String,
    pub(crate) workspace_name: String,
    pub(crate) template: bool,
    /// The redirect URI the browser was sent to (the sole registered one when the URL omitted it).
    pub(crate) redirect_uri: String,
    /// Whether `redirect_uri` was in the authorize URL: decides if the token body must or must not carry it (§2.3).
    pub(crate) redirect_uri_sent: bool,
    pub(crate) expires_at: Instant,
    /// The pages and databases picked on the consent page.
    pub(crate) shared: Vec<Uuid>,
    /// The user was named (on the consent page, or `mock_user`): ids stay the same across
    /// authorizations. Otherwise the flow gets a person of its own.
    pub(crate) pinned: bool,
    /// `mock_email=0`: the owner has no email in the answer.
    pub(crate) email: bool,
    /// `mock_owner=workspace`: a legacy workspace-level install.
    pub(crate) workspace_owned: bool,
}

/// A freshly issued or re-returned pair.
#[derive(Clone, Debug)]
pub(crate) struct TokenPair {
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
}

struct Bot {
    identity: Identity,
    /// What the user shared with it: the only objects its tokens can see.
    shared: Vec<Uuid>,
    /// Only the current pair is alive; replacing or clearing it kills the previous one.
    current: Option<TokenPair>,
}

struct AccessInfo {
    bot_id: Uuid,
    issued_at_ms: u64,
    /// No longer accepted, though still the bot's current pair: its refresh token still works.
    expired: bool,
}

struct Graced {
    bot_id: Uuid,
    issued_at_ms: u64,
    until: Instant,
}

#[derive(Default)]
pub(crate) struct Store {
    codes: HashMap<String, CodeGrant>,
    bots: HashMap<Uuid, Bot>,
    /// Each bot's current access token, for introspection and bot lookup. A replaced or revoked
    /// token is dropped: it would read as dead anyway, and keeping it would grow without end.
    access: HashMap<String, AccessInfo>,
    refresh: HashMap<String, Uuid>,
    /// Previous access tokens still accepted for a while after a refresh.
    graced: HashMap<String, Graced>,
    issued: Vec<String>,
    /// Set in bench mode, where nothing goes into `issued` either (it would grow by two tokens
    /// per request).
    bench: Option<BenchBots>,
    /// How long an access token is accepted after it was issued; `None` is for good.
    pub(crate) access_ttl: Option<std::time::Duration>,
}

/// The bench bots, oldest first, so that the oldest can be forgotten past `cap`.
struct BenchBots {
    order: VecDeque<Uuid>,
    cap: usize,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

impl Store {
    /// An empty store; `bench` as in [`crate::EmulatorConfig::bench`].
    pub(crate) fn new(bench: bool) -> Self {
        let bench = bench.then(|| BenchBots { order: VecDeque::new(), cap: BENCH_MAX_BOTS });
        Self { bench, ..Self::default() }
    }

    pub(crate) fn issue_code(&mut self, grant: CodeGrant) -> String {
        // Codes nobody exchanged would stay for good: forget the expired ones now and then.
        if self.codes.len() >= 1024 && self.codes.len().is_power_of_two() {
            let now = Instant::now();
            self.codes.retain(|_, grant| grant.expires_at > now);
        }
        let code = random::uuid().to_string();
        self.issued.push(code.clone());
        self.codes.insert(code.clone(), grant);
        code
    }

    /// The grant behind a live code, without using it up (a failed exchange leaves it usable).
    pub(crate) fn code(&mut self, code: &str, now: Instant) -> Option<CodeGrant> {
        let grant = self.codes.get(code)?;
        if grant.expires_at <= now {
            self.codes.remove(code);
            return None;
        }
        Some(grant.clone())
    }

    pub(crate) fn consume_code(&mut self, code: &str) {
        self.codes.remove(code);
    }

    /// Completes an authorization for `identity`, which shares `shared`: per `mode`, a fresh
    /// pair or the bot's live one.
    pub(crate) fn authorize(
        &mut self,
        identity: Identity,
        mode: ReauthMode,
        shared: Vec<Uuid>,
    ) -> TokenPair {
        let bot_id = identity.bot_id;
        let bot = self.bots.entry(bot_id).or_insert_with(|| Bot {
            identity: identity.clone(),
            shared: Vec::new(),
            current: None,
        });
        bot.identity = identity;
        if mode == ReauthMode::SameToken
            && let Some(pair) = &bot.current
        {
            // A legacy connection shows no page picker again: what it was given stays.
            return pair.clone();
        }
        // A user authorizing anew picks pages anew; what they pick is what the bot sees.
        bot.shared = shared;
        // The new pair ends the old one, and any old access token still in its grace.
        self.graced.retain(|_, graced| graced.bot_id != bot_id);
        self.mint(bot_id)
    }

    /// Completes a bench-mode authorization: always a fresh pair, for a bot that is remembered
    /// until [`BENCH_MAX_BOTS`] newer ones have been made.
    pub(crate) fn authorize_bench(&mut self, identity: Identity) -> TokenPair {
        let bot_id = identity.bot_id;
        if let Entry::Vacant(slot) = self.bots.entry(bot_id) {
            slot.insert(Bot { identity, shared: Vec::new(), current: None });
            let bench = self
                .bench
                .get_or_insert_with(|| BenchBots { order: VecDeque::new(), cap: BENCH_MAX_BOTS });
            bench.order.push_back(bot_id);
            let evicted =
                if bench.order.len() > bench.cap { bench.order.pop_front() } else { None };
            if let Some(old) = evicted {
                self.revoke_bot_id(old);
                self.bots.remove(&old);
            }
        }
        self.mint(bot_id)
    }

    /// Rotates the pair of the bot owning `refresh_token`, if that token is the bot's live one.
    /// The old access token keeps working for `grace` (none when zero).
    pub(crate) fn refresh(
        &mut self,
        refresh_token: &str,
        grace: Duration,
    ) -> Option<(Identity, TokenPair)> {
        let bot_id = self.live_refresh_bot(refresh_token)?;
        let bot = self.bots.get(&bot_id)?;
        let identity = bot.identity.clone();
        let old_access = bot.current.as_ref().map(|pair| pair.access_token.clone());
        let now = Instant::now();
        self.graced.retain(|_, grace| grace.until > now);
        if let (Some(old), false) = (old_access, grace.is_zero())
            && let Some(info) = self.access.get(&old).filter(|info| !info.expired)
        {
            let iat = info.issued_at_ms;
            self.graced.insert(old, Graced { bot_id, issued_at_ms: iat, until: now + grace });
        }
        Some((identity, self.mint(bot_id)))
    }

    fn mint(&mut self, bot_id: Uuid) -> TokenPair {
        let pair = TokenPair {
            access_token: random::access_token(),
            refresh_token: random::refresh_token(),
        };
        self.end_pair(bot_id);
        self.access.insert(
            pair.access_token.clone(),
            AccessInfo { bot_id, issued_at_ms: now_ms(), expired: false },
        );
        self.refresh.insert(pair.refresh_token.clone(), bot_id);
        if self.bench.is_none() {
            self.issued.push(pair.access_token.clone());
            self.issued.push(pair.refresh_token.clone());
        }
        if let Some(bot) = self.bots.get_mut(&bot_id) {
            bot.current = Some(pair.clone());
        }
        pair
    }

    fn live_access_bot(&self, token: &str) -> Option<&Bot> {
        if let Some(graced) = self.graced.get(token) {
            // Still within its grace after a refresh, as long as the bot was not revoked since.
            let bot = self.bots.get(&graced.bot_id)?;
            return (graced.until > Instant::now() && bot.current.is_some()).then_some(bot);
        }
        let info = self.access.get(token).filter(|info| !info.expired)?;
        if let Some(ttl) = self.access_ttl {
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
            if now_ms().saturating_sub(info.issued_at_ms) >= ttl_ms {
                return None;
            }
        }
        let bot = self.bots.get(&info.bot_id)?;
        let live = bot.current.as_ref().is_some_and(|p| p.access_token == token);
        live.then_some(bot)
    }

    fn live_refresh_bot(&self, token: &str) -> Option<Uuid> {
        let bot_id = *self.refresh.get(token)?;
        let live =
            self.bots.get(&bot_id)?.current.as_ref().is_some_and(|p| p.refresh_token == token);
        live.then_some(bot_id)
    }

    /// The identity behind a live access token, with what it was given.
    pub(crate) fn access_token_grant(&self, token: &str) -> Option<(&Identity, &[Uuid])> {
        self.live_access_bot(token).map(|b| (&b.identity, b.shared.as_slice()))
    }

    /// The identity behind a live access token.
    pub(crate) fn access_token_bot(&self, token: &str) -> Option<&Identity> {
        self.live_access_bot(token).map(|b| &b.identity)
    }

    /// Issue time (ms since the epoch) of a live access token.
    pub(crate) fn access_token_iat(&self, token: &str) -> Option<u64> {
        self.live_access_bot(token)?;
        let graced = self.graced.get(token).map(|g| g.issued_at_ms);
        graced.or_else(|| self.access.get(token).map(|i| i.issued_at_ms))
    }

    pub(crate) fn is_refresh_token_active(&self, token: &str) -> bool {
        self.live_refresh_bot(token).is_some()
    }

    /// Lets an access token expire: it is no longer accepted, while its pair's refresh token
    /// still works.
    pub(crate) fn expire_access_token(&mut self, token: &str) {
        self.graced.remove(token);
        if let Some(info) = self.access.get_mut(token) {
            info.expired = true;
        }
    }

    /// Kills a live access or refresh token, with the rest of its pair under
    /// [`Revocation::WholePair`]; anything else is a no-op.
    pub(crate) fn revoke_token(&mut self, token: &str, revocation: Revocation) {
        let bot_id = self
            .live_access_bot(token)
            .map(|b| b.identity.bot_id)
            .or_else(|| self.live_refresh_bot(token));
        let Some(bot_id) = bot_id else { return };
        match revocation {
            Revocation::WholePair => self.revoke_bot_id(bot_id),
            Revocation::OnlyThatToken => {
                // The pair stays current, so its other token keeps working.
                self.graced.remove(token);
                self.access.remove(token);
                self.refresh.remove(token);
            }
        }
    }

    pub(crate) fn revoke_bot(&mut self, bot_id: &str) {
        if let Ok(bot_id) = Uuid::parse_str(bot_id) {
            self.revoke_bot_id(bot_id);
        }
    }

    /// Ends the bot's current pair, if any, forgetting its tokens, and any old access token
    /// still in its grace.
    fn revoke_bot_id(&mut self, bot_id: Uuid) {
        self.graced.retain(|_, graced| graced.bot_id != bot_id);
        self.end_pair(bot_id);
    }

    /// Ends the bot's current pair, if any, forgetting its tokens.
    fn end_pair(&mut self, bot_id: Uuid) {
        if let Some(pair) = self.bots.get_mut(&bot_id).and_then(|bot| bot.current.take()) {
            self.access.remove(&pair.access_token);
            self.refresh.remove(&pair.refresh_token);
        }
    }

    pub(crate) fn issued_secrets(&self) -> &[String] {
        &self.issued
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ada() -> Identity {
        Identity::new("client", "Ada Lovelace", "Acme Corp")
    }

    #[test]
    fn identity_is_stable_per_user_and_workspace() {
        let a = ada();
        assert_eq!(a, Identity::new("client", "Ada Lovelace", "Acme Corp"));
        assert_eq!(a.email.as_deref(), Some("ada.lovelace@example.com"));
        let unpinned = Identity::unpinned("client", "Ada Lovelace", "Acme Corp");
        assert_ne!(unpinned.bot_id, a.bot_id);
        assert_eq!(unpinned.workspace_id, a.workspace_id);
        let bob = Identity::new("client", "Bob", "Acme Corp");
        assert_eq!(bob.workspace_id, a.workspace_id);
        assert_ne!(bob.bot_id, a.bot_id);
        assert_ne!(Identity::new("client", "Ada Lovelace", "Personal").bot_id, a.bot_id);
        assert_eq!(email_slug("  Zoë O'Neil "), "zo.oneil");
        assert_eq!(email_slug("!!!"), "user");
    }

    #[test]
    fn fresh_pair_kills_previous_pair() {
        let mut store = Store::default();
        let first = store.authorize(ada(), ReauthMode::FreshPair, Vec::new());
        let second = store.authorize(ada(), ReauthMode::FreshPair, Vec::new());
        assert_ne!(first.access_token, second.access_token);
        assert!(store.access_token_bot(&first.access_token).is_none());
        assert!(!store.is_refresh_token_active(&first.refresh_token));
        assert!(store.access_token_bot(&second.access_token).is_some());
    }

    #[test]
    fn same_token_returns_live_pair() {
        let mut store = Store::default();
        let first = store.authorize(ada(), ReauthMode::SameToken, Vec::new());
        let second = store.authorize(ada(), ReauthMode::SameToken, Vec::new());
        assert_eq!(first.access_token, second.access_token);
        assert_eq!(first.refresh_token, second.refresh_token);
    }

    #[test]
    fn refresh_rotates_and_old_tokens_die() {
        let mut store = Store::default();
        let first = store.authorize(ada(), ReauthMode::FreshPair, Vec::new());
        let (identity, second) = store.refresh(&first.refresh_token, Duration::ZERO).unwrap();
        assert_eq!(identity, ada());
        assert!(store.refresh(&first.refresh_token, Duration::ZERO).is_none());
        assert!(store.access_token_bot(&first.access_token).is_none());
        assert!(store.is_refresh_token_active(&second.refresh_token));
    }

    #[test]
    fn the_old_access_token_works_during_its_grace_only() {
        let mut store = Store::default();
        let first = store.authorize(ada(), ReauthMode::FreshPair, Vec::new());
        let (_, second) = store.refresh(&first.refresh_token, Duration::from_millis(200)).unwrap();
        assert!(store.access_token_bot(&first.access_token).is_some());
        assert!(store.access_token_bot(&second.access_token).is_some());
        assert!(!store.is_refresh_token_active(&first.refresh_token));
        std::thread::sleep(Duration::from_millis(250));
        assert!(store.access_token_bot(&first.access_token).is_none());
        // A revocation ends a token in its grace at once.
        let (_, third) = store.refresh(&second.refresh_token, Duration::from_secs(60)).unwrap();
        store.revoke_token(&third.access_token, Revocation::WholePair);
        assert!(store.access_token_bot(&second.access_token).is_none());
    }

    #[test]
    fn revoke_kills_pair_and_is_idempotent() {
        let mut store = Store::default();
        let pair = store.authorize(ada(), ReauthMode::FreshPair, Vec::new());
        store.revoke_token(&pair.access_token, Revocation::WholePair);
        store.revoke_token(&pair.access_token, Revocation::WholePair);
        store.revoke_token("ntn_unknown", Revocation::WholePair);
        assert!(store.access_token_bot(&pair.access_token).is_none());
        assert!(!store.is_refresh_token_active(&pair.refresh_token));
        assert_eq!(store.issued_secrets().len(), 2);
        // Revoking the refresh token ends the pair as well.
        let pair = store.authorize(ada(), ReauthMode::FreshPair, Vec::new());
        store.revoke_token(&pair.refresh_token, Revocation::WholePair);
        assert!(store.access_token_bot(&pair.access_token).is_none());
    }

    #[test]
    fn revoking_only_that_token_leaves_the_other_working() {
        let mut store = Store::default();
        let pair = store.authorize(ada(), ReauthMode::FreshPair, Vec::new());
        store.revoke_token(&pair.access_token, Revocation::OnlyThatToken);
        assert!(store.access_token_bot(&pair.access_token).is_none());
        assert!(store.is_refresh_token_active(&pair.refresh_token));
        let (_, next) = store.refresh(&pair.refresh_token, Duration::ZERO).unwrap();
        store.revoke_token(&next.refresh_token, Revocation::OnlyThatToken);
        assert!(!store.is_refresh_token_active(&next.refresh_token));
        assert!(store.access_token_bot(&next.access_token).is_some());
    }

    #[test]
    fn only_current_tokens_are_kept() {
        let mut store = Store::default();
        for _ in 0..3 {
            store.authorize(ada(), ReauthMode::FreshPair, Vec::new());
        }
        let pair = store.authorize(ada(), ReauthMode::FreshPair, Vec::new());
        store.refresh(&pair.refresh_token, Duration::ZERO).unwrap();
        assert_eq!((store.access.len(), store.refresh.len()), (1, 1));
        store.revoke_bot(&ada().bot_id.to_string());
        assert_eq!((store.access.len(), store.refresh.len()), (0, 0));
    }

    #[test]
    fn bench_bots_are_bounded_and_keyed_by_code() {
        let mut store = Store::new(true);
        if let Some(bench) = &mut store.bench {
            bench.cap = 2;
        }
        let bench = |code| Identity::for_bench_code("client", code);
        let a = store.authorize_bench(bench("a"));
        let a_again = store.authorize_bench(bench("a"));
        assert!(store.access_token_bot(&a.access_token).is_none());
        assert_eq!(store.access_token_bot(&a_again.access_token), Some(&bench("a")));
        let b = store.authorize_bench(bench("b"));
        assert_ne!(bench("a").bot_id, bench("b").bot_id);
        assert_ne!(bench("a").workspace_id, bench("b").workspace_id);
        // A third bot forgets the oldest, whose tokens then read as dead.
        let c = store.authorize_bench(bench("c"));
        assert!(store.access_token_bot(&a_again.access_token).is_none());
        assert!(!store.is_refresh_token_active(&a_again.refresh_token));
        assert!(store.access_token_bot(&b.access_token).is_some());
        assert!(store.access_token_bot(&c.access_token).is_some());
        assert_eq!((store.bots.len(), store.access.len(), store.refresh.len()), (2, 2, 2));
        assert!(store.issued_secrets().is_empty());
    }

    #[test]
    fn codes_expire() {
        let mut store = Store::default();
        let now = Instant::now();
        let code = store.issue_code(CodeGrant {
            client_id: "client".to_owned(),
            user_name: "Ada".to_owned(),
            workspace_name: "Acme".to_owned(),
            template: false,
            redirect_uri: "http://localhost/cb".to_owned(),
            redirect_uri_sent: true,
            expires_at: now + Duration::from_secs(60),
            shared: Vec::new(),
            pinned: true,
            email: true,
            workspace_owned: false,
        });
        assert!(store.code(&code, now).is_some());
        assert!(store.code(&code, now + Duration::from_secs(61)).is_none());
        assert!(store.code(&code, now).is_none());
    }
}
