#!/usr/bin/env bash
# The official postgres image's entrypoint, condensed (docker-library/postgres
# 16/bookworm/docker-entrypoint.sh): the same variables, the same refusal without a password, the
# same initialisation of an empty PGDATA. No *_FILE variants and no /docker-entrypoint-initdb.d
# scripts: conveyor's specs use neither.
set -Eeo pipefail

# main: a first argument that looks like a flag means "run postgres" (entrypoint.sh:324-327)
if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = 'postgres' ]; then
  # docker_setup_env (:234-243): POSTGRES_USER defaults to postgres, POSTGRES_DB to the user
  : "${POSTGRES_PASSWORD:=}" "${POSTGRES_USER:=postgres}" "${POSTGRES_HOST_AUTH_METHOD:=}"
  : "${POSTGRES_DB:=$POSTGRES_USER}"
  if [ "$(id -u)" = '0' ]; then
    # docker_create_db_directories (:38-60), then step down to postgres (:331-334)
    mkdir -p "$PGDATA" && chmod 00700 "$PGDATA" || :
    find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
    exec gosu postgres "$BASH_SOURCE" "$@"
  fi
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # docker_verify_minimum_env (:101-119): no password and no trust -> refuse to start
    if [ -z "$POSTGRES_PASSWORD" ] && [ 'trust' != "$POSTGRES_HOST_AUTH_METHOD" ]; then
      cat >&2 <<-'EOE'
		Error: Database is uninitialized and superuser password is not specified.
		       You must specify POSTGRES_PASSWORD to a non-empty value for the
		       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

		       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
		       connections without a password. This is *not* recommended.
	EOE
      exit 1
    fi
    # docker_init_database_dir (:63-95)
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD")
    # pg_setup_hba_conf (:261-281): host connections with the configured password encryption
    auth="$(postgres -C password_encryption)"
    : "${POSTGRES_HOST_AUTH_METHOD:=$auth}"
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >> "$PGDATA/pg_hba.conf"
    # docker_temp_server_start + docker_setup_db + stop (:286-307, :216-231)
    export PGPASSWORD="$POSTGRES_PASSWORD"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
    exists="$(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc \
      --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<<"SELECT 1 FROM pg_database WHERE datname = :'db' ;")"
    if [ -z "$exists" ]; then
      psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc \
        --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db" ;'
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop
    unset PGPASSWORD
    echo 'PostgreSQL init process complete; ready for start up.'
  else
    echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
  fi
fi
exec "$@"
