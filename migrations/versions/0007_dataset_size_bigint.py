"""dataset size as a 64-bit integer: a folder data set's archive may be larger than 2 GiB

PostgreSQL's INTEGER is 32-bit (at most 2,147,483,647 bytes); BIGINT holds any archive size.
SQLite stores every INTEGER in up to 8 bytes already: nothing to change there (and no table
re-created).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 02:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("datasets", "size", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("datasets", "size", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
