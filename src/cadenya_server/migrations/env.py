"""Alembic environment: runs against the connection `kit.migrate` hands it."""

from alembic import context

from cadenya_server.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
