"""The OpenAPI document: complete in both directions against what a real `edged run` serves.

- every route the daemon's router serves is in the document (the daemon
  itself reports any it misses under ``x-edged-undocumented``);
- every documented operation is served (a request reaches a handler: no
  router 404 "no such resource", no 405);
- the document loads in schemathesis with no invalid operation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from read_daemon import make_daemon

from edged.api.messages import Request
from edged.api.openapi import OPERATIONS, add_openapi_routes, document
from edged.api.router import Router

SAMPLE_PATH_VALUES = {"version": "1", "status": "COMPLETED"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    d = make_daemon(tmp_path_factory.mktemp("openapi"))
    yield d
    d.kill()


@pytest.fixture(scope="module")
def served_doc(daemon: Any) -> dict[str, Any]:
    with daemon.client() as http:
        resp = http.get("/api-docs")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/json")
        doc: dict[str, Any] = resp.json()
        assert http.get("/openapi.json").json() == doc
    return doc


def test_every_served_route_is_documented(served_doc: dict[str, Any]) -> None:
    assert served_doc["openapi"].startswith("3.")
    assert "x-edged-undocumented" not in served_doc, served_doc.get("x-edged-undocumented")
    assert served_doc["paths"] == document()["paths"]


def test_every_documented_operation_is_served(daemon: Any, served_doc: dict[str, Any]) -> None:
    unserved = []
    with daemon.client() as http:
        for path, operations in served_doc["paths"].items():
            concrete = path
            for name in [p["name"] for op in operations.values() for p in op["parameters"]]:
                concrete = concrete.replace(f"{{{name}}}", SAMPLE_PATH_VALUES.get(name, "x"))
            for method in operations:
                # streamed: only the status line and headers are read, then it is closed
                with http.stream(method.upper(), concrete, params={"follow": "false"}) as resp:
                    if resp.status_code == 405 or (
                        resp.status_code == 404
                        and b"no such resource" in (resp.read() if resp.status_code == 404 else b"")
                    ):
                        unserved.append(f"{method.upper()} {path} -> {resp.status_code}")
    assert not unserved, unserved


def test_document_loads_in_schemathesis(served_doc: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(served_doc)
    results = list(schema.get_all_operations())
    invalid = [str(r.err()) for r in results if not _is_ok(r)]
    assert not invalid, invalid
    assert len(results) == len(OPERATIONS)


def _is_ok(result: Any) -> bool:
    try:
        result.ok()
    except Exception:
        return False
    return True


async def test_a_route_missing_from_the_document_is_reported() -> None:
    """The check the daemon runs can fail: an undocumented route is named."""
    router = Router()

    async def handler(request: Request, params: Any) -> Any:
        raise AssertionError("not called")

    router.add("GET", "/api/workflow/{workflowId}", handler)  # documented
    router.add("PATCH", "/api/not/documented/{x}", handler)
    add_openapi_routes(router)
    request = Request(method="GET", path="/api-docs", query={}, headers=(), body=b"")
    response = await router(request)
    doc = json.loads(response.body)  # type: ignore[union-attr]
    assert doc["x-edged-undocumented"] == ["PATCH /api/not/documented/{x}"]
