"""Reporting upstream: incident declarations, analysts' notes, the delivery queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 13:10:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('incident_declarations',
    sa.Column('incident', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('declared_ns', sa.BigInteger(), nullable=False),
    sa.Column('by', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['incident'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('incident')
    )
    op.create_table('incident_notes',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('incident', sa.BigInteger(), nullable=False),
    sa.Column('created_ns', sa.BigInteger(), nullable=False),
    sa.Column('author', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['incident'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('incident_notes', schema=None) as batch_op:
        batch_op.create_index('incident_notes_by_incident', ['incident', 'id'], unique=False)

    op.create_table('upstream_reports',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('incident', sa.BigInteger(), nullable=False),
    sa.Column('recipient', sa.Text(), nullable=False),
    sa.Column('stage', sa.Text(), nullable=False),
    sa.Column('due_ns', sa.BigInteger(), nullable=False),
    sa.Column('send_ns', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), server_default='', nullable=False),
    sa.Column('version_ns', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('bundle', sa.Text(), server_default='', nullable=False),
    sa.Column('parts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('parts_done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('status_ids', sa.Text(), server_default='', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_try_ns', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('lease_ns', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('sent_ns', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('acked_ns', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('warned', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('updated_ns', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['incident'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('incident', 'recipient', 'stage', name='upstream_reports_key')
    )
    with op.batch_alter_table('upstream_reports', schema=None) as batch_op:
        batch_op.create_index('upstream_reports_by_status', ['status', 'next_try_ns'], unique=False)

    # The push job's row (FOR UPDATE SKIP LOCKED, like correlation and retention).
    op.bulk_insert(sa.table('jobs', sa.column('name', sa.Text)), [{'name': 'upstream'}])


def downgrade() -> None:
    """Downgrade schema."""
    op.execute(sa.text("DELETE FROM jobs WHERE name = 'upstream'"))
    with op.batch_alter_table('upstream_reports', schema=None) as batch_op:
        batch_op.drop_index('upstream_reports_by_status')

    op.drop_table('upstream_reports')
    with op.batch_alter_table('incident_notes', schema=None) as batch_op:
        batch_op.drop_index('incident_notes_by_incident')

    op.drop_table('incident_notes')
    op.drop_table('incident_declarations')
