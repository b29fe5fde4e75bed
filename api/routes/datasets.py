"""Data-set uploads (CSV with a header, or NPZ with X and y), checked as they are read."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile as StarletteUpload

from api import archives
from api.deps import CurrentUser, DatasetId, SessionDep
from api.limits import BodyTooLarge
from api.schemas import errors
from api.spec_body import validation_detail
from core.artifacts import get_artifact_store
from core.models import Dataset, User
from core.repositories import DatasetRepository
from core.settings import get_settings
from ml.data.uploads import ArchiveLimits, DatasetError, describe

router = APIRouter(prefix="/datasets", tags=["datasets"], responses=errors(400, 401, 404, 409, 413, 422))
CHUNK = 1024 * 1024
UPLOAD_STATUS = {"malformed": 400, "too_large": 413, "unusable": 422}


class DatasetRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    format: str
    sha256: str
    size: int
    info: dict[str, Any]
    created_at: datetime


def _format_of(filename: str, head: bytes) -> str:
    if filename.lower().endswith(".npz") or head.startswith(b"PK\x03\x04"):
        return "npz"
    if filename.lower().endswith((".csv", ".txt")) or not filename:
        return "csv"
    raise HTTPException(
        400, detail=f"{filename!r}: upload a CSV (.csv), an NPZ (.npz), or a .zip/.tar(.gz) archive of class folders"
    )


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A CSV with a header row, an NPZ with arrays X and y, or a .zip, .tar "
                            "or .tar.gz of class folders (one folder per class; WAV/FLAC clips or PNG/JPEG images).",
                        },
                        "name": {"type": "string", "maxLength": 255},
                        "target": {"type": "string", "maxLength": 255, "description": "CSV: the column to predict."},
                        "allow_missing": {
                            "type": "boolean",
                            "description": "Accept empty CSV cells (impute them later).",
                        },
                    },
                }
            }
        },
    }
}


class UploadForm(BaseModel):
    """The text fields of an upload form."""

    name: str | None = Field(default=None, max_length=255)
    target: str | None = Field(default=None, max_length=255)
    allow_missing: bool = False


@router.post("", status_code=201, response_model=DatasetRead, openapi_extra=UPLOAD_BODY)
async def upload_dataset(request: Request, session: SessionDep, user: CurrentUser) -> Dataset:
    """Upload a data set; a spec then uses it as `data.source: dataset/<id>`."""
    # The user is known before the body is read (an anonymous upload is refused unread); the
    # form's file part spools to disk as it streams in, under the request size limit.
    try:
        form = await request.form(max_files=1, max_fields=8)
    except (HTTPException, BodyTooLarge):  # BodyTooLarge: the size limit answers 413
        raise
    except Exception as exc:  # a malformed multipart body
        raise HTTPException(400, detail=f"malformed upload form: {exc}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, StarletteUpload):
            raise HTTPException(422, detail=[{"loc": ["body", "file"], "msg": "a file is required", "type": "missing"}])
        fields = _form_fields(form)
        return await run_in_threadpool(_store_upload, session, user, upload, fields)
    finally:
        await form.close()


def _form_fields(form: Any) -> UploadForm:
    values = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
    try:
        return UploadForm.model_validate(values)
    except ValidationError as exc:
        raise HTTPException(422, detail=validation_detail(exc)) from exc


def _store_upload(session: Session, user: User, upload: StarletteUpload, form: UploadForm) -> Dataset:
    """Read, check and store one upload (in a worker thread: parsing is CPU work)."""
    if archives.is_folder_archive(upload):  # streamed from disk, never read whole
        return archives.store_archive(session, user, upload, form.name)
    settings = get_settings()
    raw = _read_limited(upload, settings.max_upload_bytes)
    fmt = _format_of(upload.filename or "", raw[:4])
    limits = ArchiveLimits(settings.max_upload_expanded_bytes, settings.max_upload_ratio)
    try:
        info = describe(raw, fmt, form.target, form.allow_missing, limits)
    except DatasetError as exc:
        raise HTTPException(UPLOAD_STATUS[exc.problem], detail=str(exc)) from exc
    repo = DatasetRepository(session)
    dataset = repo.add(
        Dataset(
            owner_id=user.id,
            name=(form.name or upload.filename or f"upload.{fmt}")[:255],
            format=fmt,
            key="",
            sha256=hashlib.sha256(raw).hexdigest(),
            size=len(raw),
            info=info,
        )
    )
    store = get_artifact_store()
    dataset.key = store.dataset_key(dataset.id, fmt)  # derived from the id: no user text in paths
    store.put(dataset.key, raw)
    session.commit()
    return dataset


def _read_limited(upload: StarletteUpload, limit: int) -> bytes:
    """Read the spooled upload in chunks, refusing (413) as soon as it passes the limit."""
    parts, size = [], 0
    upload.file.seek(0)
    while chunk := upload.file.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, detail=f"the file is larger than the upload limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


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
    keys = [dataset.key, *(dataset.info or {}).get("feature_caches", [])]  # decoded features of a folder set
    repo.delete(dataset)
    session.commit()
    store = get_artifact_store()
    for key in keys:
        store.delete(key)
    return Response(status_code=204)
