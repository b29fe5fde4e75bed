"""Server-side administration: users and API tokens (`trainlab users ...`, `trainlab tokens ...`).

These commands talk to the database directly (run them on the server, like `trainlab migrate`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Column, Table

from trainlab.render import SafeConsole

users_app = typer.Typer(help="Users of the server (run on the server).", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (run on the server).", no_args_is_help=True)
console = SafeConsole()


def config_path() -> Path:
    """Where the CLI keeps its server URL and token (TRAINLAB_CONFIG overrides)."""
    override = os.environ.get("TRAINLAB_CONFIG")
    return Path(override) if override else Path.home() / ".config" / "trainlab" / "config.json"


def save_client_config(url: str, token: str) -> Path:
    """Write the CLI's config file (mode 600: it holds a token)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update({"url": url, "token": token})
    path.write_text(json.dumps(data, indent=2))
    path.chmod(0o600)
    return path


def create_user(name: str, admin: bool = False, label: str | None = None) -> str:
    """Create a user with a first token; returns the token (shown once)."""
    from core.db import session_scope
    from core.repositories import TokenRepository, UserRepository

    with session_scope() as session:
        users = UserRepository(session)
        if users.get_by_name(name) is not None:
            raise typer.BadParameter(f"user {name!r} already exists")
        user = users.create(name, is_admin=admin)
        token, _ = TokenRepository(session).issue(user, label)
        session.commit()
    return token


def ensure_first_admin(url: str) -> str | None:
    """On a server with no users, create the local admin, save its token for the CLI and
    return it; None when users already exist."""
    from core.db import session_scope
    from core.repositories import UserRepository

    with session_scope() as session:
        if UserRepository(session).count():
            return None
    token = create_user("admin", admin=True, label="created on first start")
    save_client_config(url, token)
    return token


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="User name (unique).")],
    admin: Annotated[bool, typer.Option("--admin", help="Sees and manages everyone's experiments.")] = False,
    save: Annotated[
        bool, typer.Option("--save", help="Also write the token and --url to the CLI's config file (TRAINLAB_CONFIG).")
    ] = False,
    url: Annotated[
        str, typer.Option(envvar="TRAINLAB_URL", help="The server's address saved with --save.")
    ] = "http://127.0.0.1:8000",
) -> None:
    """Create a user and print its first API token (shown once; only a hash is stored)."""
    token = create_user(name, admin)
    console.print(f"user {name} created{' (admin)' if admin else ''}; token (shown once):")
    print(token)
    if save:
        console.print(f"saved with the URL {url} in {save_client_config(url, token)}: the CLI on this machine uses it")


@users_app.command("list")
def users_list() -> None:
    """List users."""
    from core.db import session_scope
    from core.repositories import UserRepository

    table = Table("id", "name", "admin", "disabled", "created")
    with session_scope() as session:
        for user in UserRepository(session).list():
            flags = ("yes" if user.is_admin else "", "yes" if user.disabled else "")
            table.add_row(str(user.id), user.name, *flags, user.created_at.isoformat())
    console.print(table)


def _set_disabled(name: str, disabled: bool) -> None:
    from core.db import session_scope
    from core.repositories import UserRepository

    with session_scope() as session:
        user = UserRepository(session).get_by_name(name)
        if user is None:
            raise typer.BadParameter(f"no user {name!r}")
        user.disabled = disabled
        session.commit()
    console.print(f"user {name} {'disabled: their tokens are refused' if disabled else 'enabled'}")


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Refuse a user's tokens (their experiments and data sets stay; an admin can still read them)."""
    _set_disabled(name, True)


@users_app.command("enable")
def users_enable(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Accept a disabled user's tokens again."""
    _set_disabled(name, False)


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Argument(help="User name.")],
    label: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
) -> None:
    """Issue another token for a user (printed once)."""
    from core.db import session_scope
    from core.repositories import TokenRepository, UserRepository

    with session_scope() as session:
        owner = UserRepository(session).get_by_name(user)
        if owner is None:
            raise typer.BadParameter(f"no user {user!r}")
        token, _ = TokenRepository(session).issue(owner, label)
        session.commit()
    print(token)


@tokens_app.command("list")
def tokens_list(user: Annotated[str | None, typer.Option(help="Only this user's tokens.")] = None) -> None:
    """List tokens by prefix (the tokens themselves are never stored)."""
    from core.db import session_scope
    from core.repositories import TokenRepository, UserRepository

    # the prefix is what `tokens revoke` takes: never squeezed or cut, whatever the width
    prefix = Column("prefix", no_wrap=True, min_width=10)
    table = Table(
        prefix, "user", "label", "created", "last used", "revoked", caption="revoke: trainlab tokens revoke PREFIX"
    )
    with session_scope() as session:
        owner = UserRepository(session).get_by_name(user) if user else None
        for row in TokenRepository(session).list(owner):
            table.add_row(
                row.prefix,
                row.user.name,
                row.label or "",
                row.created_at.isoformat(timespec="seconds"),
                row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "",
                row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else "",
            )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    prefix: Annotated[str, typer.Argument(help="The token's prefix, as `tokens list` shows it.")],
) -> None:
    """Revoke tokens by prefix."""
    from core.db import session_scope
    from core.repositories import TokenRepository

    if len(prefix) < 6:
        raise typer.BadParameter("give at least 6 characters of the prefix")
    with session_scope() as session:
        count = TokenRepository(session).revoke(prefix)
        session.commit()
    console.print(f"revoked {count} token(s)")
    if not count:
        raise typer.Exit(1)
