"""Microsoft Graph with the user's access token.

aadgate passes the signed-in user's token to the app with
``pass_access_token = true``, refreshed before it expires; its scopes are
what aadgate asked for at sign-in (``User.Read`` at least, for ``/me``).
Only the standard library is used, so this adds no dependency.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any, Dict, Optional

from .user import access_token

DEFAULT_GRAPH_URL = "https://graph.microsoft.com"


class GraphError(Exception):
    """A Graph call that did not succeed; ``status`` is the HTTP status
    (0 when Graph could not be reached or no token was available)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.status = status
        self.code = code
        self.message = message


class Graph:
    """A Microsoft Graph client for the current request's user.

    ``base_url`` defaults to ``$AADGATE_GRAPH_URL``, else
    ``https://graph.microsoft.com`` (``aadgate dev-idp`` serves ``/v1.0/me``
    at its own address: set ``AADGATE_GRAPH_URL=http://127.0.0.1:4181``).
    """

    def __init__(self, base_url: Optional[str] = None, timeout: float = 10.0) -> None:
        self.base_url = (base_url or os.environ.get("AADGATE_GRAPH_URL") or DEFAULT_GRAPH_URL).rstrip("/")
        self.timeout = timeout

    def me(self, token: Optional[str] = None) -> Dict[str, Any]:
        """``GET /v1.0/me``: the user's profile (``displayName``, ``mail``,
        ``jobTitle``, ``officeLocation``, ...)."""
        return self.get("/v1.0/me", token)

    def get(self, path: str, token: Optional[str] = None) -> Dict[str, Any]:
        """``GET`` a Graph path (``/v1.0/me/memberOf``) with ``token``, by
        default the current request's (:func:`aadgate.access_token`)."""
        token = token or access_token()
        if not token:
            raise GraphError(
                0,
                "no_token",
                "no access token in this request: set pass_access_token = true in aadgate's configuration "
                "(and call Graph inside a request: a Flask view, a Dash callback or layout function)",
            )
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError(f"a Graph path starts with one /: {path!r}")
        req = urllib.request.Request(self.base_url + path, headers={"Accept": "application/json"})
        # Not sent on to wherever a redirect points.
        req.add_unredirected_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (https or the configured URL)
                answer: Dict[str, Any] = json.loads(resp.read().decode("utf-8"))
                return answer
        except urllib.error.HTTPError as e:
            code, message = "", e.reason
            try:
                err = json.loads(e.read().decode("utf-8")).get("error", {})
                code, message = err.get("code", ""), err.get("message", message)
            except (ValueError, AttributeError):
                pass
            raise GraphError(e.code, str(code), str(message)) from None
        except (urllib.error.URLError, OSError) as e:
            raise GraphError(0, "unreachable", f"Microsoft Graph at {self.base_url} cannot be reached: {e}") from None
