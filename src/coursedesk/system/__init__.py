"""Operating coursedesk: health, migrations, schema, SQL migrate, monitoring."""
