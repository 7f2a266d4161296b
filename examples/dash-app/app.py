"""A Flask app with a Plotly Dash dashboard at /dash/, made to run behind aadgate.

It has no sign-in code: aadgate signs users in, enforces the app roles
(``aadgate.toml`` next to this file) and tells the app who the user is in
request headers, which ``aadgate.current_user()`` (the ``aadgate`` Python
package, ``python/`` in this repository) reads. The dashboard shows the
user's Microsoft Graph profile, fetched with the access token aadgate passes
on (``pass_access_token = true``).

    pip install -r requirements.txt ../../python
    AADGATE_GRAPH_URL=http://127.0.0.1:4181 python app.py --port 8050
    # then start aadgate in front of it; AADGATE_GRAPH_URL points Graph calls
    # at the dev IdP (leave it out with Entra ID: https://graph.microsoft.com)

The same code runs unchanged on Azure App Service with Easy Auth (see
``/appservice``, which reads App Service's own headers and ``/.auth/me``).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import random
import sys
import threading
from dataclasses import dataclass

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html, no_update
from flask import Flask, render_template, request
from werkzeug.serving import make_server

from aadgate import Graph, GraphError, current_user

REGIONS = ["North", "South", "East", "West"]
FIRST_YEAR = 2025
BASE_MONTHS = 12
MAX_VALUE = 1_000_000


def month_label(index: int) -> str:
    year, month = divmod(index, 12)
    return f"{FIRST_YEAR + year}-{month + 1:02d}"


@dataclass(frozen=True)
class Point:
    region: str
    month: int
    value: int


class SalesData:
    """Monthly sales per region, in memory and shared by every request.

    Werkzeug's threaded server (and any WSGI server with threads) runs
    callbacks concurrently, so every access holds the lock.
    """

    def __init__(self, seed: int = 42) -> None:
        self._lock = threading.Lock()
        self._points: list[Point] = []
        self._version = 0
        rng = random.Random(seed)
        for region in REGIONS:
            level = rng.randint(40, 90) * 1000
            for month in range(BASE_MONTHS):
                level = max(5000, level + rng.randint(-9, 12) * 1000)
                self._points.append(Point(region, month, level))

    def series(self, region: str) -> tuple[list[str], list[int]]:
        with self._lock:
            points = sorted((p for p in self._points if p.region == region), key=lambda p: p.month)
        return [month_label(p.month) for p in points], [p.value for p in points]

    def add(self, region: str, value: int) -> tuple[str, int]:
        """Appends `value` as the region's next month; returns its label and the new version."""
        with self._lock:
            month = 1 + max(p.month for p in self._points if p.region == region)
            self._points.append(Point(region, month, value))
            self._version += 1
            return month_label(month), self._version

    @property
    def version(self) -> int:
        with self._lock:
            return self._version


DATA = SalesData()


def sales_figure(region: str) -> go.Figure:
    months, values = DATA.series(region)
    fig = go.Figure(
        go.Bar(
            x=months,
            y=values,
            marker_color=["#2563eb"] * (len(values) - 1) + ["#0f766e"] if values else None,
            hovertemplate="%{x}: %{y:,} €<extra></extra>",
        )
    )
    fig.update_layout(
        template="plotly_white",
        margin=dict(l=56, r=16, t=16, b=40),
        height=340,
        yaxis=dict(title="Sales (€)", tickformat=",", rangemode="tozero"),
        xaxis=dict(type="category"),
        font=dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=13),
    )
    return fig


def navbar(active: str):
    user = current_user()
    if user is None:
        who = [html.Span("Not signed in (is aadgate in front of this app?)", id="navbar-user", className="user-name")]
    else:
        who = [
            html.Span(user.name, id="navbar-user", className="user-name", title=user.email),
            html.Span([html.Span(r, className="role") for r in user.roles], className="roles"),
            html.A("Sign out", href="/auth/logout", id="sign-out", className="sign-out"),
        ]
    links = [("Dashboard", "/dash/", "dash"), ("Admin", "/admin", "admin"), ("App Service", "/appservice", "appservice")]
    if user is None or not user.has_role("App.Admin"):
        links = [link for link in links if link[2] != "admin"]  # display only: aadgate guards /admin
    return html.Header(
        className="navbar",
        children=[
            html.A("Contoso Sales", href="/", className="brand"),
            html.Nav(
                [html.A(text, href=href, className="active" if key == active else "") for text, href, key in links],
                className="nav-links",
            ),
            html.Div(who, className="who"),
        ],
    )


def graph_profile():
    """The user's Microsoft Graph profile, fetched with their own token."""
    try:
        me = Graph().me()
    except GraphError as e:
        return html.Section(
            className="card",
            id="graph-profile",
            children=[html.H2("Your profile"), html.P(f"Microsoft Graph did not answer: {e}", className="muted")],
        )
    rows = [
        ("Name", me.get("displayName")),
        ("User principal name", me.get("userPrincipalName")),
        ("Mail", me.get("mail")),
        ("Job title", me.get("jobTitle")),
        ("Office", me.get("officeLocation")),
    ]
    return html.Section(
        className="card",
        id="graph-profile",
        children=[
            html.H2("Your profile"),
            html.P("From Microsoft Graph (/v1.0/me), with the access token aadgate passes on.", className="muted"),
            html.Dl(
                [part for label, value in rows if value for part in (html.Dt(label), html.Dd(value))],
                className="profile",
            ),
        ],
    )


def serve_layout():
    """Runs for every page load (inside the request for `_dash-layout`), so it can read the user."""
    user = current_user()
    can_write = user is not None and user.has_role("App.Write")
    write_hint = (
        "Adds the value as the selected region's next month."
        if can_write
        else "You can read this dashboard. Changing data needs the App.Write role: aadgate refuses the request otherwise."
    )
    return html.Div(
        [
            navbar("dash"),
            html.Main(
                className="container",
                children=[
                    html.H1("Monthly sales"),
                    html.Section(
                        className="card",
                        children=[
                            html.Div(
                                className="card-head",
                                children=[
                                    html.Label("Region", htmlFor="region", className="field-label"),
                                    dcc.Dropdown(
                                        id="region",
                                        options=REGIONS,
                                        value=REGIONS[0],
                                        clearable=False,
                                        searchable=False,
                                        # Kept in the tab's sessionStorage, so the choice
                                        # survives a trip through sign-in (session.js).
                                        persistence=True,
                                        persistence_type="session",
                                        className="region-dropdown",
                                    ),
                                    html.Span(id="chart-summary", className="summary"),
                                ],
                            ),
                            dcc.Graph(id="sales-chart", config={"displaylogo": False, "responsive": True}),
                        ],
                    ),
                    html.Section(
                        className="card",
                        children=[
                            html.H2("Add a data point"),
                            html.P(write_hint, className="muted"),
                            html.Div(
                                className="write-row",
                                children=[
                                    dcc.Input(
                                        id="new-value",
                                        type="number",
                                        min=0,
                                        max=MAX_VALUE,
                                        step=1,
                                        placeholder="e.g. 75000",
                                        className="text-input",
                                    ),
                                    html.Button("Add to chart", id="write-button", n_clicks=0, className="button"),
                                ],
                            ),
                            html.Div(id="write-result", className="write-result", role="status"),
                        ],
                    ),
                    graph_profile(),
                    dcc.Store(id="data-version", data=DATA.version),
                ],
            ),
        ]
    )


def create_app() -> Flask:
    server = Flask(__name__)

    app = Dash(
        __name__,
        server=server,
        url_base_pathname="/dash/",
        title="Contoso Sales",
        # aadgate's session script: when a callback gets "401 login_required"
        # (the session ended while the page was open) it sends the browser
        # through sign-in and back to this page. Served by aadgate itself.
        external_scripts=["/auth/session.js", "/static/denied-notice.js"],
        external_stylesheets=["/static/app.css"],
    )
    app.layout = serve_layout

    @app.callback(
        Output("sales-chart", "figure"),
        Output("chart-summary", "children"),
        Input("region", "value"),
        Input("data-version", "data"),
    )
    def update_chart(region, _version):
        region = region if region in REGIONS else REGIONS[0]
        months, values = DATA.series(region)
        summary = f"{len(values)} months · total {sum(values):,} € · latest {values[-1]:,} €"
        return sales_figure(region), summary

    # The write. aadgate allows it only for App.Write, by a [[dash.callback]]
    # rule on the output id "write-result"; there is no role check here.
    @app.callback(
        Output("write-result", "children"),
        Output("data-version", "data"),
        Input("write-button", "n_clicks"),
        State("new-value", "value"),
        State("region", "value"),
        prevent_initial_call=True,
    )
    def add_point(_clicks, value, region):
        if region not in REGIONS:
            return html.Span("Pick a region first.", className="error"), no_update
        try:
            number = int(value)
        except (TypeError, ValueError):
            return html.Span("Enter a whole number of euros.", className="error"), no_update
        if not 0 <= number <= MAX_VALUE:
            return html.Span(f"Enter a value from 0 to {MAX_VALUE:,}.", className="error"), no_update
        month, version = DATA.add(region, number)
        user = current_user()
        by = f" by {user.name}" if user else ""
        return html.Span(f"Added {number:,} € to {region} for {month}{by}.", className="ok"), version

    @server.get("/")
    def index():
        return render_template("index.html", user=current_user(), active="home")

    # Protected by aadgate: [[route]] path = "/admin", role = "App.Admin".
    @server.get("/admin")
    def admin():
        shown = []
        for name, value in request.headers.items():
            lower = name.lower()
            if not (lower.startswith("x-forwarded-") or lower.startswith("x-ms-")):
                continue
            if lower == "x-forwarded-access-token":
                value = f"•••••• (masked, {len(value)} characters)"
            shown.append((name, value))
        shown.sort(key=lambda item: item[0].lower())
        return render_template("admin.html", user=current_user(), active="admin", headers=shown)

    # Written as an app for Azure App Service Easy Auth would be: it reads
    # App Service's headers, and its page asks /.auth/me in the browser.
    @server.get("/appservice")
    def appservice():
        principal = None
        error = None
        encoded = request.headers.get("X-MS-CLIENT-PRINCIPAL")
        if encoded:
            try:
                principal = json.loads(base64.b64decode(encoded))
            except (binascii.Error, ValueError) as exc:
                error = f"X-MS-CLIENT-PRINCIPAL could not be decoded: {exc}"
        claims = (principal or {}).get("claims", [])
        name_typ = (principal or {}).get("name_typ", "name")
        role_typ = (principal or {}).get("role_typ", "roles")
        return render_template(
            "appservice.html",
            user=current_user(),
            active="appservice",
            principal_name=request.headers.get("X-MS-CLIENT-PRINCIPAL-NAME"),
            principal_id=request.headers.get("X-MS-CLIENT-PRINCIPAL-ID"),
            principal_idp=request.headers.get("X-MS-CLIENT-PRINCIPAL-IDP"),
            auth_typ=(principal or {}).get("auth_typ"),
            display_name=next((c["val"] for c in claims if c.get("typ") == name_typ), None),
            roles=[c["val"] for c in claims if c.get("typ") == role_typ],
            claim_count=len(claims),
            error=error,
        )

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="keep it on loopback: only aadgate should reach the app")
    parser.add_argument("--port", type=int, default=8050, help="0 picks a free port")
    args = parser.parse_args(argv)
    # Flask's built-in (Werkzeug) server, threaded: fine for this example.
    # In production use a WSGI server, e.g. `gunicorn "app:create_app()"`.
    server = make_server(args.host, args.port, create_app(), threaded=True)
    print(f"listening on http://{args.host}:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
