"""Initial schema: sites, agents, findings, assets, incidents, feed log, jobs

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24 09:22:55.575605

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('feed',
    sa.Column('cursor', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('ref', sa.BigInteger(), nullable=False),
    sa.Column('new', sa.SmallInteger(), nullable=False),
    sa.Column('site', sa.Text(), nullable=False),
    sa.Column('agent_id', sa.Text(), nullable=False),
    sa.Column('severity', sa.SmallInteger(), nullable=True),
    sa.Column('detector', sa.Text(), nullable=False),
    sa.Column('techniques', sa.Text(), nullable=False),
    sa.Column('assets', sa.Text(), nullable=False),
    sa.Column('ingest_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('cursor')
    )
    with op.batch_alter_table('feed', schema=None) as batch_op:
        batch_op.create_index('feed_by_ingest', ['ingest_ns'], unique=False)

    op.create_table('feed_seq',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('findings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('agent_id', sa.Text(), nullable=False),
    sa.Column('finding_id', sa.Text(), nullable=False),
    sa.Column('site', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('severity', sa.SmallInteger(), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('first_seen_ns', sa.BigInteger(), nullable=False),
    sa.Column('last_seen_ns', sa.BigInteger(), nullable=False),
    sa.Column('source_ip', sa.Text(), nullable=False),
    sa.Column('techniques', sa.Text(), nullable=False),
    sa.Column('assets', sa.Text(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('first_ingest_ns', sa.BigInteger(), nullable=False),
    sa.Column('updated_ns', sa.BigInteger(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('agent_id', 'finding_id', name='findings_agent_finding')
    )
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.create_index('findings_by_kind', ['kind', 'first_ingest_ns'], unique=False)
        batch_op.create_index('findings_by_site_source', ['site', 'source_ip', 'updated_ns'], unique=False)
        batch_op.create_index('findings_by_source', ['source_ip', 'updated_ns'], unique=False)
        batch_op.create_index('findings_by_updated', ['updated_ns'], unique=False)

    op.create_table('incidents',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('rule', sa.Text(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('severity', sa.SmallInteger(), nullable=False),
    sa.Column('worst', sa.SmallInteger(), nullable=False),
    sa.Column('status', sa.Text(), server_default='open', nullable=False),
    sa.Column('sites', sa.Text(), nullable=False),
    sa.Column('site_count', sa.Integer(), nullable=False),
    sa.Column('source_ip', sa.Text(), nullable=False),
    sa.Column('techniques', sa.Text(), nullable=False),
    sa.Column('member_count', sa.Integer(), nullable=False),
    sa.Column('first_ns', sa.BigInteger(), nullable=False),
    sa.Column('last_ns', sa.BigInteger(), nullable=False),
    sa.Column('created_ns', sa.BigInteger(), nullable=False),
    sa.Column('updated_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index('incidents_by_scope', ['rule', 'scope', 'last_ns'], unique=False)

    op.create_table('jobs',
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('cursor', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('run_ns', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('holder', sa.Text(), server_default='', nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('sites',
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('first_ingest_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('streams',
    sa.Column('agent_id', sa.Text(), nullable=False),
    sa.Column('epoch', sa.BigInteger(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.Column('updated_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('agent_id', 'epoch')
    )
    op.create_table('agents',
    sa.Column('agent_id', sa.Text(), nullable=False),
    sa.Column('site', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('version', sa.Text(), server_default='', nullable=False),
    sa.Column('mode', sa.Text(), server_default='', nullable=False),
    sa.Column('cert_serial', sa.Text(), server_default='', nullable=False),
    sa.Column('cert_fingerprint', sa.Text(), server_default='', nullable=False),
    sa.Column('first_ingest_ns', sa.BigInteger(), nullable=False),
    sa.Column('last_ingest_ns', sa.BigInteger(), nullable=False),
    sa.Column('skew_ns', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('status_ingest_ns', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('status', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['site'], ['sites.name'], ),
    sa.PrimaryKeyConstraint('agent_id')
    )
    op.create_table('assets',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('site', sa.Text(), nullable=False),
    sa.Column('ip', sa.Text(), nullable=False),
    sa.Column('mac', sa.Text(), nullable=False),
    sa.Column('vlan', sa.Integer(), nullable=False),
    sa.Column('unit', sa.Integer(), nullable=False),
    sa.Column('attributes', sa.Text(), nullable=False),
    sa.Column('device_id', sa.Text(), nullable=False),
    sa.Column('first_seen_ns', sa.BigInteger(), nullable=False),
    sa.Column('last_seen_ns', sa.BigInteger(), nullable=False),
    sa.Column('removed_ns', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('first_ingest_ns', sa.BigInteger(), nullable=False),
    sa.Column('updated_ns', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['site'], ['sites.name'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('site', 'ip', 'mac', 'vlan', 'unit', name='assets_key')
    )
    op.create_table('incident_members',
    sa.Column('incident', sa.BigInteger(), nullable=False),
    sa.Column('member_kind', sa.Text(), nullable=False),
    sa.Column('ref', sa.BigInteger(), nullable=False),
    sa.Column('site', sa.Text(), nullable=False),
    sa.Column('added_ns', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['incident'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('incident', 'member_kind', 'ref')
    )
    with op.batch_alter_table('incident_members', schema=None) as batch_op:
        batch_op.create_index('incident_members_by_ref', ['member_kind', 'ref'], unique=False)

    op.create_table('agent_status',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('agent_id', sa.Text(), nullable=False),
    sa.Column('ingest_ns', sa.BigInteger(), nullable=False),
    sa.Column('agent_clock_ns', sa.BigInteger(), nullable=False),
    sa.Column('skew_ns', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.Text(), nullable=False),
    sa.Column('mode', sa.Text(), nullable=False),
    sa.Column('outbox_depth', sa.BigInteger(), nullable=False),
    sa.Column('outbox_dropped', sa.BigInteger(), nullable=False),
    sa.Column('capture_drops', sa.BigInteger(), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.agent_id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('agent_status', schema=None) as batch_op:
        batch_op.create_index('agent_status_by_agent', ['agent_id', 'ingest_ns'], unique=False)
        batch_op.create_index('agent_status_by_ingest', ['ingest_ns'], unique=False)

    op.create_table('asset_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('asset', sa.BigInteger(), nullable=False),
    sa.Column('site', sa.Text(), nullable=False),
    sa.Column('agent_id', sa.Text(), nullable=False),
    sa.Column('change', sa.SmallInteger(), nullable=False),
    sa.Column('revision', sa.BigInteger(), nullable=False),
    sa.Column('capture_ns', sa.BigInteger(), nullable=False),
    sa.Column('ingest_ns', sa.BigInteger(), nullable=False),
    sa.Column('attributes', sa.Text(), nullable=False),
    sa.Column('device_id', sa.Text(), nullable=False),
    sa.Column('device_id_change', sa.Text(), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['asset'], ['assets.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('asset_history', schema=None) as batch_op:
        batch_op.create_index('asset_history_by_asset', ['asset', 'id'], unique=False)
        batch_op.create_index('asset_history_by_ingest', ['ingest_ns'], unique=False)
        batch_op.create_index('asset_history_by_pattern', ['device_id_change', 'ingest_ns'], unique=False)

    # The feed's one sequencer row, and one row per background job.
    op.bulk_insert(sa.table('feed_seq', sa.column('id', sa.Integer), sa.column('value', sa.BigInteger)),
                   [{'id': 1, 'value': 0}])
    op.bulk_insert(sa.table('jobs', sa.column('name', sa.Text)),
                   [{'name': 'correlate'}, {'name': 'retention'}])


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('asset_history', schema=None) as batch_op:
        batch_op.drop_index('asset_history_by_pattern')
        batch_op.drop_index('asset_history_by_ingest')
        batch_op.drop_index('asset_history_by_asset')

    op.drop_table('asset_history')
    with op.batch_alter_table('agent_status', schema=None) as batch_op:
        batch_op.drop_index('agent_status_by_ingest')
        batch_op.drop_index('agent_status_by_agent')

    op.drop_table('agent_status')
    with op.batch_alter_table('incident_members', schema=None) as batch_op:
        batch_op.drop_index('incident_members_by_ref')

    op.drop_table('incident_members')
    op.drop_table('assets')
    op.drop_table('agents')
    op.drop_table('streams')
    op.drop_table('sites')
    op.drop_table('jobs')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('incidents_by_scope')

    op.drop_table('incidents')
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.drop_index('findings_by_updated')
        batch_op.drop_index('findings_by_source')
        batch_op.drop_index('findings_by_site_source')
        batch_op.drop_index('findings_by_kind')

    op.drop_table('findings')
    op.drop_table('feed_seq')
    with op.batch_alter_table('feed', schema=None) as batch_op:
        batch_op.drop_index('feed_by_ingest')

    op.drop_table('feed')
