"""Pretend to be a signed-in user in the app's own tests, without aadgate.

The headers are exactly those aadgate sends, so the code under test reads
them as in production::

    from aadgate.testing import signed_in_headers, as_user

    def test_admin_page(client):                       # Flask's test client
        r = client.get("/admin", headers=signed_in_headers(name="Ada", roles=["App.Read", "App.Admin"]))

    def test_layout_shows_admin_panel(app):            # app: the Flask server of a Dash app
        with as_user(app, roles=["App.Read", "App.Admin"]):
            layout = serve_layout()                     # current_user() sees Ada

``roles`` are the *effective* roles, as aadgate sends them: a user holding
``App.Admin`` of ``["App.Read", "App.Write", "App.Admin"]`` arrives with all
three. aadgate, not the app, decides who may reach a route: test those rules
against aadgate itself.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence
from urllib.parse import quote

from flask import Flask

DEFAULT_ID = "00000000-0000-4000-8000-00000000a11c"


def _encoded(text: str) -> str:
    """As aadgate sends a value: printable ASCII without ``%`` as it is,
    anything else percent-encoded as UTF-8."""
    if all(0x20 <= ord(c) < 0x7F for c in text) and "%" not in text:
        return text
    return quote(text, safe="")


def signed_in_headers(
    name: str = "Alice Example",
    *,
    id: str = DEFAULT_ID,  # noqa: A002 (the field's name)
    email: str = "alice@contoso.example",
    preferred_username: Optional[str] = None,
    roles: Sequence[str] = ("App.Read",),
    groups: Sequence[str] = (),
    access_token: Optional[str] = None,
    bearer: bool = False,
    application: bool = False,
    client_id: str = "",
    scopes: Sequence[str] = (),
) -> Dict[str, str]:
    """The request headers aadgate sends for this caller. ``access_token``
    is passed as with ``pass_access_token = true``; ``bearer`` and
    ``application`` describe a bearer-token caller (a user's token, or an
    application's)."""
    h = {
        "X-Forwarded-User": id,
        "X-Forwarded-Roles": ",".join(roles),
        "X-Forwarded-Groups": ",".join(groups),
        "X-Forwarded-Auth": "bearer" if bearer or application else "session",
        "X-Forwarded-Caller": "application" if application else "user",
    }
    if not application:
        h["X-Forwarded-Name"] = _encoded(name)
        if email:
            h["X-Forwarded-Email"] = _encoded(email)
        h["X-Forwarded-Preferred-Username"] = _encoded(preferred_username or email)
    if bearer or application:
        h["X-Forwarded-Client-Id"] = client_id or "00000000-0000-4000-8000-0000000c11e7"
        if scopes and not application:
            h["X-Forwarded-Scopes"] = ",".join(scopes)
    if access_token:
        h["X-Forwarded-Access-Token"] = access_token
    return h


@contextmanager
def as_user(app: Flask, path: str = "/", **user: object) -> Iterator[None]:
    """A request context of ``app`` in which :func:`aadgate.current_user`
    is the user :func:`signed_in_headers` describes (same keywords), for
    calling a Dash layout function or callback directly."""
    with app.test_request_context(path, headers=signed_in_headers(**user)):  # type: ignore[arg-type]
        yield
