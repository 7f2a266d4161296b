"""The app the hardening tests attack: Flask routes that Werkzeug routes
without resolving dot segments, and a Dash 4 app whose callbacks count every
time they run. Nothing in it checks who the user is: aadgate must.

    python3 targets.py            # binds 127.0.0.1:0, prints "listening on <port>"

`GET /_executed` returns the counters (callback name or route -> runs), so a
test can tell whether a request reached the code, whatever status it got.
"""

import sys
import threading
from collections import Counter

from dash import ALL, MATCH, Dash, Input, Output, ctx, html
from flask import Flask, jsonify
from werkzeug.serving import make_server

EXECUTED = Counter()
LOCK = threading.Lock()


def ran(name):
    with LOCK:
        EXECUTED[name] += 1


def create_app():
    server = Flask(__name__)

    @server.get("/_executed")
    def executed():
        with LOCK:
            return jsonify(dict(EXECUTED))

    @server.route("/admin", methods=["GET", "POST"])
    @server.route("/admin/<path:sub>", methods=["GET", "POST"])
    def admin(sub=""):
        ran("route:/admin")
        return "admin handler: " + sub

    @server.route("/public/<path:sub>", methods=["GET", "POST"])
    def public(sub):
        ran("route:/public")
        return "public handler: " + sub

    app = Dash(__name__, server=server, url_base_pathname="/dash/")
    app.layout = html.Div("targets")

    # Protected by `write-result` (App.Write), like the shipped example.
    @app.callback(
        Output("write-result", "children"),
        Output("data-version", "data"),
        Input("write-button", "n_clicks"),
        prevent_initial_call=True,
    )
    def write(_n):
        ran("write")
        return "written", 1

    # The same output with allow_duplicate: another callback id, same rule.
    @app.callback(
        Output("write-result", "children", allow_duplicate=True),
        Input("dup-button", "n_clicks"),
        prevent_initial_call=True,
    )
    def dup_write(_n):
        ran("dup_write")
        return "written again"

    # A pinned pattern rule: {"type": "row", "index": 1} needs App.Write.
    @app.callback(
        Output({"type": "row", "index": MATCH}, "children"),
        Input({"type": "row-button", "index": MATCH}, "n_clicks"),
        prevent_initial_call=True,
    )
    def row(_n):
        ran("row")
        return "row changed"

    # {"type": "admin-row"} needs App.Admin; ALL writes every such row.
    @app.callback(
        Output({"type": "admin-row", "index": ALL}, "children"),
        Input("admin-button", "n_clicks"),
        prevent_initial_call=True,
    )
    def admin_rows(_n):
        ran("admin_rows")
        return ["changed" for _ in ctx.outputs_list]

    # A concrete dict id: {"kind": "secret"} needs App.Admin.
    @app.callback(
        Output({"kind": "secret", "n": 2}, "children"),
        Input("secret-button", "n_clicks"),
        prevent_initial_call=True,
    )
    def secret(_n):
        ran("secret")
        return "secret"

    # No rule: anyone with the app's lowest role may run it.
    @app.callback(
        Output("open-result", "children"),
        Input("open-button", "n_clicks"),
        prevent_initial_call=True,
    )
    def open_(_n):
        ran("open")
        return "open"

    return server


def main():
    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    print(f"listening on {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
