"""Flask and Plotly Dash apps behind aadgate: who is signed in, role checks
for showing and hiding UI, and Microsoft Graph calls with the user's token.

aadgate signs users in (Microsoft Entra ID), enforces the app roles of its
``[[route]]`` and ``[[dash.callback]]`` rules, and tells the app who is
calling in request headers. This package reads them::

    from aadgate import current_user

    user = current_user()          # in a Flask view, a Dash callback or a Dash layout function
    if user is not None and user.has_role("App.Admin"):
        ...                        # show the admin panel

    from aadgate import Graph
    profile = Graph().me()         # with aadgate's pass_access_token = true

Tests of the app pretend to be a signed-in user with
:mod:`aadgate.testing`, without running aadgate.
"""

from __future__ import annotations

from .graph import Graph, GraphError
from .user import User, access_token, current_user

__all__ = ["Graph", "GraphError", "User", "access_token", "current_user"]
__version__ = "0.1.0"
