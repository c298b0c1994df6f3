#!/bin/sh
# PgBouncer's login file, written from the environment (DATABASE_USER and
# DATABASE_PASSWORD: the login the app gives PgBouncer, and PgBouncer gives PostgreSQL)
# to /tmp, the one writable place, readable by this user alone. Then PgBouncer, with
# the arguments given (the configuration file).
set -eu
umask 077
printf '"%s" "%s"\n' "${DATABASE_USER:?}" "${DATABASE_PASSWORD:?}" > /tmp/userlist.txt
exec pgbouncer "$@"
