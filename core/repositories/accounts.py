"""Users and their API tokens."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import ApiToken, User, utcnow
from core.security import display_prefix, hash_token, new_token, same_hash


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def create(self, name: str, *, is_admin: bool = False) -> User:
        user = User(name=name, is_admin=is_admin)
        self.session.add(user)
        self.session.flush()
        return user

    def get_by_name(self, name: str) -> User | None:
        return self.session.scalar(select(User).where(User.name == name))

    def list(self) -> Sequence[User]:
        return self.session.scalars(select(User).order_by(User.id)).all()

    def count(self) -> int:
        return self.session.scalar(select(func.count()).select_from(User)) or 0

    def names(self, user_ids: Iterable[int]) -> dict[int, str]:
        """Users' names by id (a page of experiments' owners, in one statement)."""
        ids = set(user_ids)
        if not ids:
            return {}
        rows = self.session.execute(select(User.id, User.name).where(User.id.in_(ids)))
        return dict(rows.tuples().all())


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def issue(self, user: User, label: str | None = None) -> tuple[str, ApiToken]:
        """A new token for `user`: the plain token (show it once) and its stored row."""
        token = new_token()
        row = ApiToken(user_id=user.id, prefix=display_prefix(token), token_hash=hash_token(token), label=label)
        self.session.add(row)
        self.session.flush()
        return token, row

    def authenticate(self, token: str) -> User | None:
        """The user a live token belongs to, or None (unknown or revoked)."""
        digest = hash_token(token)
        row = self.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        if row is None or row.revoked_at is not None or not same_hash(row.token_hash, digest):
            return None
        if row.user.disabled:
            return None
        row.last_used_at = utcnow()
        return row.user

    def list(self, user: User | None = None) -> Sequence[ApiToken]:
        query = select(ApiToken).order_by(ApiToken.id)
        if user is not None:
            query = query.where(ApiToken.user_id == user.id)
        return self.session.scalars(query).all()

    def revoke(self, prefix: str) -> int:
        """Revoke every live token whose prefix starts with `prefix`; how many were revoked."""
        rows = self.session.scalars(
            select(ApiToken).where(ApiToken.prefix.startswith(prefix, autoescape=True), ApiToken.revoked_at.is_(None))
        ).all()
        for row in rows:
            row.revoked_at = utcnow()
        self.session.flush()
        return len(rows)
