"""The worker resolves a stored spec's references again, for the experiment's owner, with the
same function as the API: a row written past the API (or a spec the API once let through)
still cannot read another user's data set or weights, or report into another user's search."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_user

CSV = b"a,b,label\n" + b"".join(f"{i},{i % 5},{i % 2}\n".encode() for i in range(40))


@pytest.fixture
def stored(client: TestClient) -> dict[str, Any]:
    """Alice's data set and succeeded experiment; Bob's id."""
    from core.db import session_scope
    from core.models import Status, User
    from core.repositories import ExperimentRepository, RunRepository

    dataset = client.post("/api/v1/datasets", files={"file": ("a.csv", CSV)}, data={"target": "label"}).json()
    make_user("bob")
    with session_scope() as session:
        alice = session.query(User).filter_by(name="owner").one()
        bob = session.query(User).filter_by(name="bob").one()
        repo, runs = ExperimentRepository(session), RunRepository(session)
        source = repo.create(name="alice-run", kind="train", spec={}, owner_id=alice.id)
        session.flush()
        assert runs.claim(source.id, "test-worker")
        assert runs.finish(source.id, Status.succeeded, summary={})
        session.commit()
        return {"alice": alice.id, "bob": bob.id, "dataset": dataset["id"], "source": source.id}


def problem_of(claim: Any) -> str | None:
    """What the worker says of a claimed row (it parses the stored spec once, as here)."""
    from ml.spec import parse_spec
    from workers.tasks import reference_problem

    return reference_problem(claim, parse_spec(claim.spec))


def spec_with(**fields: Any) -> dict[str, Any]:
    return {"kind": "train", "name": "x", "data": {"source": "builtin/iris"}, **fields}


def test_a_stored_spec_naming_anothers_data_fails_in_the_worker(stored: dict[str, Any]) -> None:
    from workers.tasks import Claim

    theirs = spec_with(data={"source": f"dataset/{stored['dataset']}", "target": "label"})
    assert problem_of(Claim(theirs, stored["alice"], None)) is None
    problem = problem_of(Claim(theirs, stored["bob"], None))
    assert problem is not None and f"data set {stored['dataset']} not found" in problem
    compare = {
        "kind": "compare",
        "name": "c",
        "base": spec_with(),
        "variants": [{"label": "a", "set": {}}, {"label": "b", "set": {"init.from_experiment": "alice-run"}}],
    }
    assert "of yours" in (problem_of(Claim(compare, stored["bob"], None)) or "")
    assert problem_of(Claim(compare, stored["alice"], None)) is None


def test_server_only_fields_and_foreign_studies_fail_in_the_worker(stored: dict[str, Any]) -> None:
    from workers.tasks import Claim

    trial = spec_with(trial={"study": f"trainlab-search-{stored['source']}", "number": 3})
    assert "set by the server only" in (problem_of(Claim(trial, stored["bob"], None)) or "")
    other_parent = stored["source"] + 1000
    assert "not a trial of this" in (problem_of(Claim(trial, stored["bob"], other_parent)) or "")
    assert problem_of(Claim(trial, stored["bob"], stored["source"])) is None


def test_the_loaders_read_only_the_owners_objects(stored: dict[str, Any]) -> None:
    from core.artifacts import get_artifact_store
    from ml.errors import DataError
    from ml.spec import DataSpec
    from workers.uploads import UploadResolver, WeightsLoader

    data = DataSpec(source=f"dataset/{stored['dataset']}", target="label")
    store = get_artifact_store()
    assert UploadResolver(store, stored["alice"])(str(stored["dataset"]), data).X.shape == (40, 2)
    for owner in (stored["bob"], None):
        with pytest.raises(DataError, match="not found"):
            UploadResolver(store, owner)(str(stored["dataset"]), data)
        with pytest.raises(DataError, match="of yours"):
            WeightsLoader(store, owner)("alice-run")
    assert WeightsLoader(store, stored["alice"])("alice-run") is None  # hers (no model.pt was written)
