"""/media/: each tenant's uploads (MEDIA_ROOT/<schema>/…) only on its own domain, the operator's
(MEDIA_ROOT/public/…) only on the platform domain, logos (MEDIA_ROOT/branding/…) everywhere.

The promise must hold for every spelling of a path that leaves the allowed folder after
normalisation: `..` plain, percent-encoded, double-encoded, behind an encoded slash, after the
own or the public prefix, and for hostile bytes (NUL) that must give 404, never 500."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client, override_settings

from core.errors import ApplicationError
from tenants.models import Tenant

FILES = {
    "test_a/broadcasts/a.txt": "secret of A",
    "test_b/broadcasts/b.txt": "secret of B",
    "public/exports/operator.txt": "secret of the operator",
    "branding/test_a-logo.png": "logo of A",
}


@pytest.fixture
def media_root(tmp_path: Path) -> Any:
    root = tmp_path / "media"
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "outside.txt").write_text("outside the media folder")
    with override_settings(MEDIA_ROOT=root):
        yield root


def _prefixes(own: str) -> list[str]:
    """Starting points an attacker may use: the public branding folder, the own folder, a folder
    inside it, and nothing."""
    return ["branding/", f"{own}/", f"{own}/broadcasts/", ""]


def _traversals(prefix: str, target: str) -> list[str]:
    """The same `prefix/../target` written in every way a client can send it. The test client
    percent-decodes the URL once, as a WSGI server does."""
    depth = prefix.count("/")
    up = {
        "plain": "../" * depth,
        "encoded dots": "%2e%2e/" * depth,
        "upper-case encoded dots": "%2E%2E/" * depth,
        "half-encoded dots": ".%2e/" * depth,
        "encoded slashes": "..%2f" * depth,
        "double-encoded dots": "%252e%252e/" * depth,
        "double-encoded slashes": "..%252f" * depth,
        "dot segments": "./" + "../" * depth,
        "backslashes": "..\\" * depth,
    }
    return [f"/media/{prefix}{steps}{target}" for steps in up.values()] + [
        f"/media/{prefix.replace('/', '%2f')}{'..%2f' * depth}{target}",
        f"/media//{target}" if not prefix else f"/media/{prefix}/../{'../' * depth}{target}",
    ]


def _foreign_reads(own: str, targets: list[str]) -> list[str]:
    return [url for prefix in _prefixes(own) for target in targets for url in _traversals(prefix, target)] + [
        f"/media/{target}" for target in targets
    ]


def _body(response: Any) -> str:
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


def _assert_refused(client: Client, urls: list[str]) -> None:
    leaked = []
    for url in urls:
        response = client.get(url)
        body = _body(response)
        if response.status_code not in (400, 404) or "secret" in body or "outside" in body:
            leaked.append((url, response.status_code, body[:40]))
    assert not leaked, leaked


def test_each_domain_serves_its_own_files_and_everyones_logo(
    media_root: Path, client_a: Client, client_b: Client, client_public: Client, db: Any
) -> None:
    response = client_a.get("/media/test_a/broadcasts/a.txt")
    assert response.status_code == 200 and _body(response) == "secret of A"
    assert response["X-Content-Type-Options"] == "nosniff"
    response = client_public.get("/media/public/exports/operator.txt")
    assert response.status_code == 200 and _body(response) == "secret of the operator"
    for client in (client_a, client_b, client_public):
        response = client.get("/media/branding/test_a-logo.png")
        assert response.status_code == 200 and _body(response) == "logo of A"


def test_a_tenant_cannot_read_another_tenants_or_the_operators_files(
    media_root: Path, client_a: Client, client_b: Client, db: Any
) -> None:
    targets = ["test_b/broadcasts/b.txt", "public/exports/operator.txt", "outside.txt"]
    urls = _foreign_reads("test_a", targets)
    assert len(urls) > 50
    _assert_refused(client_a, urls)
    _assert_refused(client_b, _foreign_reads("test_b", ["test_a/broadcasts/a.txt", "public/exports/operator.txt"]))


def test_the_operator_domain_cannot_read_tenant_files(media_root: Path, client_public: Client, db: Any) -> None:
    _assert_refused(client_public, _foreign_reads("public", ["test_a/broadcasts/a.txt", "test_b/broadcasts/b.txt"]))


@pytest.mark.parametrize(
    "url",
    [
        "/media/test_a/broadcasts/a.txt%00.png",
        "/media/test_a/%00/../broadcasts/a.txt",
        "/media/branding/%00",
        "/media/test_a/",
        "/media/test_a",
        "/media/branding/",
        "/media/..",
        "/media/%2e%2e",
        "/media/test_a/broadcasts/" + "x" * 5000,
    ],
)
def test_hostile_paths_give_not_found_never_a_server_error(
    media_root: Path, client_a: Client, tenant: Tenant, url: str
) -> None:
    client = Client(HTTP_HOST="tenant-a.localhost", raise_request_exception=False)
    assert client.get(url).status_code in (400, 404)


def test_branding_is_no_tenant_name(public: Any) -> None:
    """Logos live in MEDIA_ROOT/branding/, served to everyone: a tenant of that name would have
    its private files there."""
    from tenants.services import tenant_onboard

    with pytest.raises((ApplicationError, ValidationError), match="reserved"):
        tenant_onboard(
            schema_name="branding", name="Branding", domain="branding.localhost", admin_email="a@branding.example"
        )
