"""Where the client finds its server and token: flags, then the environment, then the config file.

The config file is JSON, `{"url": ..., "token": ...}`, at `~/.config/trainlab/config.json` or the
path in `TRAINLAB_CONFIG`. The embedded server writes its first admin's token there.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"


def config_path() -> Path:
    """The config file's path: `TRAINLAB_CONFIG`, else `~/.config/trainlab/config.json`."""
    explicit = os.environ.get("TRAINLAB_CONFIG")
    return Path(explicit).expanduser() if explicit else Path.home() / ".config" / "trainlab" / "config.json"


def read_config(path: Path | None = None) -> dict[str, Any]:
    """The config file's content; an absent or unreadable file reads as empty."""
    path = path or config_path()
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return content if isinstance(content, dict) else {}


def write_config(url: str | None = None, token: str | None = None, path: Path | None = None) -> Path:
    """Store a URL and/or token in the config file (readable by its owner only)."""
    path = path or config_path()
    content = read_config(path)
    content.update({k: v for k, v in (("url", url), ("token", token)) if v})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n")
    return path


@dataclass(frozen=True)
class Connection:
    """The server to talk to and the token to show it."""

    url: str
    token: str | None


API_PATH = "/api/v1"


def server_url(url: str) -> str:
    """The server's address as people write it: with or without a trailing `/` or `/api/v1`
    (the API base the README shows), always without."""
    url = url.strip().rstrip("/")
    return url[: -len(API_PATH)].rstrip("/") if url.endswith(API_PATH) else url


def resolve_connection(url: str | None = None, token: str | None = None) -> Connection:
    """Flags win over `TRAINLAB_URL` / `TRAINLAB_TOKEN`, which win over the config file."""
    file = read_config()
    return Connection(
        url=server_url(url or os.environ.get("TRAINLAB_URL") or file.get("url") or DEFAULT_URL),
        token=token or os.environ.get("TRAINLAB_TOKEN") or file.get("token") or None,
    )
