"""The FastAPI application. Never imports torch: specs are validated with `ml.spec` only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from api import dashboard
from api.archives import upload_body_limit
from api.limits import AttemptWindow, BodySizeLimit
from api.routes import datasets, experiments, monitoring, system
from core.db import get_engine
from core.migrate import require_current_schema
from core.settings import get_settings
from ml.spec import spec_json_schema

API_PREFIX = "/api/v1"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Serve only a database at this code's schema (`trainlab migrate` upgrades it)."""
    require_current_schema(get_engine())
    yield


def create_app() -> FastAPI:
    """Build the app with its routes under /api/v1 and OpenAPI docs at /docs."""
    app = FastAPI(
        lifespan=_lifespan,
        title="trainlab",
        version="0.1.0",
        description="A REST training service for shared deep-learning lab servers.",
    )
    app.include_router(system.router, prefix=API_PREFIX)
    app.include_router(experiments.router, prefix=API_PREFIX)
    app.include_router(datasets.router, prefix=API_PREFIX)
    app.include_router(monitoring.router)
    app.include_router(dashboard.router)
    get_settings().ensure_data_dir()
    settings = get_settings()
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        routes={("POST", f"{API_PREFIX}/datasets"): upload_body_limit(settings)},  # folder archives: GBs
    )
    app.state.submissions = AttemptWindow()

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Any:
        """No framing, no MIME sniffing, and our pages run only our own scripts."""
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith(("/docs", "/redoc")):  # FastAPI's docs pages load their own
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    @app.middleware("http")
    async def complete_allow_header(request: Request, call_next: Any) -> Any:
        """A 405 lists every method the path supports (Starlette lists one route's only)."""
        response = await call_next(request)
        if response.status_code == 405:
            methods = {
                method
                for route in app.routes
                if isinstance(route, APIRoute) and route.path_regex.match(request.url.path)
                for method in route.methods or ()
            }
            response.headers["Allow"] = ", ".join(sorted(methods))
        return response

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            spec_schema = spec_json_schema()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(spec_schema.pop("$defs", {}))
            components["ExperimentSpecDocument"] = spec_schema
            app.openapi_schema = cast(dict[str, Any], _rewrite_refs(schema))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _rewrite_refs(node: object) -> object:
    """Point the spec schema's local $defs references at OpenAPI components."""
    if isinstance(node, dict):
        return {
            k: (
                v.replace("#/$defs/", "#/components/schemas/")
                if k == "$ref" and isinstance(v, str)
                else _rewrite_refs(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    return node


app = create_app()
