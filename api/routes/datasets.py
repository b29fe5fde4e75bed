"""Data-set uploads (CSV with a header, or NPZ with X and y), checked as they are read."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Response, UploadFile
from pydantic import BaseModel, ConfigDict

from api.deps import CurrentUser, DatasetId, SessionDep
from api.schemas import errors
from core.artifacts import get_artifact_store
from core.datasets import DatasetError, describe
from core.models import Dataset
from core.repositories import DatasetRepository
from core.settings import get_settings

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=errors(400, 401, 404, 409, 413, 422))
CHUNK = 1024 * 1024


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    format: str
    sha256: str
    size: int
    info: dict[str, Any]
    created_at: datetime


async def _read_limited(upload: UploadFile, limit: int) -> bytes:
    """Read the upload in chunks, refusing (413) as soon as it passes the limit."""
    parts, size = [], 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, detail=f"the file is larger than the upload limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _format_of(filename: str, head: bytes) -> str:
    if filename.lower().endswith(".npz") or head.startswith(b"PK\x03\x04"):
        return "npz"
    if filename.lower().endswith((".csv", ".txt")) or not filename:
        return "csv"
    raise HTTPException(400, detail=f"{filename!r}: upload a CSV (.csv) or an NPZ (.npz) file")


@router.post("", status_code=201, response_model=DatasetRead)
async def upload_dataset(
    session: SessionDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File(description="A CSV with a header row, or an NPZ with arrays X and y.")],
    name: Annotated[str | None, Form(max_length=255)] = None,
    target: Annotated[str | None, Form(max_length=255, description="CSV: the column to predict.")] = None,
    allow_missing: Annotated[bool, Form(description="Accept empty CSV cells (impute them later).")] = False,
) -> Dataset:
    """Upload a data set; a spec then uses it as `data.source: dataset/<id>`."""
    settings = get_settings()
    raw = await _read_limited(file, settings.max_upload_bytes)
    fmt = _format_of(file.filename or "", raw[:4])
    try:
        info = describe(raw, fmt, target, allow_missing)
    except DatasetError as exc:
        raise HTTPException(exc.status, detail=str(exc)) from exc
    repo = DatasetRepository(session)
    dataset = repo.add(
        Dataset(
            owner_id=user.id,
            name=(name or file.filename or f"upload.{fmt}")[:255],
            format=fmt,
            key="",
            sha256=hashlib.sha256(raw).hexdigest(),
            size=len(raw),
            info=info,
        )
    )
    store = get_artifact_store()
    dataset.key = f"datasets/{dataset.id}/data.{fmt}"  # derived from the id: no user text in paths
    store.put(dataset.key, raw)
    session.commit()
    return dataset


@router.get("", response_model=list[DatasetRead])
def list_datasets(session: SessionDep, user: CurrentUser) -> list[Dataset]:
    """Your data sets, newest first (admins: everyone's)."""
    return list(DatasetRepository(session).list(None if user.is_admin else user.id))


def _visible(dataset_id: DatasetId, session: SessionDep, user: CurrentUser) -> Dataset:
    dataset = DatasetRepository(session).visible(dataset_id, user)
    if dataset is None:
        raise HTTPException(404, detail=f"data set {dataset_id} not found")
    return dataset


@router.get("/{dataset_id}", response_model=DatasetRead)
def get_dataset(dataset_id: DatasetId, session: SessionDep, user: CurrentUser) -> Dataset:
    """One data set's description."""
    return _visible(dataset_id, session, user)


@router.delete("/{dataset_id}", status_code=204)
def delete_dataset(dataset_id: DatasetId, session: SessionDep, user: CurrentUser) -> Response:
    """Delete a data set no experiment uses (409 otherwise)."""
    dataset = _visible(dataset_id, session, user)
    repo = DatasetRepository(session)
    if (users := repo.in_use(dataset_id)) > 0:
        raise HTTPException(409, detail=f"data set {dataset_id} is used by {users} experiment(s); it is kept")
    key = dataset.key
    repo.delete(dataset)
    session.commit()
    get_artifact_store().delete(key)
    return Response(status_code=204)
