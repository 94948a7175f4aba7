"""The database: engines, the embedded server, schema, migrations and data tooling."""
