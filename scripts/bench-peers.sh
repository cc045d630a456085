#!/usr/bin/env bash
# bench-peers.sh — verlauf side by side with Prosody and ejabberd.
#
# Starts each server in turn on loopback with equivalent settings (STARTTLS
# required, SCRAM-SHA-256, history on for all users, in-band registration
# without throttling, warnings-only logging), runs `verlauf bench` against
# it with the same parameters, server pinned to one core and load tool to
# the other, and prints one table of medians. Every server it starts gets a
# fresh data folder and is stopped by PID when the script exits.
#
#   make bench-peers                         # 1 000 users, 3 runs
#   USERS=10000 RUNS=3 DURATION=10s make bench-peers
#   RUNS=0 make bench-peers                  # only the MAM run
#
# After the runs, each server gets one MAM run on a fresh instance. One
# user's archive is seeded with MAM_SEED messages (1 M) through each
# server's own import path, then MAM_MESSAGES more are exchanged through
# the protocol (the user chats with MAM_PARTNERS partners, every message
# checked as delivered, the archive size checked against what was
# delivered), then the newest page of 50, a page from the middle and a
# `with` query are timed MAM_QUERIES times each. The seeds are the same
# messages in each server's form (scripts/peers/mamseed.py):
#   verlauf   `verlauf import` of a XEP-0227 file into the running server
#             (sealed and indexed as any archived message; the import
#             returns when the history is searchable)
#   Prosody   mod_bench_mam_seed appends through Prosody's storage API to
#             the memory store mod_mam uses, as mod_mam would, at start
#   ejabberd  COPY into its SQL archive in a throwaway PostgreSQL
#             (scripts/peers/pgsql.sh): ejabberd's default mnesia archive
#             is a dets bag per user that costs more per message the more
#             it holds (~700 msg/s empty, ~5 msg/s at 14 000) and cannot
#             take 1 M, so for this run ejabberd keeps MAM in PostgreSQL,
#             as a large deployment would; the chat runs keep mnesia.
# Seeding 1 M took 167 s (verlauf), 514 s (Prosody) and 19 s (ejabberd)
# here; MAM_SEED=0 fills through the protocol alone.
#
# Settings (environment):
#   USERS=1000        load users per server
#   DURATION=10s      chat phase of each measurement
#   RUNS=3            runs per server; the table shows medians
#   RATE=250          offered msg/s for the latency measurement
#   SERVERS="verlauf prosody ejabberd"
#   LOGIN_CONCURRENCY=50, WINDOW=4 (messages in flight per user at saturation)
#   SERVER_CPU=0, TOOL_CPU=1   cores for taskset
#   PORT=25222        first of the loopback ports used (PORT..PORT+2, PORT+77,
#                     PORT+78 for ejabberd's PostgreSQL);
#                     below the ephemeral range, so that the load tool cannot
#                     connect a socket to itself while a server starts
#   KEEP=1            keep the work folder (logs, configs, raw reports)
#   MAM_SEED=1000000     messages seeded into the MAM archive before the fill
#   MAM_MESSAGES=10000   messages exchanged through the protocol on top
#                        (MAM_SEED=0 MAM_MESSAGES=0: no MAM run)
#   MAM_QUERIES=100      repetitions of each MAM query kind
#   MAM_PARTNERS=4, MAM_WINDOW=16 (messages in flight per sender in the fill)
#   MAM_FILL_TIMEOUT=8m   stop a fill after this long (0: no limit); the
#                         table then shows how far the server got
#   MAM_QUERY_TIME=3m     stop a server's MAM queries after this long
set -euo pipefail

USERS=${USERS:-1000}
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
RATE=${RATE:-250}
SERVERS=${SERVERS:-verlauf prosody ejabberd}
LOGIN_CONCURRENCY=${LOGIN_CONCURRENCY:-50}
WINDOW=${WINDOW:-4}
SERVER_CPU=${SERVER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
PORT=${PORT:-25222}
KEEP=${KEEP:-}
MAM_SEED=${MAM_SEED:-1000000}
MAM_MESSAGES=${MAM_MESSAGES:-10000}
MAM_QUERIES=${MAM_QUERIES:-100}
MAM_PARTNERS=${MAM_PARTNERS:-4}
MAM_WINDOW=${MAM_WINDOW:-16}
MAM_FILL_TIMEOUT=${MAM_FILL_TIMEOUT:-8m}
MAM_QUERY_TIME=${MAM_QUERY_TIME:-3m}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS="$ROOT/scripts/peers"
# shellcheck source=peers/pgsql.sh
source "$PEERS/pgsql.sh"
GO=${GO:-go}

say() { printf 'bench-peers: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# --- prerequisites ----------------------------------------------------------

need_pkgs=()
command -v prosody >/dev/null || need_pkgs+=(prosody)
command -v ejabberdctl >/dev/null || need_pkgs+=(ejabberd)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v taskset >/dev/null || need_pkgs+=(util-linux)
command -v setpriv >/dev/null || need_pkgs+=(util-linux)
if ((MAM_SEED > 0)) && [[ " $SERVERS " == *" ejabberd "* ]]; then
	# ejabberd's MAM archive at 1 M messages lives in PostgreSQL.
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_pkgs+=(postgresql)
	dpkg-query -W -f '${Status}' erlang-p1-pgsql 2>/dev/null | grep -q 'ok installed' || need_pkgs+=(erlang-p1-pgsql)
fi
if ((${#need_pkgs[@]})); then
	[[ $(id -u) == 0 ]] || die "missing ${need_pkgs[*]}: run as root, or apt-get install them first"
	say "installing ${need_pkgs[*]}"
	if ! apt-cache show "${need_pkgs[@]}" >/dev/null 2>&1; then
		apt-get update -q >/dev/null
	fi
	# Debian starts the services on install where it can; here they stay
	# stopped, and this script never uses them: it runs its own instances.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_pkgs[@]}" >/dev/null
fi
[[ $(id -u) == 0 ]] || die "run as root: Prosody and ejabberd run as their own system users (setpriv)"

# Each server and the load tool hold one socket per user, plus files.
ulimit -n "$(ulimit -Hn)"
(($(ulimit -n) >= USERS + 1000)) || die "open-files limit $(ulimit -n) is too low for USERS=$USERS"

# --- work folder, cleanup ----------------------------------------------------

WORK=$(mktemp -d /tmp/bench-peers.XXXXXX)
chmod 755 "$WORK"
declare -A LIVE=() # pid → name, for every process started and not yet stopped

stop_pid() { # pid: TERM, then KILL after 20 s
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local pid
	for pid in "${!LIVE[@]}"; do
		stop_pid "$pid"
	done
	LIVE=()
	if [[ -n $KEEP ]]; then
		say "kept $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- build, certificate ------------------------------------------------------

say "building verlauf"
(cd "$ROOT" && $GO build -o "$WORK/verlauf" ./cmd/verlauf)
BIN=$WORK/verlauf

# A throwaway CA and a certificate for localhost signed by it: every server
# presents the same certificate and the load tool verifies it against the CA.
(
	cd "$WORK"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=bench-peers test CA" -keyout ca.key -out ca.crt 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-subj "/CN=localhost" -keyout localhost.key -out localhost.csr 2>/dev/null
	printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' >ext.cnf
	openssl x509 -req -in localhost.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
		-extfile ext.cnf -out localhost.crt 2>/dev/null
)

# --- servers -----------------------------------------------------------------

# Each start_* function sets SERVER_PID (the process to measure) and
# SERVER_PORT, and registers everything it started in LIVE.
fill() { # template dest dir port
	sed -e "s#@DIR@#$3#g" -e "s#@PORT@#$4#g" -e "s#@MAXCONN@#$((USERS + 1000))#g" \
		-e "s#@DISTPORT@#$((PORT + 77))#g" "$1" >"$2"
}

start_verlauf() { # dir
	local d=$1
	SERVER_PORT=$PORT
	cp "$WORK"/localhost.{crt,key} "$d/"
	fill "$PEERS/verlauf.toml" "$d/verlauf.toml" "$d" "$SERVER_PORT"
	taskset -c "$SERVER_CPU" "$BIN" serve --config "$d/verlauf.toml" >"$d/server.log" 2>&1 &
	SERVER_PID=$!
	LIVE[$SERVER_PID]=verlauf
}

start_prosody() { # dir
	local d=$1
	SERVER_PORT=$((PORT + 1))
	mkdir -p "$d/data"
	cp "$WORK"/localhost.{crt,key} "$PEERS/mod_bench_mam_seed.lua" "$d/"
	fill "$PEERS/prosody.cfg.lua" "$d/prosody.cfg.lua" "$d" "$SERVER_PORT"
	chown -R prosody: "$d"
	# setpriv keeps the raised open-files limit (su and runuser would
	# reset it through PAM); it execs, so $! is Prosody itself.
	taskset -c "$SERVER_CPU" setpriv --reuid prosody --regid prosody --init-groups \
		prosody --config "$d/prosody.cfg.lua" -F >"$d/server.log" 2>&1 &
	SERVER_PID=$!
	LIVE[$SERVER_PID]=prosody
}

start_ejabberd() { # dir
	local d=$1 wrapper i
	SERVER_PORT=$((PORT + 2))
	mkdir -p "$d/db" "$d/logs" "$d/home"
	cp "$WORK/ca.crt" "$d/"
	cat "$WORK/localhost.crt" "$WORK/localhost.key" >"$d/localhost.pem"
	fill "$PEERS/ejabberd.yml" "$d/ejabberd.yml" "$d" "$SERVER_PORT"
	fill "$PEERS/ejabberdctl.cfg" "$d/ejabberdctl.cfg" "$d" "$SERVER_PORT"
	if [[ -n ${EJABBERD_SQL_PORT:-} ]]; then # the MAM archive in PostgreSQL
		sed -i 's/^    db_type: mnesia$/    db_type: sql/' "$d/ejabberd.yml"
		sed "s#@PGPORT@#$EJABBERD_SQL_PORT#g" "$PEERS/ejabberd-sql.yml" >>"$d/ejabberd.yml"
	fi
	chown -R ejabberd: "$d"
	# ejabberdctl as root would switch user with su, which drops the open-
	# files limit to 1024 (ejabberd then dies near 1000 connections).
	# HOME holds the Erlang cookie of this private node.
	(cd "$d" && HOME="$d/home" exec taskset -c "$SERVER_CPU" setpriv --reuid ejabberd --regid ejabberd \
		--init-groups ejabberdctl --config "$d/ejabberd.yml" --ctl-config "$d/ejabberdctl.cfg" \
		--spool "$d/db" --logs "$d/logs" foreground >"$d/server.log" 2>&1) &
	wrapper=$!
	LIVE[$wrapper]=ejabberdctl
	# The Erlang VM is the wrapper's child; that is the process to measure
	# (the wrapper runs a short-lived VM of its own first, without mnesia).
	SERVER_PID=
	for ((i = 0; i < 300; i++)); do
		SERVER_PID=$(pgrep -P "$wrapper" -f 'beam.smp.* -mnesia dir' || true)
		[[ -n $SERVER_PID ]] && break
		kill -0 "$wrapper" 2>/dev/null || break
		sleep 0.1
	done
	if [[ -n $SERVER_PID ]]; then
		LIVE[$SERVER_PID]=ejabberd
	else
		SERVER_PID=$wrapper
	fi
}

# stop_server stops the measured process first (ejabberd's VM shuts down
# on TERM), then any wrapper.
# drop_data DIR removes a stopped server's data and keeps its logs, unless
# KEEP is set.
drop_data() {
	[[ -n $KEEP ]] || find "$1" -mindepth 1 -maxdepth 1 ! -name '*.log' ! -name logs -exec rm -rf {} +
}

stop_server() {
	local pid
	stop_pid "$SERVER_PID"
	unset "LIVE[$SERVER_PID]"
	for pid in "${!LIVE[@]}"; do
		stop_pid "$pid"
		unset "LIVE[$pid]"
	done
}

wait_ready() { # name dir: the port accepts connections, or the log explains
	local i
	for ((i = 0; i < 600; i++)); do
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			say "$1 exited during start; its log:"
			for f in "$2"/server.log "$2"/logs/error.log "$2"/prosody.log; do
				if [[ -s $f ]]; then tail -20 "$f" >&2; fi
			done
			return 1
		fi
		if (exec 3<>"/dev/tcp/127.0.0.1/$SERVER_PORT") 2>/dev/null; then
			sleep 1 # the listener is up; let start-up work finish
			return 0
		fi
		sleep 0.1
	done
	say "$1 did not open port $SERVER_PORT within 60 s"
	return 1
}

bench() { # out extra-args...: one `verlauf bench` on the load core
	local out=$1
	shift
	taskset -c "$TOOL_CPU" "$BIN" bench -addr "127.0.0.1:$SERVER_PORT" -domain localhost \
		-users "$USERS" -ca "$WORK/ca.crt" -duration "$DURATION" -window "$WINDOW" \
		-login-concurrency "$LOGIN_CONCURRENCY" -server-pid "$SERVER_PID" "$@" \
		>"$out" 2>"$out.log" || say "bench exited with an error, see $out.log"
}

mam_bench() { # out: the MAM run on the load core, users mam0..mamN
	local out=$1
	taskset -c "$TOOL_CPU" "$BIN" bench -addr "127.0.0.1:$SERVER_PORT" -domain localhost \
		-ca "$WORK/ca.crt" -prefix mam -register -window "$MAM_WINDOW" \
		-login-concurrency "$LOGIN_CONCURRENCY" -server-pid "$SERVER_PID" \
		-mam-fill "$MAM_MESSAGES" -mam-queries "$MAM_QUERIES" -mam-partners "$MAM_PARTNERS" \
		-mam-fill-timeout "$MAM_FILL_TIMEOUT" -mam-query-time "$MAM_QUERY_TIME" \
		>"$out" 2>"$out.log" || say "MAM bench exited with an error, see $out.log"
}

# --- runs ----------------------------------------------------------------------

mkdir -p "$WORK/results"
say "work folder $WORK; $USERS users, $RUNS runs, chat $DURATION, latency at $RATE msg/s"
for ((run = 1; run <= RUNS; run++)); do
	# Servers alternate within each run, so that drift in the machine's
	# load spreads over all of them alike.
	for s in $SERVERS; do
		d="$WORK/$s-$run"
		mkdir -p "$d"
		say "run $run/$RUNS: $s"
		"start_$s" "$d"
		if wait_ready "$s" "$d"; then
			# Fresh server: register the users, then latency at a fixed
			# offered rate, and the archive check.
			bench "$WORK/results/$s.$run.rate" -register -rate "$RATE"
			# Restart on the same data, so that memory is measured from a
			# fresh process holding the accounts: logins, RSS, saturation.
			stop_server
			"start_$s" "$d"
			if wait_ready "$s" "$d"; then
				bench "$WORK/results/$s.$run.sat"
			else
				say "$s failed to restart (run $run)"
			fi
		else
			say "$s failed to start (run $run)"
		fi
		stop_server
		drop_data "$d"
	done
done

# --- MAM at scale --------------------------------------------------------------

# seed PHASE SERVER DIR: each server's share of seeding its MAM archive, in
# the phase where its import path works: "before" the server starts,
# "started" (the process runs, the port may not be open yet) and "ready".
# The time of the import itself goes to results/SERVER.mam.seed.
SEED_START=0
seed() {
	local phase=$1 s=$2 d=$3 i
	((MAM_SEED > 0)) || return 0
	case $phase/$s in
	before/verlauf)
		seed_file xep0227 "$d/mam-seed.xml"
		;;
	ready/verlauf)
		seed_clock start
		taskset -c "$TOOL_CPU" "$BIN" import --config "$d/verlauf.toml" "$d/mam-seed.xml" \
			>"$d/import.log" 2>&1 || { say "verlauf import failed, see $d/import.log"; return 1; }
		seed_clock stop "$s" "verlauf import of a XEP-0227 file, until searchable"
		rm -f "$d/mam-seed.xml"
		;;
	before/prosody)
		seed_file prosody "$d/mam-seed.tsv" || return 1
		seed_clock start
		;;
	started/prosody)
		# mod_bench_mam_seed appends at start and then writes .done.
		for ((i = 0; i < 36000; i++)); do
			[[ -e $d/mam-seed.tsv.done ]] && break
			kill -0 "$SERVER_PID" 2>/dev/null || { say "prosody exited while seeding"; return 1; }
			sleep 0.1
		done
		[[ -e $d/mam-seed.tsv.done ]] || { say "prosody did not seed within an hour"; return 1; }
		seed_clock stop "$s" "mod_bench_mam_seed: archive:append at start, from process start"
		rm -f "$d/mam-seed.tsv"
		;;
	before/ejabberd)
		seed_file pgsql "$d.pgsql" || return 1
		local pg=$WORK/ejabberd-mam-pgsql
		EJABBERD_SQL_PORT=$((PORT + 78))
		start_pgsql "$pg" "$EJABBERD_SQL_PORT" || {
			[[ -z $PGSQL_PID ]] || LIVE[$PGSQL_PID]=postgres
			return 1
		}
		LIVE[$PGSQL_PID]=postgres
		# On the server's core, as the server's own store would be; the
		# backends it forks for ejabberd inherit the postmaster's mask.
		for i in $PGSQL_PID $(pgrep -P "$PGSQL_PID"); do
			taskset -p -c "$SERVER_CPU" "$i" >/dev/null
		done
		seed_clock start
		pgsql_copy_archive "$pg" "$EJABBERD_SQL_PORT" "$d.pgsql" >"$pg/copy.log" 2>&1 ||
			{ say "COPY into ejabberd's archive failed, see $pg/copy.log"; return 1; }
		seed_clock stop "$s" "PostgreSQL COPY and VACUUM ANALYZE into ejabberd's SQL archive"
		rm -f "$d.pgsql"
		;;
	esac
}

seed_file() { # format file
	python3 "$PEERS/mamseed.py" "$1" "$MAM_SEED" mam0 localhost "$MAM_PARTNERS" load-password "$2"
}

seed_clock() { # start | stop server how
	if [[ $1 == start ]]; then
		SEED_START=$EPOCHREALTIME
	else
		awk -v n="$MAM_SEED" -v t0="$SEED_START" -v t1="$EPOCHREALTIME" -v how="$3" \
			'BEGIN { printf "mam seed          %d messages in %.1fs: %s\n", n, t1 - t0, how }' \
			>"$WORK/results/$2.mam.seed"
	fi
}

# One run per server on a fresh instance, after all the other runs so that
# a large archive cannot weigh on them.
if ((MAM_SEED + MAM_MESSAGES > 0)); then
	for s in $SERVERS; do
		d="$WORK/$s-mam"
		mkdir -p "$d"
		say "MAM: $s, $MAM_SEED messages seeded, $MAM_MESSAGES through the protocol, $MAM_QUERIES queries of each kind"
		if seed before "$s" "$d"; then
			"start_$s" "$d"
			if seed started "$s" "$d" && wait_ready "$s" "$d" && seed ready "$s" "$d"; then
				mam_bench "$WORK/results/$s.mam"
			else
				say "$s failed to start or to seed (MAM)"
			fi
			stop_server
		else
			say "$s: seeding failed (MAM)"
		fi
		# PostgreSQL, if ejabberd's archive was in it.
		for pid in "${!LIVE[@]}"; do
			stop_pid "$pid"
			unset "LIVE[$pid]"
		done
		unset EJABBERD_SQL_PORT
		drop_data "$d"
		[[ -n $KEEP ]] || rm -rf "$WORK/ejabberd-mam-pgsql" "$d.pgsql"
	done
fi

# --- table -------------------------------------------------------------------

VERSIONS="verlauf=$(cd "$ROOT" && git describe --tags --always --dirty 2>/dev/null || echo dev)"
VERSIONS+=" prosody=$(dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo '?')"
VERSIONS+=" ejabberd=$(dpkg-query -W -f '${Version}' ejabberd 2>/dev/null || echo '?')"
python3 "$PEERS/table.py" "$WORK/results" "$SERVERS" "$USERS" "$RUNS" "$DURATION" "$RATE" "$VERSIONS" \
	"$MAM_MESSAGES" "$MAM_QUERIES" "$MAM_SEED"
