"""current_user() in Flask views, from the headers aadgate sends."""

from __future__ import annotations

import pytest
from flask import Flask, jsonify

from aadgate import access_token, current_user
from aadgate.testing import signed_in_headers


@pytest.fixture()
def client():
    app = Flask(__name__)

    @app.get("/who")
    def who():
        user = current_user()
        if user is None:
            return jsonify(None)
        return jsonify(
            id=user.id,
            name=user.name,
            email=user.email,
            upn=user.preferred_username,
            roles=list(user.roles),
            groups=list(user.groups),
            auth=user.auth,
            caller=user.caller,
            client_id=user.client_id,
            scopes=list(user.scopes),
            admin=user.has_role("App.Admin"),
            any=user.has_any_role("Reports.View", "App.Write"),
            token=access_token(),
        )

    return app.test_client()


def test_a_signed_in_user_is_read_from_the_headers(client):
    r = client.get("/who", headers=signed_in_headers("Zoë Writer", roles=["App.Read", "App.Write"], groups=["g1", "g2"]))
    body = r.get_json()
    assert body["name"] == "Zoë Writer"
    assert body["roles"] == ["App.Read", "App.Write"]
    assert body["groups"] == ["g1", "g2"]
    assert (body["admin"], body["any"]) == (False, True)
    assert (body["auth"], body["caller"], body["client_id"]) == ("session", "user", "")
    assert body["token"] is None


def test_values_are_decoded_exactly_as_aadgate_encodes_them(client):
    # As aadgate sends them (crates/aadgate/src/headers.rs): printable ASCII
    # without % as it is, anything else percent-encoded as UTF-8.
    r = client.get(
        "/who",
        headers={
            "X-Forwarded-User": "0000-oid",
            "X-Forwarded-Name": "Jos%C3%A9%20N%C3%BA%C3%B1ez",
            "X-Forwarded-Email": "100%25@contoso.example",
            "X-Forwarded-Roles": "App.Read",
        },
    )
    body = r.get_json()
    assert body["name"] == "José Núñez"
    assert body["email"] == "100%@contoso.example"
    # Without a name, the ID is shown.
    assert client.get("/who", headers={"X-Forwarded-User": "0000-oid"}).get_json()["name"] == "0000-oid"


def test_no_headers_no_user(client):
    assert client.get("/who").get_json() is None
    assert current_user() is None, "outside a request"


def test_bearer_callers_say_who_they_are(client):
    app_caller = client.get(
        "/who", headers=signed_in_headers(application=True, client_id="c-1", roles=["App.Read"])
    ).get_json()
    assert (app_caller["auth"], app_caller["caller"], app_caller["client_id"]) == ("bearer", "application", "c-1")
    assert app_caller["name"] == app_caller["id"], "applications have no name"
    user = client.get("/who", headers=signed_in_headers(bearer=True, scopes=["Dashboards.Read"])).get_json()
    assert (user["auth"], user["caller"], user["scopes"]) == ("bearer", "user", ["Dashboards.Read"])


def test_the_access_token_comes_from_pass_access_token(client):
    body = client.get("/who", headers=signed_in_headers(access_token="eyJ.t.k")).get_json()
    assert body["token"] == "eyJ.t.k"
    # App Service's header works too.
    body = client.get("/who", headers={"X-Forwarded-User": "u", "X-MS-TOKEN-AAD-ACCESS-TOKEN": "t2"}).get_json()
    assert body["token"] == "t2"
