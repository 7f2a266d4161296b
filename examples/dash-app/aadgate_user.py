"""Who is signed in, as told by aadgate.

aadgate signs the user in and forwards every request with identity headers;
this app contains no sign-in code of its own. Read the user inside a request
(a Flask view, a Dash callback, or a Dash layout *function*):

    from aadgate_user import current_user
    user = current_user()          # None when the headers are absent
    user.name, user.email, user.id, user.roles

The values are for display and for keying data (``id`` is the stable Entra
object id). Never authorize on them yourself: let aadgate's ``[[route]]`` and
``[[dash.callback]]`` rules do it. They can be trusted only because the app is
reachable through aadgate alone (bind it to 127.0.0.1 or a private network):
aadgate removes any copy of these headers a client sends.

aadgate percent-encodes values that are not printable ASCII, or that contain
``%``, as UTF-8 (``José Núñez`` arrives as ``Jos%C3%A9%20N%C3%BA%C3%B1ez``) and
sends other values as they are; ``unquote`` undoes the encoding exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from flask import has_request_context, request


@dataclass(frozen=True)
class User:
    name: str
    email: str
    id: str
    roles: tuple[str, ...]

    def has_role(self, role: str) -> bool:
        """For showing or hiding UI only; aadgate enforces the roles."""
        return role in self.roles


def current_user() -> User | None:
    """The signed-in user from aadgate's X-Forwarded-* headers, or None
    (outside a request, or when the app is reached without aadgate)."""
    if not has_request_context():
        return None
    h = request.headers
    user_id = h.get("X-Forwarded-User", "")
    if not user_id:
        return None
    roles = tuple(r.strip() for r in h.get("X-Forwarded-Roles", "").split(",") if r.strip())
    return User(
        name=unquote(h.get("X-Forwarded-Name", "")) or user_id,
        email=unquote(h.get("X-Forwarded-Email", "")),
        id=user_id,
        roles=roles,
    )
