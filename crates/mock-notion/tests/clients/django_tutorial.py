"""The Django + oauthlib tutorial's two views, written as the tutorial writes them, run against
mock-notion: the authorize URL from oauthlib's prepare_request_uri (no `owner`), the code
exchanged form-encoded with HTTP Basic through requests. Prints what happened as JSON.

NOTION_BASE, CLIENT_ID, CLIENT_SECRET and REDIRECT_URI come from the environment. The emulator
is plain http on loopback, so oauthlib is told to allow that (OAUTHLIB_INSECURE_TRANSPORT), as
the tutorial's local setup is."""

import json
import os
from urllib.parse import urlparse

os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

import django
from django.conf import settings

settings.configure(
    DEBUG=True,
    SECRET_KEY="mock-notion-tutorial-test",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["testserver", "localhost"],
    MIDDLEWARE=[],
)
django.setup()

import requests  # noqa: E402
from django.http import HttpResponse, HttpResponseRedirect  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import path  # noqa: E402
from oauthlib.oauth2 import WebApplicationClient  # noqa: E402

NOTION_BASE = os.environ["NOTION_BASE"]
CLIENT_ID = os.environ["CLIENT_ID"]
CLIENT_SECRET = os.environ["CLIENT_SECRET"]
REDIRECT_URI = os.environ["REDIRECT_URI"]
AUTHORIZE_URL = f"{NOTION_BASE}/v1/oauth/authorize"
TOKEN_URL = f"{NOTION_BASE}/v1/oauth/token"


def notion_auth_start(request):
    client = WebApplicationClient(CLIENT_ID)
    return HttpResponseRedirect(client.prepare_request_uri(AUTHORIZE_URL, REDIRECT_URI))


def notion_redirect(request):
    client = WebApplicationClient(CLIENT_ID)
    code = request.GET.get("code")
    data = client.prepare_request_body(code=code, redirect_uri=REDIRECT_URI)
    response = requests.post(TOKEN_URL, data=data, auth=(CLIENT_ID, CLIENT_SECRET))
    token = client.parse_request_body_response(response.text)
    return HttpResponse(json.dumps(token), content_type="application/json")


urlpatterns = [
    path("notion/auth", notion_auth_start),
    path("notion/redirect", notion_redirect),
]

browser = Client()
started = browser.get("/notion/auth")
authorize = started["Location"]
# The user presses "Allow access" on the consent page.
consent = requests.get(authorize + "&mock_decision=allow", allow_redirects=False)
back = urlparse(consent.headers["Location"])
finished = browser.get(f"{back.path}?{back.query}")
token = json.loads(finished.content)
print(json.dumps({
    "start_status": started.status_code,
    "authorize": authorize,
    "consent_status": consent.status_code,
    "callback_status": finished.status_code,
    "token_type": token.get("token_type"),
    "has_access_token": bool(token.get("access_token")),
    "bot_id": token.get("bot_id"),
    "workspace_name": token.get("workspace_name"),
}))
