"""Graph with the forwarded token, against a real HTTP server playing Graph."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from flask import Flask

from aadgate import Graph, GraphError
from aadgate.testing import as_user


@pytest.fixture()
def graph_server():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append((self.path, self.headers.get("Authorization")))
            if self.headers.get("Authorization") != "Bearer good-token":
                body = {"error": {"code": "InvalidAuthenticationToken", "message": "Access token is empty."}}
                status = 401
            else:
                body = {"displayName": "Rita Reader", "mail": "reader@contoso.example"}
                status = 200
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


def test_me_uses_the_requests_token(graph_server):
    url, seen = graph_server
    app = Flask(__name__)
    with as_user(app, access_token="good-token"):
        me = Graph(url).me()
    assert me["displayName"] == "Rita Reader"
    assert seen == [("/v1.0/me", "Bearer good-token")]


def test_graph_errors_say_what_went_wrong(graph_server, monkeypatch):
    url, _ = graph_server
    app = Flask(__name__)
    with as_user(app, access_token="stale"):
        with pytest.raises(GraphError) as e:
            Graph(url).me()
    assert (e.value.status, e.value.code) == (401, "InvalidAuthenticationToken")
    # No token: the fix is named.
    with as_user(app):
        with pytest.raises(GraphError) as e:
            Graph(url).me()
    assert "pass_access_token" in str(e.value)
    # The base URL comes from AADGATE_GRAPH_URL (the dev IdP's address).
    monkeypatch.setenv("AADGATE_GRAPH_URL", url + "/")
    with as_user(app, access_token="good-token"):
        assert Graph().me()["mail"] == "reader@contoso.example"
    # Unreachable.
    with as_user(app, access_token="good-token"):
        with pytest.raises(GraphError) as e:
            Graph("http://127.0.0.1:9").me()
    assert e.value.status == 0 and "cannot be reached" in str(e.value)
    # A path cannot move the token to another host.
    with as_user(app, access_token="good-token"):
        for path in [".evil.example/x", "@evil.example/x", "//evil.example/x"]:
            with pytest.raises(ValueError):
                Graph(url).get(path)
