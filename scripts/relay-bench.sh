#!/usr/bin/env bash
# Herald against a bare relay (issue 13): cmd/herald-relay does the same
# durable work for one notification with nothing else. In each round, Herald
# and the relay run one after the other (never both at once), each over a
# fresh database, with herald-load's own receiver and the same load:
#
#   closed  phase delivery, 32 closed-loop writers over 100 Subscriptions:
#           writes/s and events delivered/s in the window
#   p300    open loop, 300 writes/s over 100 Subscriptions: write→notification p99
#   p600    the same at 600 writes/s
#   light   open loop, 100 writes/s: PostgreSQL transactions (pg_stat_database
#           xact_commit) per event received
#   fanout  one write → 1,000 Subscriptions: events/s
#
# Every herald-load line is tagged relay-<herald|relay>.<round>.<figure>;
# scripts/benchreport turns them into per-round ratios (min/median/max).
# herald-load counts events lost, duplicated and reordered in every run.
#
#   scripts/relay-bench.sh                 (or BENCH_RELAY=only scripts/bench.sh)
#
# Environment: DATABASE_URL (admin connection, default the local postgres),
# BENCH_RELAY_ROUNDS (3), BENCH_RELAY_WARMUP (2s), BENCH_RELAY_DURATION (8s),
# BENCH_HERALD_BIN / BENCH_RELAY_BIN (prebuilt binaries), HERALD_* (reach Herald).
set -euo pipefail
cd "$(dirname "$0")/.."

admin_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}
rounds=${BENCH_RELAY_ROUNDS:-3}
warmup=${BENCH_RELAY_WARMUP:-2s}
duration=${BENCH_RELAY_DURATION:-8s}
secret=relay-bench-$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
tmp=$(mktemp -d "${TMPDIR:-/tmp}/relay-bench.XXXXXX")
server_pid=
db=

log() { printf 'bench: %s\n' "$*" >&2; }

cleanup() {
	stop_server
	[[ -n $db ]] && drop_db "$db"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

with_db() {
	local re='^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$'
	[[ $1 =~ $re ]] || {
		log "DATABASE_URL must be a postgres:// URL"
		exit 1
	}
	printf '%s/%s%s' "${BASH_REMATCH[1]}" "$2" "${BASH_REMATCH[4]}"
}

free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	log "no free loopback port"
	exit 1
}

drop_db() { psql "$admin_url" -qAtc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null || log "could not drop $1"; }

stop_server() {
	if [[ -n $server_pid ]]; then
		kill -TERM "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=
	fi
}

# start SERVER: a fresh database and SERVER (herald or relay) on a free port.
start() {
	db=relay_bench_$$_$1
	psql "$admin_url" -v ON_ERROR_STOP=1 -qAtc "CREATE DATABASE $db" >/dev/null
	port=$(free_port)
	local url
	url=$(with_db "$admin_url" "$db")
	if [[ $1 == herald ]]; then
		env DATABASE_URL="$url" HERALD_ADDR="127.0.0.1:$port" HERALD_BASE_URL="http://127.0.0.1:$port/fhir" \
			HERALD_AUTH_HS256_SECRET="$secret" HERALD_SECRET_KEY="$(head -c 32 /dev/urandom | base64)" \
			HERALD_LOG_LEVEL=warn HERALD_MAX_SUBSCRIPTIONS_PER_CLIENT=100000 \
			"$herald_bin" serve >"$tmp/$1.log" 2>&1 &
	else
		DATABASE_URL="$url" "$relay_bin" -addr "127.0.0.1:$port" >"$tmp/$1.log" 2>&1 &
	fi
	server_pid=$!
	for _ in $(seq 1 300); do
		if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then
			return 0
		fi
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$tmp/$1.log" >&2
	log "$1 did not start"
	exit 1
}

# measure SERVER ROUND FIGURE FLAGS…: one herald-load run against SERVER.
measure() {
	local server=$1 round=$2 figure=$3
	shift 3
	HERALD_LOAD_SECRET=$secret "$load_bin" -url "http://127.0.0.1:$port/fhir" \
		-cpu "server=pid:$server_pid,postgres=comm:postgres,pg-db=cmdline:$db" \
		-warmup "$warmup" -duration "$duration" -delivery-drain 30s \
		-bench-tag "relay-$server.$round.$figure" "$@" || log "$server round $round $figure failed"
}

herald_bin=${BENCH_HERALD_BIN:-$tmp/herald}
relay_bin=${BENCH_RELAY_BIN:-$tmp/herald-relay}
load_bin=$tmp/herald-load
[[ -n ${BENCH_HERALD_BIN:-} ]] || go build -o "$herald_bin" ./cmd/herald
[[ -n ${BENCH_RELAY_BIN:-} ]] || go build -o "$relay_bin" ./cmd/herald-relay
go build -o "$load_bin" ./cmd/herald-load

echo
echo "== relay: Herald against cmd/herald-relay, $rounds rounds, $warmup warm-up + $duration measured per figure"
for round in $(seq 1 "$rounds"); do
	# Alternate who goes first, so neither always meets a warmer machine.
	order="herald relay"
	((round % 2 == 0)) && order="relay herald"
	for server in $order; do
		echo
		echo "-- relay round $round: $server"
		echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
		start "$server"
		measure "$server" "$round" closed -phases delivery -delivery-writers 32
		measure "$server" "$round" p300 -phases delivery -delivery-rate 300
		measure "$server" "$round" p600 -phases delivery -delivery-rate 600
		measure "$server" "$round" light -phases delivery -delivery-rate 100 -xact-url "$(with_db "$admin_url" "$db")"
		measure "$server" "$round" fanout -phases fanout
		stop_server
		drop_db "$db"
		db=
	done
done
