"""optuna schema: the search studies' tables live in a PostgreSQL schema of their own

Optuna keeps its own schema version in a table named `alembic_version`, like ours, so its tables
go to the `optuna` schema (`ml.search.study` points Optuna's connections there). The schema is
created here, with the rest of the server's DDL, not by the library at run time.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 23:40:00
"""
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute('CREATE SCHEMA IF NOT EXISTS "optuna"')


def downgrade() -> None:
    pass  # the studies are kept: dropping them is not an undo of a schema upgrade
