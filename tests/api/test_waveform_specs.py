"""A spec whose raw-audio parts cannot work together is a 422 naming the problem (both backends)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

WAVEFORM = {"sample_rate": 8000, "clip_seconds": 3, "features": "waveform"}


def spec(model: dict, preprocess: list | None = None) -> dict:
    body = {"name": "raw", "data": {"source": "dataset/1", "audio": WAVEFORM}, "model": model}
    return body if preprocess is None else {**body, "preprocess": preprocess}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (spec({"type": "cnn"}), "a raw waveform (data.audio.features: waveform) needs type cnn1d"),
        (spec({"type": "cnn1d"}, [{"step": "spec_augment", "noise": 3}]), "gain_db and noise are in dB"),
        (spec({"type": "cnn", "front_kernel": 40}), "front_kernel applies to type 'cnn1d' only"),
        (  # 30 s at 22,050 Hz: a small front end, then 4096 unpooled channels (2.2e10 values a batch)
            {
                "name": "raw",
                "data": {"source": "dataset/1", "audio": {"features": "waveform", "clip_seconds": 30}},
                "model": {"type": "cnn1d", "channels": [1, 4096, 4096], "pooling": "none"},
                "train": {"batch_size": 32},
            },
            "the output of block 2 of model.channels [1, 4096, 4096], is 21676163072 values a batch",
        ),
    ],
)
def test_waveform_spec_combinations_are_422(client: TestClient, body: dict, words: str) -> None:
    response = client.post("/api/v1/experiments", json=body)
    assert response.status_code == 422, response.text
    assert words in response.text
    assert client.get("/api/v1/experiments").json()["total"] == 0
