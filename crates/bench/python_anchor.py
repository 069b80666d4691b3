"""The Python anchor of the benchmark: the PyPI package notion-oauth-handler 0.1.3 (aiohttp),
served as its own `make_app` builds it, with its token URL pointed at the local emulator.

Usage: python3 python_anchor.py PORT NOTION_BASE_URL CLIENT_ID CLIENT_SECRET
(each may instead come from ANCHOR_PORT, ANCHOR_NOTION_BASE_URL, ANCHOR_CLIENT_ID and
ANCHOR_CLIENT_SECRET). Written for notion-oauth-handler==0.1.3; noh-bench runs it.
"""

import os
import sys

from aiohttp import web
from notion_oauth_handler.core.oauth_handler import NotionOAuthHandler
from notion_oauth_handler.server.app import make_app


def setting(index: int, name: str) -> str:
    if len(sys.argv) > index:
        return sys.argv[index]
    value = os.environ.get(name)
    if not value:
        sys.exit(f"python_anchor.py: missing argument {index} (or {name})")
    return value


def consumer_and_view():
    """The package's own dummy consumer and default view, found through its entry points as its
    CLI finds them. On Python 3.12+ the package's entry-point lookup (`entry_points()[group]`)
    no longer works, so fall back to importing the very same classes."""
    try:
        from notion_oauth_handler.entrypoints import get_auth_view_cls, get_consumer

        return get_consumer("dummy", custom_settings={}), get_auth_view_cls("default")
    except Exception:  # noqa: BLE001 - any failure of the lookup means: use the fallback
        from notion_oauth_handler.core.consumer import DummyNotionOAuthConsumer
        from notion_oauth_handler.server.auth_view import DefaultNotionOAuthRedirectView

        return DummyNotionOAuthConsumer(custom_settings={}), DefaultNotionOAuthRedirectView


def main() -> None:
    port = int(setting(1, "ANCHOR_PORT"))
    base_url = setting(2, "ANCHOR_NOTION_BASE_URL")
    client_id = setting(3, "ANCHOR_CLIENT_ID")
    client_secret = setting(4, "ANCHOR_CLIENT_SECRET")
    # The package hard-codes https://api.notion.com as a ClassVar that the attrs default of
    # `_base_url` reads, and make_app offers no way to pass another: set the ClassVar first.
    NotionOAuthHandler._default_base_url = base_url
    consumer, view = consumer_and_view()
    app = make_app(
        consumer=consumer,
        auth_view_cls=view,
        notion_client_id=client_id,
        notion_client_secret=client_secret,
        documents={},
        custom_settings={},
    )
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
