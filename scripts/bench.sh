#!/usr/bin/env bash
# Benchmarks Herald against PostgreSQL: builds the server and herald-load,
# starts the server on a free loopback port over a fresh database of its own,
# and prints create and read throughput and latency (32 clients by default),
# then rest-hook delivery: end-to-end notification latency at an open-loop
# 200 writes/s over 100 Subscriptions (phase delivery), and notifications per
# second with every write fanning out to 1,000 Subscriptions (phase fanout),
# received by herald-load's own subscriber on loopback. Then a delivery sweep:
# the delivery phase again, short, at offered loads of 50 to 800 writes/s over
# 100 Subscriptions and at 200 writes/s over 10 to 3,000 Subscriptions (each
# point a herald-load run of its own, with patients and Subscriptions of its
# own, deleted afterwards). Last, phase validation: what R4 validation of
# every write costs. A second server binary is built with -tags
# heraldnovalidate (its fhir.Validate does nothing); in rounds, the validating
# and the not-validating server each run alone over a fresh database while
# herald-load measures Patient creates and 30 KB transaction Bundles (a
# Patient and 24 Observations) at 32 clients, alternating (validating, not,
# validating, not, …); then the median ratios validating / not validating of
# each workload's throughput and of herald's CPU per request are printed
# (issue 11's target: at most 15% slower, p99 still under 20 ms).
# Everything it prints (stderr too, merged into stdout) also goes to
# bench/bench-output.txt, from which scripts/benchreport writes
# bench/report.md and bench/latency.png, the sweep's latency percentiles
# against offered load and against Subscriptions.
# It prints figures and never asserts timing: a slow run still exits 0; only a
# failure to run, or an error rate over 1%, does not.
#
#   scripts/bench.sh [herald-load flags…]     e.g. -c 64 -duration 20s
#
# Environment:
#   DATABASE_URL      PostgreSQL to use (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable).
#                     Only to create, and drop at exit, a database herald_bench_<pid>:
#                     nothing else in it is touched.
#   BENCH_PROFILE=1   also capture a CPU profile of the server during the run, into
#                     bench/herald-cpu-<time>.prof, when the server offers pprof on
#                     HERALD_PPROF_ADDR (a loopback debug listener); and one of the
#                     fanout phase's measured window, into bench/herald-cpu-fanout-<time>.prof.
#   BENCH_DELIVERY=0  skip the delivery phases (and the sweep).
#   BENCH_SEARCH=0    skip the search phase. BENCH_SEARCH_RESOURCES (default
#                     1000000, issue 14) is how many resources it loads and searches
#                     over, as records of 100 (a Patient, 3 Encounters and 96 Observations, stamped
#                     and keyed by Herald's own code and written by COPY: herald-load
#                     -bulk-seed; BENCH_SEARCH_BULK=0 POSTs them as transaction Bundles
#                     through the write path instead); a laptop or CI sets it smaller.
#                     BENCH_SEARCH_SEED (records) overrides it.
#   BENCH_SWEEP=0     skip the delivery sweep.
#   BENCH_VALIDATION=0     skip the validation phase; BENCH_VALIDATION=only runs
#                     nothing else (no create/read, wrk or delivery phases).
#   BENCH_VALIDATION_ROUNDS   rounds of the validation phase, each measuring both
#                     servers (default 3, at least 2).
#   BENCH_VALIDATION_WARMUP, BENCH_VALIDATION_DURATION  each of its workloads'
#                     warm-up and measured window (default 2s and 8s).
#   BENCH_SWEEP_RATES       offered loads of the sweep, writes/s (default "50 100 200 400 800")…
#   BENCH_SWEEP_RATE_SUBS   …over this many Subscriptions (default 100);
#   BENCH_SWEEP_SUBS        Subscription counts of the sweep (default "10 100 1000 3000")…
#   BENCH_SWEEP_SUBS_RATE   …at this many writes/s (default 200).
#   BENCH_SWEEP_WARMUP, BENCH_SWEEP_DURATION  each sweep point's warm-up and
#                     measured window (default 1s and 5s).
#   BENCH_RELAY=0     skip phase relay (scripts/relay-bench.sh: Herald against cmd/herald-relay,
#                     a bare relay, interleaved, issue 13's ratios); BENCH_RELAY=only runs
#                     nothing else. BENCH_RELAY_ROUNDS (3), BENCH_RELAY_WARMUP, BENCH_RELAY_DURATION.
#   BENCH_ATTEMPTS=0  skip phase attempts (the delivery attempt log's cost: the delivery and
#                     fanout phases against a server logging attempts and one with
#                     HERALD_ATTEMPT_LOG=false, alternating, each alone over a fresh database;
#                     the median ratios on / off; issue 16's target: at most 5% slower);
#                     BENCH_ATTEMPTS=only runs nothing else. BENCH_ATTEMPTS_ROUNDS (3),
#                     BENCH_ATTEMPTS_WARMUP (2s), BENCH_ATTEMPTS_DURATION (8s).
#   BENCH_REPORT=0    do not write bench/report.md and the charts at the end
#                     (make bench does, after appending the publish benchmark).
#   BENCH_DELIVERY_FLAGS  more herald-load flags for the delivery phases only, e.g.
#                     "-fanout-backlog 4 -delivery-receivers 8" (see herald-load -h).
#   HERALD_*          exported settings reach the server (e.g. HERALD_DELIVERY_WORKERS);
#                     the defaults are used otherwise.
#   BENCH_HERALD_BIN  a prebuilt herald binary to benchmark instead of building ./cmd/herald
#                     (the validation phase still builds its not-validating twin from ./cmd/herald).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD

# Everything printed, stderr included, is also recorded for the report.
mkdir -p bench
output_file=$root/bench/bench-output.txt
exec 8>&1 9>&2
# tee -i: an interrupt stops the run, not the record of its cleanup.
exec > >(tee -i "$output_file") 2>&1
tee_pid=$!
admin_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
db=herald_bench_$$

tmp=$(mktemp -d "${TMPDIR:-/tmp}/herald-bench.XXXXXX")
server_pid=
load_pid=
profile_pid=
dbs_created=()
report_bin=
validation=${BENCH_VALIDATION:-1}

# shellcheck disable=SC2317 # cleanup runs from the traps
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for pid in $load_pid $profile_pid; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	stop_server
	for d in "${dbs_created[@]}"; do
		drop_db "$d" || true
	done
	echo "bench: exit status $rc"
	# Close the pipe to tee and let it write out the rest.
	exec 1>&8 2>&9 8>&- 9>&-
	for _ in $(seq 1 50); do
		kill -0 "$tee_pid" 2>/dev/null || break
		sleep 0.1
	done
	if [[ -n $report_bin && $rc != 130 && $rc != 143 ]]; then
		"$report_bin" -in "$output_file" -out "$root/bench" || echo "bench: the report could not be written" >&2
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

# with_db URL NAME replaces the database name of a postgres:// URL.
with_db() {
	local re='^(postgres(ql)?://[^/?]*)(/[^?]*)?(\?.*)?$'
	[[ $1 =~ $re ]] || die "DATABASE_URL must be a postgres:// URL"
	printf '%s/%s%s' "${BASH_REMATCH[1]}" "$2" "${BASH_REMATCH[4]}"
}

# free_port prints a loopback TCP port nobody listens on, below Linux's
# ephemeral range so that no outgoing connection is about to take it.
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "no free loopback port found"
}

# http_status PORT PATH prints the status of GET http://127.0.0.1:PORT/PATH
# (empty when nothing answers within 2 s), with nothing but bash.
http_status() {
	local line
	# shellcheck disable=SC2016 # $1 and $2 expand in the inner shell
	line=$(timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
		printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3 && head -n 1 <&3' _ "$1" "$2" 2>/dev/null) || true
	line=${line#HTTP/* }
	echo "${line%% *}"
}

# create_db NAME creates an empty database, which cleanup drops if nothing
# else has.
create_db() {
	psql "$admin_url" -v ON_ERROR_STOP=1 -qAtc "CREATE DATABASE $1" >/dev/null
	dbs_created+=("$1")
}

# drop_db NAME drops a database of create_db's.
drop_db() {
	if ! psql "$admin_url" -v ON_ERROR_STOP=1 -qAtc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null; then
		echo "bench: could not drop database $1; drop it by hand" >&2
		return 1
	fi
	local kept=() d
	for d in "${dbs_created[@]}"; do
		[[ $d == "$1" ]] || kept+=("$d")
	done
	dbs_created=("${kept[@]}")
}

# start_server BIN DATABASE starts herald BIN on a free loopback port over
# DATABASE (with pprof when pprof_port is set), logging into its own file,
# and waits until it is ready: it sets port, server_pid and server_log.
start_server() {
	local bin=$1 database=$2
	port=$(free_port)
	server_log=$tmp/herald-$database.log
	env DATABASE_URL="$(with_db "$admin_url" "$database")" \
		HERALD_ADDR="127.0.0.1:$port" \
		HERALD_BASE_URL="http://127.0.0.1:$port/fhir" \
		HERALD_AUTH_HS256_SECRET="$secret" \
		HERALD_SECRET_KEY="$(head -c 32 /dev/urandom | base64)" \
		HERALD_LOG_LEVEL=warn \
		HERALD_MAX_SUBSCRIPTIONS_PER_CLIENT="${HERALD_MAX_SUBSCRIPTIONS_PER_CLIENT:-100000}" \
		${pprof_port:+HERALD_PPROF_ADDR=127.0.0.1:$pprof_port} \
		"$bin" serve >"$server_log" 2>&1 8>&- 9>&- &
	server_pid=$!

	local deadline=$((SECONDS + 30))
	until [[ $(http_status "$port" /readyz) == 200 ]]; do
		if ! kill -0 "$server_pid" 2>/dev/null; then
			cat "$server_log" >&2
			die "herald exited before it was ready"
		fi
		if ((SECONDS >= deadline)); then
			cat "$server_log" >&2
			die "herald not ready after 30 s"
		fi
		sleep 0.1
	done
}

# stop_server stops the running server, if any, giving it up to 10 s to drain.
stop_server() {
	if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	server_pid=
}

# finish prints the load average and the servers' logs, and exits with status.
finish() {
	echo
	echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, at the end)"
	local f f_label
	for f in "$tmp"/herald-*.log; do
		[[ -s $f ]] || continue
		echo
		f_label=${f##*/herald-}
		echo "== server log (warnings and errors), database ${f_label%.log}"
		tail -n 20 "$f"
	done
	exit "$status"
}

# validation_phase [herald-load flags…] measures what R4 validation costs:
# per round, the validating server and then the not-validating one, each
# alone over a fresh database, run the same two workloads; then the medians.
validation_phase() {
	local rounds=${BENCH_VALIDATION_ROUNDS:-3} warmup=${BENCH_VALIDATION_WARMUP:-2s} duration=${BENCH_VALIDATION_DURATION:-8s}
	local pprof_port= round mode bin database run_status=0
	[[ $rounds =~ ^[0-9]+$ ]] && ((rounds >= 2)) || die "BENCH_VALIDATION_ROUNDS must be a number of at least 2"
	echo
	echo "== validation: Patient creates and 30 KB transactions, validating (herald) and not (herald -tags heraldnovalidate) in turn; $rounds rounds, $warmup warm-up + $duration measured each"
	echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, before the validation phase)"
	: >"$tmp/validation.out"
	for round in $(seq 1 "$rounds"); do
		for mode in on off; do
			bin=$herald
			[[ $mode == on ]] || bin=$herald_novalidate
			database=${db}_$mode$round
			create_db "$database"
			start_server "$bin" "$database"
			echo
			echo "-- round $round, validation $mode: herald pid $server_pid on 127.0.0.1:$port, database $database"
			check_validation "$mode"
			# Output into a file first: the summary reads it.
			HERALD_LOAD_SECRET=$secret "$tmp/herald-load" \
				-url "http://127.0.0.1:$port/fhir" \
				-cpu "herald=pid:$server_pid,postgres=comm:postgres,pg-bench=cmdline:$database" \
				"$@" -phases create,transaction -warmup "$warmup" -duration "$duration" \
				-bench-tag "validation-$mode.$round" >"$tmp/validation-run.out" 2>&1 &
			load_pid=$!
			wait "$load_pid" || run_status=$?
			load_pid=
			cat "$tmp/validation-run.out"
			cat "$tmp/validation-run.out" >>"$tmp/validation.out"
			stop_server
			drop_db "$database" || true
			[[ $run_status == 0 ]] || return "$run_status"
		done
	done
	summarize_validation <"$tmp/validation.out"
}

# check_validation on|off makes sure the running server refuses (on) or
# accepts (off) a Patient that is not valid R4: each figure is what it says.
check_validation() {
	local token code
	command -v curl >/dev/null || die "the validation phase needs curl"
	token=$(HERALD_AUTH_HS256_SECRET=$secret "$herald" token --client bench-probe --scope system/Patient.c --ttl 5m)
	code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/fhir/Patient" \
		-H "Authorization: Bearer $token" -H 'Content-Type: application/fhir+json' \
		-d '{"resourceType":"Patient","gender":"sometimes"}') || true
	if [[ $1 == on && $code != 4?? || $1 == off && $code != 201 ]]; then
		die "validation $1: a Patient that is not valid R4 got HTTP $code: is this the right binary?"
	fi
}

# awk_median is the awk function median(a, n) of the summaries: the median of
# a[1..n] (sorting a).
awk_median='
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}'

# summarize_validation reads herald-load's tagged BENCH lines and prints, per
# workload, the median over rounds of the throughput ratio validating / not
# validating (each round's pair), of herald's CPU per request (steadier on a
# shared machine) and its ratio, and of p50 and p99.
summarize_validation() {
	awk "$awk_median"'
	function med(key, mode,   r, n, a) {
		n = 0
		# + 0: compare as numbers, not as strings
		for (r = 1; r <= rounds; r++) if ((ph, mode, r) in rps) a[++n] = val[key, ph, mode, r] + 0
		return n ? median(a, n) : -1
	}
	# ratio: median over the rounds that measured both servers of key on / off.
	function ratio(key,   r, n, a) {
		n = 0
		for (r = 1; r <= rounds; r++)
			if ((ph, "on", r) in rps && (ph, "off", r) in rps && val[key, ph, "off", r] + 0 > 0)
				a[++n] = val[key, ph, "on", r] / val[key, ph, "off", r]
		return n ? median(a, n) : -1
	}
	/^BENCH / && / tag=validation-(on|off)\.[0-9]+$/ {
		delete kv
		for (i = 2; i <= NF; i++) { eq = index($i, "="); kv[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
		split(kv["tag"], t, /[-.]/)
		ph = kv["phase"]; mode = t[2]; r = t[3] + 0
		rps[ph, mode, r] = kv["rps"]
		for (k in kv) val[k, ph, mode, r] = kv[k]
		if (r > rounds) rounds = r
	}
	END {
		printf "\n== validation cost: medians over %d rounds (ratio: validating / not validating, per round)\n", rounds
		printf "%-12s %10s %10s %7s %9s %9s %9s %9s %10s %10s %9s  %s\n", "workload", "req/s on", "req/s off", "ratio", "p50 on", "p50 off", "p99 on", "p99 off", "cpu µs on", "cpu µs off", "cpu ratio", "req/s ratio per round"
		split("create transaction", phases, " ")
		for (p = 1; p <= 2; p++) {
			ph = phases[p]; n = 0; list = ""
			delete ratios
			for (r = 1; r <= rounds; r++)
				if ((ph, "on", r) in rps && (ph, "off", r) in rps && rps[ph, "off", r] + 0 > 0) {
					ratios[++n] = rps[ph, "on", r] / rps[ph, "off", r]
					list = list sprintf(" %.3f", ratios[n])
				}
			if (!n) continue
			printf "%-12s %10.1f %10.1f %7.3f %9.2f %9.2f %9.2f %9.2f %10.0f %10.0f %9.3f %s\n", ph, med("rps", "on"), med("rps", "off"), median(ratios, n),
				med("p50_ms", "on"), med("p50_ms", "off"), med("p99_ms", "on"), med("p99_ms", "off"),
				med("cpu_herald_us_per_req", "on"), med("cpu_herald_us_per_req", "off"), ratio("cpu_herald_us_per_req"), list
		}
		print "cpu: herald CPU µs per request. Target (issue 11): validating at most 15% slower (ratio ≥ 0.85), p99 under 20 ms at 32 clients"
	}'
}

# attempts_phase [herald-load flags…] measures what the delivery attempt log
# costs: per round, a server logging attempts and then one not
# (HERALD_ATTEMPT_LOG=false), each alone over a fresh database, run the
# delivery and fanout phases; then the median ratios on / off.
attempts_phase() {
	local rounds=${BENCH_ATTEMPTS_ROUNDS:-3} warmup=${BENCH_ATTEMPTS_WARMUP:-2s} duration=${BENCH_ATTEMPTS_DURATION:-8s}
	local pprof_port= round mode database run_status=0
	[[ $rounds =~ ^[0-9]+$ ]] && ((rounds >= 1)) || die "BENCH_ATTEMPTS_ROUNDS must be a positive number"
	echo
	echo "== attempts: delivery and fanout with the attempt log on and off (HERALD_ATTEMPT_LOG) in turn; $rounds rounds, $warmup warm-up + $duration measured each"
	echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, before the attempts phase)"
	: >"$tmp/attempts.out"
	for round in $(seq 1 "$rounds"); do
		for mode in on off; do
			database=${db}_attempts_$mode$round
			create_db "$database"
			if [[ $mode == on ]]; then export HERALD_ATTEMPT_LOG=true; else export HERALD_ATTEMPT_LOG=false; fi
			start_server "$herald" "$database"
			unset HERALD_ATTEMPT_LOG
			echo
			echo "-- round $round, attempt log $mode: herald pid $server_pid on 127.0.0.1:$port, database $database"
			# shellcheck disable=SC2086 # BENCH_DELIVERY_FLAGS is a list of flags
			HERALD_LOAD_SECRET=$secret "$tmp/herald-load" \
				-url "http://127.0.0.1:$port/fhir" \
				-cpu "herald=pid:$server_pid,postgres=comm:postgres,pg-bench=cmdline:$database" \
				"$@" ${BENCH_DELIVERY_FLAGS:-} -phases delivery,fanout -warmup "$warmup" -duration "$duration" \
				-bench-tag "attempts-$mode.$round" >"$tmp/attempts-run.out" 2>&1 &
			load_pid=$!
			wait "$load_pid" || run_status=$?
			load_pid=
			cat "$tmp/attempts-run.out"
			cat "$tmp/attempts-run.out" >>"$tmp/attempts.out"
			if [[ $mode == on ]]; then
				echo "attempts logged: $(psql "$(with_db "$admin_url" "$database")" -qAtc 'SELECT count(*) FROM delivery_attempts')"
			fi
			stop_server
			drop_db "$database" || true
			[[ $run_status == 0 ]] || return "$run_status"
		done
	done
	summarize_attempts <"$tmp/attempts.out"
}

# summarize_attempts reads herald-load's tagged BENCH lines and prints, per
# phase, the medians over rounds (on, off) and of the per-round ratios on /
# off of events per second, latency and herald's and PostgreSQL's CPU per event.
summarize_attempts() {
	awk "$awk_median"'
	function med(key, mode,   r, n, a) {
		n = 0
		for (r = 1; r <= rounds; r++) if ((key, ph, mode, r) in val) a[++n] = val[key, ph, mode, r] + 0
		return n ? median(a, n) : -1
	}
	function ratio(key,   r, n, a) {
		n = 0
		for (r = 1; r <= rounds; r++)
			if ((key, ph, "on", r) in val && (key, ph, "off", r) in val && val[key, ph, "off", r] + 0 > 0)
				a[++n] = val[key, ph, "on", r] / val[key, ph, "off", r]
		return n ? median(a, n) : -1
	}
	/^BENCH / && / tag=attempts-(on|off)\.[0-9]+$/ {
		delete kv
		for (i = 2; i <= NF; i++) { eq = index($i, "="); kv[substr($i, 1, eq - 1)] = substr($i, eq + 1) }
		split(kv["tag"], t, /[-.]/)
		ph = kv["phase"]; mode = t[2]; r = t[3] + 0
		for (k in kv) val[k, ph, mode, r] = kv[k]
		if (r > rounds) rounds = r
	}
	END {
		printf "\n== attempt log cost: medians over %d rounds (ratio: logging / not logging, the median of the per-round ratios)\n", rounds
		printf "%-9s %11s %11s %7s %9s %9s %7s %9s %9s %7s %11s %11s %7s %11s %11s %7s\n", "phase", "events/s on", "events/s off", "ratio",
			"p50 on", "p50 off", "ratio", "p99 on", "p99 off", "ratio", "herald µs on", "herald µs off", "ratio", "pg µs on", "pg µs off", "ratio"
		split("delivery fanout", phases, " ")
		for (p = 1; p <= 2; p++) {
			ph = phases[p]
			if (med("events_per_s", "on") < 0) continue
			printf("%-9s %11.1f %11.1f %7.3f %9.2f %9.2f %7.3f %9.2f %9.2f %7.3f %11.0f %11.0f %7.3f %11.0f %11.0f %7.3f\n", ph,
				med("events_per_s", "on"), med("events_per_s", "off"), ratio("events_per_s"),
				med("p50_ms", "on"), med("p50_ms", "off"), ratio("p50_ms"),
				med("p99_ms", "on"), med("p99_ms", "off"), ratio("p99_ms"),
				med("cpu_herald_us_per_event", "on"), med("cpu_herald_us_per_event", "off"), ratio("cpu_herald_us_per_event"),
				med("cpu_pg_bench_us_per_event", "on"), med("cpu_pg_bench_us_per_event", "off"), ratio("cpu_pg_bench_us_per_event"))
		}
		print "µs: CPU per delivered event. delivery is open-loop (its events/s is the offered rate: compare latency and CPU); fanout is saturated (compare events/s)."
		print "Target (issue 16): with the log at most 5% slower: fanout events/s ratio ≥ 0.95, delivery latency and CPU ratios ≤ 1.05"
	}'
}

command -v psql >/dev/null || die "psql is required (apt-get install postgresql-client)"
case $validation in
0 | 1 | only) ;;
*) die "BENCH_VALIDATION must be 0, 1 or only" ;;
esac

# --- the machine -------------------------------------------------------------
echo "== machine"
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ $commit != unknown ]] && ! git diff --quiet HEAD -- 2>/dev/null; then
	commit+=" (with uncommitted changes)"
fi
echo "commit:   $commit"
echo "cpus:     $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
echo "memory:   $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "kernel:   $(uname -sr)"
echo "go:       $(go version | cut -d' ' -f3-)"
echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min; other work on the machine skews the figures)"

# --- build -------------------------------------------------------------------
herald=${BENCH_HERALD_BIN:-}
if [[ -z $herald ]]; then
	herald=$tmp/herald
	go build -o "$herald" ./cmd/herald
fi
go build -o "$tmp/herald-load" ./cmd/herald-load
if [[ $validation != 0 ]]; then
	herald_novalidate=$tmp/herald-novalidate
	go build -tags heraldnovalidate -o "$herald_novalidate" ./cmd/herald
fi
if [[ ${BENCH_REPORT:-1} != 0 ]]; then
	go build -o "$tmp/benchreport" ./scripts/benchreport
	report_bin=$tmp/benchreport
fi

# --- PostgreSQL --------------------------------------------------------------
if ! pg_isready -q -d "$admin_url" 2>/dev/null && ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
	log "PostgreSQL is not answering; trying to start it"
	version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
	pg_ctlcluster --skip-systemctl-redirect "${version:-15}" main start >&2 8>&- 9>&- || true
	for _ in $(seq 1 100); do # up to 20 s
		pg_isready -q -d "$admin_url" 2>/dev/null && break
		sleep 0.2
	done
	pg_isready -q -d "$admin_url" || die "PostgreSQL at $admin_url is not ready"
fi
echo "postgres: $(psql "$admin_url" -qAtc 'SHOW server_version')"
echo "pg conf:  $(psql "$admin_url" -qAtc "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings
	WHERE name IN ('synchronous_commit', 'fsync', 'wal_sync_method', 'commit_delay', 'shared_buffers', 'max_connections', 'full_page_writes')")"

secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') # 64 hex characters
status=0

if [[ $validation == only ]]; then
	validation_phase "$@" || status=$?
	finish
fi

# relay_phase runs scripts/relay-bench.sh with this run's herald binary; it
# starts its own servers, one at a time.
relay_phase() {
	BENCH_HERALD_BIN=$herald DATABASE_URL=$admin_url bash "$root/scripts/relay-bench.sh" 8>&- 9>&-
}
if [[ ${BENCH_RELAY:-1} == only ]]; then
	relay_phase || status=$?
	finish
fi
if [[ ${BENCH_ATTEMPTS:-1} == only ]]; then
	attempts_phase "$@" || status=$?
	finish
fi

# --- the server --------------------------------------------------------------
create_db "$db"
pprof_port=
if [[ ${BENCH_PROFILE:-} == 1 ]]; then
	command -v curl >/dev/null || die "BENCH_PROFILE=1 needs curl"
	pprof_port=$(free_port)
fi
start_server "$herald" "$db"
echo "server:   herald pid $server_pid on 127.0.0.1:$port, database $db"

# --- the run -----------------------------------------------------------------
# herald-load reports, per phase, the CPU share and CPU µs per request of:
# herald; postgres (every PostgreSQL process, including the WAL writer and
# any other database's backends); pg-bench (only the backends of the bench
# database, a part of postgres); herald-load itself; and other (the rest of
# the machine: if it is large, someone else was using the cores and the
# figures understate what Herald can do).
# The profile spans every phase: the phase count times (warm-up + duration),
# read from the herald-load flags when given, else their defaults.
profile_file=
if [[ -n $pprof_port ]]; then
	if [[ $(http_status "$pprof_port" /debug/pprof/) == 200 ]]; then
		secs=$("$tmp/herald-load" -print-run-seconds "$@")
		mkdir -p bench
		profile_file=$root/bench/herald-cpu-$(date +%Y%m%d-%H%M%S).prof
		# curl starts at once (go tool pprof may first spend seconds building
		# itself, and would then profile an idle server).
		curl -sSf -m $((secs + 30)) -o "$profile_file" \
			"http://127.0.0.1:$pprof_port/debug/pprof/profile?seconds=$secs" &
		profile_pid=$!
	else
		log "BENCH_PROFILE=1: this herald has no pprof endpoint (it ignores HERALD_PPROF_ADDR); running without a profile"
	fi
fi

# In the background, so that a signal to this script is handled at once
# rather than when the run ends.
HERALD_LOAD_SECRET=$secret "$tmp/herald-load" \
	-url "http://127.0.0.1:$port/fhir" \
	-cpu "herald=pid:$server_pid,postgres=comm:postgres,pg-bench=cmdline:$db" \
	"$@" &
load_pid=$!
wait "$load_pid" || status=$?
load_pid=

# --- reads driven by wrk ------------------------------------------------------
# The Go load generator spends ~60 µs of CPU per request on the same two
# cores as the server; wrk (C, epoll) spends far less, so this phase shows
# more of what the server itself can do. wrk comes from Debian's packages;
# installed here when missing and we are root, skipped otherwise.
if ! command -v wrk >/dev/null && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
	apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq wrk >/dev/null 2>&1; } || true
fi
if [[ $status == 0 ]] && command -v wrk >/dev/null; then
	token=$(HERALD_AUTH_HS256_SECRET=$secret "$herald" token --client bench-wrk --scope "system/Patient.cru" --ttl 10m)
	for i in $(seq 1 200); do
		curl -sf -o /dev/null -X PUT "http://127.0.0.1:$port/fhir/Patient/wrk$i" -H "Authorization: Bearer $token" \
			-H 'Content-Type: application/fhir+json' \
			-d "{\"resourceType\":\"Patient\",\"id\":\"wrk$i\",\"active\":true,\"name\":[{\"family\":\"Bench\",\"given\":[\"W$i\"]}]}" ||
			die "seeding Patient/wrk$i for the wrk phase failed"
	done
	cat >"$tmp/read.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/fhir/Patient/wrk" .. ((n % 200) + 1))
end
LUA
	wrk -t2 -c32 -d2s -s "$tmp/read.lua" -H "Authorization: Bearer $token" "http://127.0.0.1:$port" >/dev/null # warm-up
	echo
	echo "== phase read (wrk, 2 threads, 32 connections, 10 s after a 2 s warm-up, 200 Patients)"
	wrk -t2 -c32 -d10s --latency -s "$tmp/read.lua" -H "Authorization: Bearer $token" "http://127.0.0.1:$port" | tee "$tmp/wrk.out" |
		grep -E 'Latency Distribution|^ +(50|90|99)%|Requests/sec|requests in|Non-2xx|Socket errors'
	rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.out")
	p50=$(awk '$1 == "50%" {print $2}' "$tmp/wrk.out")
	p90=$(awk '$1 == "90%" {print $2}' "$tmp/wrk.out")
	p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk.out")
	echo "BENCH phase=read-wrk c=32 rps=$rps p50=$p50 p90=$p90 p99=$p99"
	if grep -q 'Non-2xx' "$tmp/wrk.out"; then
		log "wrk saw non-2xx responses"
		status=1
	fi
else
	log "wrk not available: the wrk read phase is skipped"
fi

if [[ -n $profile_pid ]]; then
	if wait "$profile_pid" && [[ -s $profile_file ]]; then
		echo
		echo "== server CPU profile: $profile_file (explore with: go tool pprof -http=: $profile_file)"
		go tool pprof -top -nodecount=25 "$profile_file" 2>/dev/null | sed -n '1,32p'
	else
		log "the CPU profile could not be fetched"
	fi
	profile_pid=
fi

# --- search (issue 14) ----------------------------------------------------------
# herald-load writes BENCH_SEARCH_SEED records (a Patient, 3 Encounters and 96
# Observations each; 10000 makes the issue's million resources) and prints
# the load time; after an ANALYZE (what autovacuum does in time), it runs a
# subscriber's queries over random Patients' records at the run's clients.
# The search index's size per resource follows.
if [[ $status == 0 && ${BENCH_SEARCH:-1} != 0 ]]; then
	search_seed=${BENCH_SEARCH_SEED:-$(((${BENCH_SEARCH_RESOURCES:-1000000} + 99) / 100))}
	echo
	echo "== search (herald-load phase search over $search_seed Patients' records, $((search_seed * 100)) resources)"
	search_load() {
		HERALD_LOAD_SECRET=$secret "$tmp/herald-load" \
			-url "http://127.0.0.1:$port/fhir" \
			-cpu "herald=pid:$server_pid,postgres=comm:postgres,pg-bench=cmdline:$db" \
			"$@" &
		load_pid=$!
		wait "$load_pid" || status=$?
		load_pid=
	}
	bulk=()
	[[ ${BENCH_SEARCH_BULK:-1} != 0 ]] && bulk=(-bulk-seed "$(with_db "$admin_url" "$db")")
	search_load -phases search -search-seed "$search_seed" "${bulk[@]}" -warmup 0s -duration 1s -bench-tag seed | grep -E '^search: seeded'
	psql "$(with_db "$admin_url" "$db")" -qc 'ANALYZE' || status=1
	[[ $status == 0 ]] && search_load "$@" -phases search -search-seed 0
	psql "$(with_db "$admin_url" "$db")" -qAt -F ' ' -c "SELECT 'BENCH phase=search-index resources=' || count(*) || ' index_bytes=' || pg_relation_size('resources_search_keys') || ' index_bytes_per_resource=' || round(pg_relation_size('resources_search_keys')::numeric / greatest(count(*), 1)) FROM resources WHERE NOT deleted" || status=1
fi

# --- delivery -----------------------------------------------------------------
# herald-load subscribes its own receiver (allow-listed through the admin
# API) and measures from a write's response to the notification's arrival.
# The fanout profile covers exactly that phase's measured window.
if [[ $status == 0 && ${BENCH_DELIVERY:-1} != 0 ]]; then
	fanout_profile=
	profile_flags=()
	if [[ -n $pprof_port && $(http_status "$pprof_port" /debug/pprof/) == 200 ]]; then
		mkdir -p bench
		fanout_profile=$root/bench/herald-cpu-fanout-$(date +%Y%m%d-%H%M%S).prof
		profile_flags=(-profile-url "http://127.0.0.1:$pprof_port" -profile-out "$fanout_profile")
	fi
	echo
	echo "== delivery (herald-load phases delivery and fanout)"
	# shellcheck disable=SC2086 # BENCH_DELIVERY_FLAGS is a list of flags
	HERALD_LOAD_SECRET=$secret "$tmp/herald-load" \
		-url "http://127.0.0.1:$port/fhir" \
		-cpu "herald=pid:$server_pid,postgres=comm:postgres,pg-bench=cmdline:$db" \
		"$@" -phases delivery,fanout "${profile_flags[@]}" ${BENCH_DELIVERY_FLAGS:-} &
	load_pid=$!
	wait "$load_pid" || status=$?
	load_pid=
	if [[ -n $fanout_profile && -s $fanout_profile ]]; then
		echo
		echo "== server CPU profile, fanout phase: $fanout_profile (explore with: go tool pprof -http=: $fanout_profile)"
		go tool pprof -top -nodecount=30 "$fanout_profile" 2>/dev/null | sed -n '1,37p'
	fi
fi

# --- the delivery sweep ----------------------------------------------------------
# End-to-end latency against offered load and against Subscription count:
# one short herald-load run per point, its BENCH line tagged sweep. Every run
# makes its own patients and Subscriptions (ids starting with a random run id)
# and deletes its Subscriptions when done, so no point's writes reach another
# point's Subscriptions, nor do earlier points' Subscriptions stay behind.
if [[ $status == 0 && ${BENCH_DELIVERY:-1} != 0 && ${BENCH_SWEEP:-1} != 0 ]]; then
	read -ra sweep_rates <<<"${BENCH_SWEEP_RATES:-50 100 200 400 800}"
	read -ra sweep_subs <<<"${BENCH_SWEEP_SUBS:-10 100 1000 3000}"
	rate_subs=${BENCH_SWEEP_RATE_SUBS:-100}
	subs_rate=${BENCH_SWEEP_SUBS_RATE:-200}
	points=()
	for r in "${sweep_rates[@]}"; do points+=("$r/$rate_subs"); done
	for n in "${sweep_subs[@]}"; do
		[[ " ${points[*]} " == *" $subs_rate/$n "* ]] || points+=("$subs_rate/$n")
	done
	echo
	echo "== delivery sweep: writes/s over $rate_subs Subscriptions (${sweep_rates[*]}), and Subscriptions at $subs_rate writes/s (${sweep_subs[*]}); ${BENCH_SWEEP_WARMUP:-1s} warm-up + ${BENCH_SWEEP_DURATION:-5s} measured each"
	echo "load:     $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min, before the sweep)"
	failed=0
	for p in "${points[@]}"; do
		echo
		echo "-- sweep point: ${p%/*} writes/s, ${p#*/} Subscriptions"
		# shellcheck disable=SC2086 # BENCH_DELIVERY_FLAGS is a list of flags
		HERALD_LOAD_SECRET=$secret "$tmp/herald-load" \
			-url "http://127.0.0.1:$port/fhir" \
			-cpu "herald=pid:$server_pid,postgres=comm:postgres,pg-bench=cmdline:$db" \
			"$@" ${BENCH_DELIVERY_FLAGS:-} -phases delivery -bench-tag sweep \
			-delivery-rate "${p%/*}" -delivery-subs "${p#*/}" \
			-warmup "${BENCH_SWEEP_WARMUP:-1s}" -duration "${BENCH_SWEEP_DURATION:-5s}" &
		load_pid=$!
		point_status=0
		wait "$load_pid" || point_status=$?
		load_pid=
		if [[ $point_status != 0 ]]; then
			log "sweep point ${p%/*} writes/s, ${p#*/} Subscriptions failed (exit $point_status); going on with the others"
			failed=$((failed + 1))
		fi
	done
	if ((failed > 0)); then
		status=1
	fi
fi

# --- the attempt log's cost (issue 16) --------------------------------------------
# The main server goes first: only one server runs at a time.
if [[ $status == 0 && ${BENCH_DELIVERY:-1} != 0 && ${BENCH_ATTEMPTS:-1} != 0 ]]; then
	stop_server
	drop_db "$db" || true
	attempts_phase "$@" || status=$?
fi

# --- validation cost ------------------------------------------------------------
# The main server goes first: only one server runs at a time.
if [[ $status == 0 && $validation != 0 ]]; then
	stop_server
	drop_db "$db" || true
	validation_phase "$@" || status=$?
fi

# --- Herald against a bare relay (issue 13) -------------------------------------
if [[ $status == 0 && ${BENCH_RELAY:-1} != 0 ]]; then
	stop_server
	relay_phase || status=$?
fi
finish
