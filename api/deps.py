"""Dependencies as Annotated aliases, so a route signature reads like a sentence."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy.orm import Session

from core.db import get_sessionmaker
from core.models import Experiment, User
from core.repositories import ExperimentRepository, TokenRepository

TOKEN_COOKIE = "trainlab_token"


def get_session() -> Iterator[Session]:
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session)]

# Ids are 32-bit in the database: a larger number can name nothing (422, not a database error).
MAX_ID = 2**31 - 1
ExperimentId = Annotated[int, Path(ge=1, le=MAX_ID, description="The experiment's id.")]
DatasetId = Annotated[int, Path(ge=1, le=MAX_ID, description="The data set's id.")]


def _presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(TOKEN_COOKIE)


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def same_origin(request: Request) -> bool:
    """Whether a browser says this request comes from a page of this very server: its Origin
    (or, without one, its Referer) names the host and port the request was sent to. Another
    port of the same host (a student's notebook server) is another origin."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed or claimed == "null":
        return False
    return urlsplit(claimed).netloc.lower() == request.headers.get("host", "").lower()


def require_same_origin(request: Request) -> None:
    """A state change a browser form could make (sign-in, sign-out) must come from our pages."""
    if not same_origin(request):
        raise HTTPException(403, detail="cross-site request refused: send it from the dashboard's own pages")


def get_current_user(request: Request, session: SessionDep) -> User:
    """The user whose token came with the request (Bearer header or the dashboard's cookie).
    A state-changing request authenticated by the cookie alone must come from our own pages
    (CSRF): scripts use the Authorization header, which no other site can make a browser send."""
    token = _presented_token(request)
    by_cookie = token is not None and not request.headers.get("authorization")
    if by_cookie and request.method not in SAFE_METHODS and not same_origin(request):
        raise HTTPException(403, detail="cross-site request refused: a cookie-signed change must come from this server")
    user = TokenRepository(session).authenticate(token) if token else None
    if user is None:
        raise HTTPException(
            401,
            detail="a valid API token is required: send 'Authorization: Bearer tl_...'"
            if not token
            else "the token is unknown or revoked",
            headers={"WWW-Authenticate": "Bearer"},
        )
    session.commit()  # last_used_at
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_experiment(experiment_id: ExperimentId, session: SessionDep, user: CurrentUser) -> Experiment:
    """The experiment, if it exists and the user may see it (404 otherwise: no existence leak)."""
    experiment = ExperimentRepository(session).visible(experiment_id, user)
    if experiment is None:
        raise HTTPException(status_code=404, detail=f"experiment {experiment_id} not found")
    return experiment


ExperimentDep = Annotated[Experiment, Depends(get_experiment)]
