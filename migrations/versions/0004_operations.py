"""operations: pruned status, installation id, losses, worker heartbeats, disabled users

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 23:10:00
"""
import uuid
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A pruned search trial is an outcome of its own, not a failure.
    op.execute("UPDATE experiments SET status = 'pruned' WHERE status = 'failed' AND error_reason = 'pruned'")
    # One row: this database's id, part of every artifact key it writes (a new or restored
    # database never reads another one's checkpoints from a kept artifact store).
    installation = op.create_table(
        'installation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('uid', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_installation')),
    )
    op.bulk_insert(installation, [{'id': 1, 'uid': uuid.uuid4().hex, 'created_at': datetime.now(timezone.utc)}])
    op.create_table(
        'workers',
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('concurrency', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_workers')),
    )
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('losses', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled', sa.Boolean(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('disabled')
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_column('losses')
    op.drop_table('workers')
    op.drop_table('installation')
    op.execute("UPDATE experiments SET status = 'failed' WHERE status = 'pruned'")
