"""The caller of a request, from the identity headers aadgate sets.

The headers can be trusted only because the app is reachable through
aadgate alone (bind it to 127.0.0.1 or a private network): aadgate removes
any copy of them a client sends. Never authorize on the values yourself:
aadgate's rules do that; use them for showing, hiding and keying data.

aadgate percent-encodes values that are not printable ASCII, or that contain
``%``, as UTF-8 (``José`` arrives as ``Jos%C3%A9``); they are decoded here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping, Optional, Tuple, Union
from urllib.parse import unquote

from flask import has_request_context, request
from werkzeug.datastructures import Headers as WerkzeugHeaders

Auth = Literal["session", "bearer"]
Caller = Literal["user", "application"]


Headers = Union[Mapping[str, str], WerkzeugHeaders]
"""A request's headers: Werkzeug's (case-insensitive), or a plain mapping."""


def _text(headers: Headers, name: str) -> str:
    return unquote(headers.get(name, ""))


def _list(headers: Headers, name: str) -> Tuple[str, ...]:
    return tuple(v.strip() for v in _text(headers, name).split(",") if v.strip())


@dataclass(frozen=True)
class User:
    """Who is calling: a signed-in user (a browser session, or a user's
    bearer token), or an application with its own token."""

    id: str
    """The stable ID to key data on: the Entra object ID (``oid``), else ``sub``."""
    name: str
    """A name to show (the user's name; the ID when there is none)."""
    email: str = ""
    preferred_username: str = ""
    roles: Tuple[str, ...] = ()
    """Effective app roles: each held role and every lower one of aadgate's ``authz.roles``."""
    groups: Tuple[str, ...] = ()
    """Group object IDs."""
    auth: Auth = "session"
    """``session`` (the browser's sign-in) or ``bearer`` (an access token)."""
    caller: Caller = "user"
    """``user``, or ``application`` for a client-credentials token (no user)."""
    client_id: str = ""
    """Bearer tokens only: the calling client application's ID."""
    scopes: Tuple[str, ...] = field(default=())
    """Bearer tokens of users only: their delegated permissions."""

    def has_role(self, role: str) -> bool:
        """Whether the user holds ``role``, directly or through a higher one.
        For showing or hiding UI: aadgate enforces the roles."""
        return role in self.roles

    def has_any_role(self, *roles: str) -> bool:
        """Whether the user holds at least one of ``roles``."""
        return any(r in self.roles for r in roles)

    @classmethod
    def from_headers(cls, headers: Headers) -> Optional["User"]:
        """The user aadgate's headers describe, or ``None`` without them."""
        user_id = headers.get("X-Forwarded-User", "")
        if not user_id:
            return None
        auth: Auth = "bearer" if headers.get("X-Forwarded-Auth") == "bearer" else "session"
        caller: Caller = "application" if headers.get("X-Forwarded-Caller") == "application" else "user"
        return cls(
            id=unquote(user_id),
            name=_text(headers, "X-Forwarded-Name") or unquote(user_id),
            email=_text(headers, "X-Forwarded-Email"),
            preferred_username=_text(headers, "X-Forwarded-Preferred-Username"),
            roles=_list(headers, "X-Forwarded-Roles"),
            groups=_list(headers, "X-Forwarded-Groups"),
            auth=auth,
            caller=caller,
            client_id=_text(headers, "X-Forwarded-Client-Id"),
            scopes=_list(headers, "X-Forwarded-Scopes"),
        )


def current_user() -> Optional[User]:
    """The caller of the current request, or ``None``: outside a request
    (a Dash background callback, a thread), or when the app was reached
    without aadgate. Works in Flask views, Dash callbacks and Dash layout
    *functions* (``app.layout = serve_layout``), which all run inside the
    request."""
    if not has_request_context():
        return None
    return User.from_headers(request.headers)


def access_token() -> Optional[str]:
    """The signed-in user's access token (for Microsoft Graph; aadgate
    refreshes it before it expires), or ``None``. aadgate sends it only with
    ``pass_access_token = true``. For a bearer request it is the caller's
    own token, whose audience is this app's API, not Graph."""
    if not has_request_context():
        return None
    h = request.headers
    return h.get("X-Forwarded-Access-Token") or h.get("X-MS-TOKEN-AAD-ACCESS-TOKEN") or None
