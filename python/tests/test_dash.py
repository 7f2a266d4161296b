"""current_user() inside a Dash layout function and a callback, through
Dash's own routes (as a browser calls them)."""

from __future__ import annotations

import json

from dash import Dash, Input, Output, html

from aadgate import current_user
from aadgate.testing import as_user, signed_in_headers


def make_app() -> Dash:
    app = Dash(__name__)

    def serve_layout():
        user = current_user()
        children = [html.Div(user.name if user else "nobody", id="who"), html.Button("go", id="go")]
        if user is not None and user.has_role("App.Admin"):
            children.append(html.Div("admin panel", id="admin-panel"))
        children.append(html.Div(id="out"))
        return html.Div(children)

    app.layout = serve_layout

    @app.callback(Output("out", "children"), Input("go", "n_clicks"))
    def run(n):
        user = current_user()
        return f"{user.name} ran it" if user else "anonymous"

    app._serve_layout = serve_layout  # for the direct call below
    return app


def test_the_layout_function_shows_admin_ui_only_to_admins():
    app = make_app()
    client = app.server.test_client()
    admin = client.get("/_dash-layout", headers=signed_in_headers("Ada Admin", roles=["App.Read", "App.Admin"]))
    reader = client.get("/_dash-layout", headers=signed_in_headers("Rita Reader", roles=["App.Read"]))
    assert "admin panel" in admin.get_data(as_text=True)
    assert "Ada Admin" in admin.get_data(as_text=True)
    assert "admin panel" not in reader.get_data(as_text=True)


def test_a_callback_reads_the_user_of_its_request():
    app = make_app()
    client = app.server.test_client()
    client.get("/_dash-layout")  # Dash registers callbacks on first use
    body = {
        "output": "out.children",
        "outputs": {"id": "out", "property": "children"},
        "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["go.n_clicks"],
        "state": [],
    }
    r = client.post(
        "/_dash-update-component",
        data=json.dumps(body),
        content_type="application/json",
        headers=signed_in_headers("Walt Writer", roles=["App.Read", "App.Write"]),
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    assert "Walt Writer ran it" in r.get_data(as_text=True)


def test_as_user_calls_the_layout_directly():
    app = make_app()
    with as_user(app.server, name="Ada Admin", roles=["App.Read", "App.Admin"]):
        layout = app._serve_layout()
    assert "admin-panel" in str(layout)
