#!/bin/sh
# One-shot (temporalio/admin-tools): Temporal's two databases on PostgreSQL, created if absent and
# migrated to the schema versions this admin-tools release ships. Safe to run on every `up`.
set -eu
: "${SQL_HOST:?}" "${SQL_USER:?}" "${SQL_PASSWORD:?}"
export SQL_PASSWORD
SCHEMA=/etc/temporal/schema/postgresql/v12

until nc -z "$SQL_HOST" 5432; do sleep 1; done

for db in temporal temporal_visibility; do
  tool="temporal-sql-tool --plugin postgres12 --ep $SQL_HOST -p 5432 -u $SQL_USER --db $db"
  $tool create 2>/dev/null || echo "database $db exists"
  $tool setup-schema -v 0.0                 # no-op once a version is recorded
  case $db in
    temporal) $tool update-schema -d "$SCHEMA/temporal/versioned" ;;
    *) $tool update-schema -d "$SCHEMA/visibility/versioned" ;;
  esac
done
echo "temporal schema ready"
