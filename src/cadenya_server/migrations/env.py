"""Alembic environment: runs against the connection `kit.migrate` hands it."""

from alembic import context

from cadenya_server.models import Base

connection = context.config.attributes["connection"]


def include_object(obj, name, type_, reflected, compare_to):
    # The SQLite search structures (FTS5 and its helpers, see migration 0003) are
    # made in SQL and have no model: autogenerate must not propose to drop them.
    if reflected and compare_to is None and (name or "").startswith("profile_search_"):
        return False
    # Nor create a PostgreSQL-only index (`ddl_if`, see Profile) anywhere else.
    ddl_if = getattr(obj, "_ddl_if", None) if type_ == "index" else None
    postgresql_only = ddl_if is not None and ddl_if.dialect == "postgresql"
    return not (postgresql_only and connection.dialect.name != "postgresql")


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
    include_object=include_object,
)
with context.begin_transaction():
    context.run_migrations()
