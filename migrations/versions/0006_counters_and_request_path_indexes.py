"""counters and request-path indexes: submissions, lists and /metrics in O(answer), not O(table)

- Indexes for every filter a request path uses: a user's submissions in the last minute
  (owner_id, created_at), a user's queued/running ones and a user's list by status
  (owner_id, status, id), a user's list newest first (owner_id, id; replaces owner_id alone),
  a status newest first and the oldest queued (status, id; replaces status alone). The metrics'
  own experiment_id index goes: the unique (experiment_id, step, split, name) serves it.
- Counters kept by the database itself: a trigger on experiments writes each row's change of
  status, kind, owner or timings to `experiment_changes` (one row out, one row in);
  `core.repositories.monitoring` folds those into `experiment_counts` (owner, kind, status) and
  `experiment_durations` (queue waits and run times per kind, by histogram bucket). Triggers see
  every writer (bulk updates, cascades, other processes), so the counts cannot drift.

SQLite: a `batch_alter_table` on experiments re-creates the table and drops its triggers; a
later migration that batch-alters experiments must create them again (`create_triggers`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

FINAL = "('succeeded', 'failed', 'cancelled', 'pruned')"
WATCHED = ("status", "kind", "owner_id", "created_at", "started_at", "finished_at")


def _millis(dialect: str, start: str, end: str) -> str:
    if dialect == "postgresql":
        return f"ROUND(EXTRACT(EPOCH FROM ({end} - {start})) * 1000)::bigint"
    return f"CAST(ROUND((julianday({end}) - julianday({start})) * 86400000.0) AS INTEGER)"


def _values(dialect: str, row: str, sign: int) -> str:
    """The contribution of one row state: its counter key and its durations (ms, or NULL)."""
    queued = f"CASE WHEN {row}.started_at IS NOT NULL THEN {_millis(dialect, f'{row}.created_at', f'{row}.started_at')} END"
    run = (
        f"CASE WHEN {row}.status IN {FINAL} AND {row}.started_at IS NOT NULL AND {row}.finished_at IS NOT NULL "
        f"THEN {_millis(dialect, f'{row}.started_at', f'{row}.finished_at')} END"
    )
    return f"({sign}, COALESCE({row}.owner_id, 0), {row}.kind, {row}.status, {queued}, {run})"


INSERT = "INSERT INTO experiment_changes (sign, owner_id, kind, status, queued_ms, run_ms) VALUES "


def create_triggers(dialect: str) -> None:
    """The triggers that log every change of a counted column of experiments."""
    if dialect == "postgresql":
        distinct = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in WATCHED)
        op.execute(f"""
            CREATE OR REPLACE FUNCTION experiments_log_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP IN ('UPDATE', 'DELETE') THEN
                    {INSERT} {_values(dialect, 'OLD', -1)};
                END IF;
                IF TG_OP IN ('UPDATE', 'INSERT') THEN
                    {INSERT} {_values(dialect, 'NEW', 1)};
                END IF;
                RETURN NULL;
            END $$""")
        op.execute("CREATE TRIGGER experiments_log_insert_delete AFTER INSERT OR DELETE ON experiments "
                   "FOR EACH ROW EXECUTE FUNCTION experiments_log_change()")
        op.execute(f"CREATE TRIGGER experiments_log_update AFTER UPDATE OF {', '.join(WATCHED)} ON experiments "
                   f"FOR EACH ROW WHEN ({distinct}) EXECUTE FUNCTION experiments_log_change()")
        return
    distinct = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in WATCHED)
    op.execute(f"CREATE TRIGGER experiments_log_insert AFTER INSERT ON experiments FOR EACH ROW "
               f"BEGIN {INSERT} {_values(dialect, 'NEW', 1)}; END")
    op.execute(f"CREATE TRIGGER experiments_log_delete AFTER DELETE ON experiments FOR EACH ROW "
               f"BEGIN {INSERT} {_values(dialect, 'OLD', -1)}; END")
    op.execute(f"CREATE TRIGGER experiments_log_update AFTER UPDATE OF {', '.join(WATCHED)} ON experiments "
               f"FOR EACH ROW WHEN {distinct} "
               f"BEGIN {INSERT} {_values(dialect, 'OLD', -1)}, {_values(dialect, 'NEW', 1)}; END")


def drop_triggers(dialect: str) -> None:
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS experiments_log_update ON experiments")
        op.execute("DROP TRIGGER IF EXISTS experiments_log_insert_delete ON experiments")
        op.execute("DROP FUNCTION IF EXISTS experiments_log_change()")
        return
    for name in ("experiments_log_insert", "experiments_log_delete", "experiments_log_update"):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index('ix_experiments_owner_id', table_name='experiments')
    op.drop_index('ix_experiments_status', table_name='experiments')
    op.create_index('ix_experiments_owner_id_id', 'experiments', ['owner_id', 'id'])
    op.create_index('ix_experiments_owner_id_status', 'experiments', ['owner_id', 'status', 'id'])
    op.create_index('ix_experiments_owner_id_created_at', 'experiments', ['owner_id', 'created_at'])
    op.create_index('ix_experiments_status_id', 'experiments', ['status', 'id'])
    op.drop_index('ix_metrics_experiment_id', table_name='metrics')

    op.create_table(
        'experiment_changes',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('sign', sa.Integer(), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('queued_ms', sa.BigInteger(), nullable=True),
        sa.Column('run_ms', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_experiment_changes')),
    )
    op.create_table(
        'experiment_counts',
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('owner_id', 'kind', 'status', name=op.f('pk_experiment_counts')),
    )
    op.create_table(
        'experiment_durations',
        sa.Column('phase', sa.String(length=8), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('bucket', sa.Integer(), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('sum_ms', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('phase', 'kind', 'bucket', name=op.f('pk_experiment_durations')),
    )
    # The rows already stored are logged once, as if inserted now; the first fold counts them.
    values = _values(dialect, 'experiments', 1)[1:-1]
    op.execute(f"INSERT INTO experiment_changes (sign, owner_id, kind, status, queued_ms, run_ms) "
               f"SELECT {values} FROM experiments")
    create_triggers(dialect)


def downgrade() -> None:
    drop_triggers(op.get_bind().dialect.name)
    op.drop_table('experiment_durations')
    op.drop_table('experiment_counts')
    op.drop_table('experiment_changes')
    op.create_index('ix_metrics_experiment_id', 'metrics', ['experiment_id'])
    op.drop_index('ix_experiments_status_id', table_name='experiments')
    op.drop_index('ix_experiments_owner_id_created_at', table_name='experiments')
    op.drop_index('ix_experiments_owner_id_status', table_name='experiments')
    op.drop_index('ix_experiments_owner_id_id', table_name='experiments')
    op.create_index('ix_experiments_status', 'experiments', ['status'])
    op.create_index('ix_experiments_owner_id', 'experiments', ['owner_id'])
