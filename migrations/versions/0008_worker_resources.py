"""workers advertise what they serve: the Celery queues they consume and their GPUs

A queued experiment whose queue (resource class: cpu, gpu1, gpu2...) no live worker consumes is
flagged with the reason instead of waiting silently. Rows written before this migration read as
workers of the default queue without GPUs (what every worker was).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 03:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("queues", sa.String(500), nullable=False, server_default="trainlab"))
        batch.add_column(sa.Column("gpus", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("gpus")
        batch.drop_column("queues")
