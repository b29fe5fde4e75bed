"""The web dashboard: server-rendered page frames (Jinja2) whose data the browser fetches from
/api/v1 with the sign-in cookie, so the API's authentication guards every number shown.
Charts are drawn with Chart.js, shipped in api/static (no CDN)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.deps import require_same_origin

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TOKEN_COOKIE = "trainlab_token"
TOKEN_PREFIX = "tl_"
COOKIE_MAX_AGE = 30 * 24 * 3600
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "pruned")
KINDS = ("train", "kfold", "pinn", "compare", "search", "ensemble")
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}

templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, **context: object) -> HTMLResponse:
    context.update(page=template.removesuffix(".html"), signed_in=TOKEN_COOKIE in request.cookies)
    response = templates.TemplateResponse(request, template, context)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/", response_class=HTMLResponse)
def experiment_list(
    request: Request,
    status: Annotated[str | None, Query(max_length=16)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    name: Annotated[str | None, Query(max_length=200)] = None,
    children: Annotated[str | None, Query(max_length=8)] = None,
) -> HTMLResponse:
    """The experiment list with status, kind and name filters; top level only unless `children`."""
    filters = {"status": status, "kind": kind, "name": name, "children": bool(children)}
    return _page(request, "list.html", statuses=STATUSES, kinds=KINDS, **filters)


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_page(request: Request, experiment_id: int) -> HTMLResponse:
    """One experiment: curves, diagnosis, plots, children; refreshes while it runs."""
    return _page(request, "experiment.html", experiment_id=experiment_id)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, ids: Annotated[str, Query(max_length=400)] = "") -> HTMLResponse:
    """Two or more experiments: overlaid curves, metrics and spec differences."""
    try:
        numbers = list(dict.fromkeys(int(i) for i in ids.replace(" ", "").split(",") if i))
    except ValueError as exc:
        raise HTTPException(422, detail="ids is a comma-separated list of experiment ids, e.g. ids=1,2") from exc
    return _page(request, "compare.html", ids=numbers[:12])


def _safe_next(target: str) -> str:
    """Only same-site paths: never redirect a signed-in user to another host."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    """The sign-in form (an API token)."""
    return _page(request, "login.html", next=_safe_next(next), error=None)


@router.post("/login", response_model=None, dependencies=[Depends(require_same_origin)])
def login(
    request: Request, token: Annotated[str, Form(max_length=512)], next: Annotated[str, Form()] = "/"
) -> Response:
    """Keep the token in an HttpOnly cookie that the API accepts like the Authorization header."""
    token = token.strip()
    if not token.startswith(TOKEN_PREFIX) or len(token) == len(TOKEN_PREFIX) or any(c.isspace() for c in token):
        page = _page(request, "login.html", next=_safe_next(next), error=f"a trainlab token starts with {TOKEN_PREFIX}")
        page.status_code = 400
        return page
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        TOKEN_COOKIE,
        token,
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout", dependencies=[Depends(require_same_origin)])
def logout() -> RedirectResponse:
    """Forget the token."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """The dashboard's scripts and styles (files of api/static only)."""
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise HTTPException(404, detail=f"no static file {name!r}")
    media_type = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "public, max-age=300"})
