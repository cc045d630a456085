# pgsql.sh — a throwaway PostgreSQL for ejabberd's MAM archive, sourced by
# scripts/bench-peers.sh. ejabberd's default mnesia archive is a dets bag
# per user, which costs O(n) per insert and cannot hold 1 M messages for
# one user; for that run ejabberd keeps its archive (mod_mam db_type: sql)
# in this cluster, and the archive is preloaded with COPY.
#
#   start_pgsql DIR PORT               cluster in DIR/pg, 127.0.0.1:PORT
#   pgsql_copy_archive DIR PORT FILE   COPY FILE into table archive
#
# The cluster runs as the postgres system user (PostgreSQL refuses root)
# and is reached over its own unix socket in DIR/pg (trust, only root and
# postgres can enter that folder) or over TCP on 127.0.0.1:PORT with a
# password (SCRAM), which is how ejabberd connects: role and database
# ejabberd, password ejabberd, ejabberd's old (not multi-host) schema from
# /usr/share/ejabberd/sql/pg.sql. fsync stays on, as for the other servers.
#
# DIR/pg must stay owned by postgres: do not `chown -R` a folder that holds
# it (start_ejabberd does that to its own folder), give the cluster a
# folder of its own. Stop the postmaster by PGSQL_PID: TERM waits for the
# clients (ejabberd) to disconnect first, INT disconnects them.

# The newest installed server's binaries, looked up when first needed: the
# script that sources this may install PostgreSQL after sourcing it.
PGSQL_BIN=${PGSQL_BIN:-}
PGSQL_SCHEMA=${PGSQL_SCHEMA:-/usr/share/ejabberd/sql/pg.sql}
PGSQL_PID=

# pgsql_psql DIR PORT ROLE DB ARGS...: psql over the cluster's socket.
pgsql_psql() {
	local pg port=$2 role=$3 db=$4
	# An absolute path: psql takes a relative one for a host name.
	pg=$(CDPATH='' cd -- "$1/pg" && pwd) || return 1
	shift 4
	"$PGSQL_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$pg" -p "$port" -U "$role" -d "$db" "$@"
}

start_pgsql() { # dir port
	local dir port=$2 pg i
	if [[ -z $PGSQL_BIN ]]; then
		PGSQL_BIN=$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -1)
		[[ -x $PGSQL_BIN/initdb ]] || { printf 'pgsql: no PostgreSQL server in /usr/lib/postgresql\n' >&2; return 1; }
	fi
	# Every step checks its own status: the caller may run this in a
	# condition, where set -e does not apply.
	PGSQL_PID=
	mkdir -p "$1" || return 1
	dir=$(CDPATH='' cd -- "$1" && pwd) || return 1
	pg=$dir/pg
	[[ ! -e $pg ]] || { printf 'pgsql: %s exists already\n' "$pg" >&2; return 1; }
	mkdir "$pg" && chown postgres:postgres "$pg" && chmod 700 "$pg" || return 1
	# C locale: byte order for the text indexes, whatever the machine's
	# locale is.
	(cd "$pg" && exec setpriv --reuid postgres --regid postgres --init-groups \
		"$PGSQL_BIN/initdb" -D "$pg" -U postgres -E UTF8 --locale=C \
		--auth-local=trust --auth-host=scram-sha-256 --no-instructions) \
		>"$dir/pgsql-initdb.log" 2>&1 ||
		{ printf 'pgsql: initdb failed:\n' >&2; tail -20 "$dir/pgsql-initdb.log" >&2; return 1; }
	# In the cluster's own configuration, so that it starts the same by hand.
	cat >>"$pg/postgresql.conf" <<-EOF || return 1

		# start_pgsql (scripts/peers/pgsql.sh)
		listen_addresses = '127.0.0.1'
		port = $port
		unix_socket_directories = '$pg'
		fsync = on
		synchronous_commit = on
	EOF
	# setpriv execs: $! is the postmaster itself.
	(cd "$pg" && exec setpriv --reuid postgres --regid postgres --init-groups \
		"$PGSQL_BIN/postgres" -D "$pg") >"$dir/pgsql.log" 2>&1 &
	PGSQL_PID=$!
	for ((i = 0; i < 600; i++)); do
		if ! kill -0 "$PGSQL_PID" 2>/dev/null; then
			printf 'pgsql: postgres exited during start; its log:\n' >&2
			tail -20 "$dir/pgsql.log" >&2
			return 1
		fi
		"$PGSQL_BIN/pg_isready" -q -h "$pg" -p "$port" -U postgres -d postgres && break
		sleep 0.1
	done
	"$PGSQL_BIN/pg_isready" -q -h "$pg" -p "$port" -U postgres -d postgres ||
		{ printf 'pgsql: no connections on port %s within 60 s\n' "$port" >&2; return 1; }
	# PGSQL_PID stays set when a step below fails: the caller stops it.
	pgsql_psql "$dir" "$port" postgres postgres \
		-c "CREATE ROLE ejabberd LOGIN PASSWORD 'ejabberd'" \
		-c "CREATE DATABASE ejabberd OWNER ejabberd" || return 1
	pgsql_psql "$dir" "$port" ejabberd ejabberd -f "$PGSQL_SCHEMA" >/dev/null || return 1
}

# pgsql_copy_archive loads FILE, in COPY text format (tab-separated, \N
# for NULL, backslash escapes), into ejabberd's archive table. Columns:
#   username  timestamp  peer  bare_peer  xml  txt  kind  nick
# username is the owner's local part; timestamp is microseconds since
# 1970 and is also the MAM id, so it must be unique per username.
# VACUUM ANALYZE rather than ANALYZE alone: after a bulk load autovacuum
# would otherwise vacuum the table a little later, in the middle of the
# measurement, and until then ejabberd's COUNT(*) per query reads the heap.
pgsql_copy_archive() { # dir port file
	pgsql_psql "$1" "$2" ejabberd ejabberd \
		-c 'COPY archive (username, timestamp, peer, bare_peer, xml, txt, kind, nick) FROM STDIN' \
		-c 'VACUUM (ANALYZE) archive' <"$3"
}
