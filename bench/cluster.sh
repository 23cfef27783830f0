#!/usr/bin/env bash
# Ingest throughput and CPU of the collector alone and as a cluster over NATS
# JetStream, and how long a partition takes to move when its holder is killed; release
# build, everything on loopback on this machine, one run, side by side:
#
# 1. N log records (OTLP/gRPC, batches of 1,000 with batch ids, 6 connections;
#    `tests/examples/otlp_batch_load.rs`) sent to
#    a. one `bellwether serve` on its sled store;
#    b. a 1-node cluster: one nats-server, `replicas = 1`, one collector;
#    c. a 3-node cluster: three routed nats-servers, `replicas = 3`, three collectors,
#       the connections spread over the three nodes.
#    Each figure runs from the generator's first send until every node counts all N
#    (`release.totals.log_records`), with the CPU (user + system, /proc/PID/stat) the
#    collectors and the nats-servers spent meanwhile, per record.
# 2. In the 3-node cluster, with `lease_ttl = "2s"` and a paced load on the service
#    `checkout` flowing to all three nodes: `kill -9` of the node holding checkout's
#    partition, then the time until a surviving node's `/api/v1/cluster?service=checkout`
#    names another node. The killed node is restarted (same id and data dir) and the
#    cluster left to settle between rounds.
#
#   bench/cluster.sh            # N = 1,000,000 (at 300,000 the fastest mode is done in
#                               # about a second, where polling blurs the figure)
#   bench/cluster.sh 100000     # smaller
set -euo pipefail
export LC_ALL=C

N="${1:-1000000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bellwether-cluster-bench.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# BENCH_CONNECTIONS (6) and BENCH_BATCH (1000) shape the load; BENCH_ROUNDS (5) is the
# number of kills; BENCH_TAKEOVER_RATE (5000) the records/s of checkout while they
# happen. BENCH_KEEP=1 keeps the work directory (logs, stores) and prints its path.
# BENCH_NO_BUILD=1 uses the release binaries already in the target directory.
CONNECTIONS="${BENCH_CONNECTIONS:-6}"
BATCH="${BENCH_BATCH:-1000}"
ROUNDS="${BENCH_ROUNDS:-5}"
TAKEOVER_RATE="${BENCH_TAKEOVER_RATE:-5000}"
LEASE_TTL=2s
PARTITIONS=64
if [ -n "${BENCH_KEEP:-}" ]; then
    trap 'for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; echo "work directory kept: $WORK" >&2' EXIT
fi
NATS_SERVER="${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}"
[ -x "$NATS_SERVER" ] || { echo "nats-server not found (Debian package nats-server)" >&2; exit 1; }
command -v jq > /dev/null || { echo "jq is required" >&2; exit 1; }

if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cargo build --release --bins --manifest-path "$ROOT/Cargo.toml" >&2
    cargo build --release -p bellwether-e2e --example otlp_batch_load \
        --manifest-path "$ROOT/Cargo.toml" >&2
fi
BIN="$TARGET/release"
CLK=$(getconf CLK_TCK)

now() { echo "$EPOCHREALTIME"; } # seconds since the epoch, microsecond resolution

fail() {
    echo "cluster bench: $*" >&2
    exit 1
}

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s until it succeeds.
wait_until() {
    local deadline=$(( SECONDS + $1 )) what=$2
    shift 2
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out waiting for $what"
        sleep 0.1
    done
}

# Ports below the kernel's ephemeral range, not listened on, not handed out before.
NEXT_PORT=$(( 20000 + RANDOM % 10000 ))
port() { # port VAR: a free loopback port into VAR
    while (: < "/dev/tcp/127.0.0.1/$NEXT_PORT") 2>/dev/null; do NEXT_PORT=$(( NEXT_PORT + 1 )); done
    printf -v "$1" '%s' "$NEXT_PORT"
    NEXT_PORT=$(( NEXT_PORT + 1 ))
}
listening() { (: < "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cpu_ticks() { # cpu_ticks PID...: their user + system clock ticks so far, summed
    local pid stat sum=0
    for pid; do
        # The command name (field 2) holds no space for these binaries.
        read -r -a stat < "/proc/$pid/stat"
        sum=$(( sum + stat[13] + stat[14] ))
    done
    echo "$sum"
}

# stop PID...: SIGTERM, then SIGKILL for whatever still runs after 30 s.
stop() {
    local pid deadline=$(( SECONDS + 30 ))
    for pid; do kill "$pid" 2>/dev/null || true; done
    for pid; do
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

# --- NATS ------------------------------------------------------------------------

NATS_PIDS=()
NATS_URLS=()
start_nats() { # start_nats DIR COUNT: COUNT servers, routed to each other when more than 1
    local dir=$1 count=$2 i routes=""
    local -a client=() route=() args=()
    NATS_PIDS=()
    NATS_URLS=()
    for (( i = 1; i <= count; i++ )); do
        port "client[i]"
        port "route[i]"
        routes+="${routes:+,}nats://127.0.0.1:${route[i]}"
    done
    for (( i = 1; i <= count; i++ )); do
        args=(-a 127.0.0.1 -p "${client[i]}" -js -sd "$dir/nats$i" --server_name "s$i")
        if [ "$count" -gt 1 ]; then
            args+=(--cluster_name bench -cluster "nats://127.0.0.1:${route[i]}" --routes "$routes")
        fi
        "$NATS_SERVER" "${args[@]}" > "$dir/nats$i.log" 2>&1 &
        PIDS+=("$!")
        NATS_PIDS+=("$!")
        NATS_URLS+=("nats://127.0.0.1:${client[i]}")
    done
    for (( i = 1; i <= count; i++ )); do
        wait_until 15 "nats-server s$i to listen" listening "${client[i]}"
    done
}

# --- collectors ------------------------------------------------------------------

declare -A NODE_PID NODE_GRPC NODE_HTTP NODE_LOG
# start_node DIR NAME [CONFIG]: a collector with its own ports and data dir under DIR,
# a cluster node when CONFIG (a `[cluster]` section) is given. Once started it can be
# restarted on the same ports and data dir by restart_node NAME. Its command line is
# kept in the array CMD_<NAME>.
start_node() {
    local dir=$1 name=$2 config=${3:-} grpc otlp_http http
    port grpc
    port otlp_http
    port http
    declare -g -a "CMD_$name"
    local -n cmd="CMD_$name"
    cmd=("$BIN/bellwether" serve --data-dir "$dir/$name"
        --otlp-grpc-addr "127.0.0.1:$grpc" --otlp-http-addr "127.0.0.1:$otlp_http"
        --http-addr "127.0.0.1:$http")
    if [ -n "$config" ]; then
        printf '%s\n' "$config" > "$dir/$name.toml"
        cmd+=(--config "$dir/$name.toml")
    fi
    NODE_GRPC[$name]="http://127.0.0.1:$grpc"
    NODE_HTTP[$name]="http://127.0.0.1:$http"
    NODE_LOG[$name]="$dir/$name.log"
    restart_node "$name"
}
restart_node() { # restart_node NAME
    local -n command_line="CMD_$1"
    "${command_line[@]}" >> "${NODE_LOG[$1]}" 2>&1 < /dev/null &
    PIDS+=("$!")
    NODE_PID[$1]=$!
}

listens() { # listens NAME: its log says its HTTP API listens (after it joined a cluster)
    alive "$1"
    grep -q "listening kind=http" "${NODE_LOG[$1]}"
}

alive() { # alive NAME: fails, with the node's log, when its process has exited
    kill -0 "${NODE_PID[$1]}" 2>/dev/null && return 0
    echo "collector $1 exited; its log ends:" >&2
    tail -n 30 "${NODE_LOG[$1]}" >&2
    exit 1
}

ready() { # ready NAME...: every one answers /readyz with 200
    local name
    for name; do
        alive "$name"
        curl -sf -o /dev/null "${NODE_HTTP[$name]}/readyz" || return 1
    done
}

view() { # view NAME [SERVICE]: its /api/v1/cluster
    curl -sf --max-time 5 "${NODE_HTTP[$1]}/api/v1/cluster${2:+?service=$2}"
}

# settled NAME...: each ready, sees every partition held, and holds about its share.
settled() {
    local name count=$#
    for name; do
        alive "$name"
        view "$name" | jq -e --argjson n "$count" '.ready == true
            and (.holders | length > 0 and all(.node != null))
            and ((.owned | length) >= ((.partitions / $n) | floor) - 2)' > /dev/null \
            || return 1
    done
}

# count NAME SERVICE VERSION: log records it counts of the release (0 if none). Without
# jq: polled while the load runs, so it should cost the two cores as little as it can.
count() {
    local body
    body=$(curl -sf --max-time 5 \
        "${NODE_HTTP[$1]}/api/v1/releases/$2/$3/stats?environment=bench") || body=""
    if [[ $body =~ \"totals\":\{[^}]*\"log_records\":([0-9]+) ]]; then
        echo "${BASH_REMATCH[1]}"
    else
        echo 0
    fi
}

cluster_config() { # cluster_config NAME REPLICAS
    local servers
    servers=$(printf '"%s", ' "${NATS_URLS[@]}")
    cat <<EOF
[cluster]
servers = [${servers%, }]
node_id = "$1"
partitions = $PARTITIONS
replicas = $2
lease_ttl = "$LEASE_TTL"
EOF
}

# --- one ingest run --------------------------------------------------------------

# ingest MODE NAME...: sends N records of bench 1 to the nodes NAME..., waits until
# each counts all of them, and appends a row to RESULTS.
RESULTS=()
ingest() {
    local mode=$1
    shift
    local -a names=("$@") targets=() pids=()
    local name start end got all ticks0 nats0 ticks nats_us load loaded="" out first
    for name in "${names[@]}"; do
        targets+=("${NODE_GRPC[$name]}")
        pids+=("${NODE_PID[$name]}")
    done
    ticks0=$(cpu_ticks "${pids[@]}")
    nats0=0
    [ "${#NATS_PIDS[@]}" -eq 0 ] || nats0=$(cpu_ticks "${NATS_PIDS[@]}")
    start=$(now)
    out="$WORK/load-$mode.out"
    "$BIN/examples/otlp_batch_load" --targets "$(IFS=,; echo "${targets[*]}")" \
        --records "$N" --batch "$BATCH" --connections "$CONNECTIONS" \
        --service bench --version 1 --environment bench --run-id "bench-$mode" \
        > "$out" 2> "$WORK/load-$mode.log" &
    load=$!
    PIDS+=("$load")
    local deadline=$(( SECONDS + 600 ))
    while :; do
        all=1
        for name in "${names[@]}"; do
            alive "$name"
            got=$(count "$name" bench 1)
            [ "$got" -ge "$N" ] || { all=0; break; }
        done
        [ "$all" = 1 ] && break
        if [ -z "$loaded" ] && ! kill -0 "$load" 2>/dev/null; then
            wait "$load" || { echo "load generator failed:" >&2; cat "$WORK/load-$mode.log" >&2; exit 1; }
            loaded=1
        fi
        [ "$SECONDS" -lt "$deadline" ] || fail "$mode: $name counted $got of $N records after 600 s"
        sleep 0.05
    done
    end=$(now)
    ticks=$(( $(cpu_ticks "${pids[@]}") - ticks0 ))
    nats_us=-
    if [ "${#NATS_PIDS[@]}" -gt 0 ]; then
        nats_us=$(awk -v t="$(( $(cpu_ticks "${NATS_PIDS[@]}") - nats0 ))" -v clk="$CLK" \
            -v n="$N" 'BEGIN { printf "%.1f", t / clk / n * 1e6 }')
    fi
    if [ -z "$loaded" ]; then
        wait "$load" || { echo "load generator failed:" >&2; cat "$WORK/load-$mode.log" >&2; exit 1; }
    fi
    for name in "${names[@]}"; do
        got=$(count "$name" bench 1)
        [ "$got" -eq "$N" ] || fail "$mode: $name counts $got records, $N were sent"
    done
    # records=N batches=B resent=R seconds=S records_per_second=R first_send_unix_ms=T cpu_ticks=T
    first=$(sed -n 's/.*first_send_unix_ms=\([0-9]*\).*/\1/p' "$out")
    [ -n "$first" ] && start=$(awk -v ms="$first" 'BEGIN { printf "%.3f", ms / 1000 }')
    RESULTS+=("$(awk -v mode="$mode" -v n="$N" -v start="$start" -v end="$end" -v clk="$CLK" \
        -v ticks="$ticks" -v nats_us="$nats_us" -v out="$(cat "$out")" 'BEGIN {
        secs = end - start
        match(out, /cpu_ticks=[0-9]+/); load = substr(out, RSTART + 10, RLENGTH - 10)
        match(out, /resent=[0-9]+/); resent = substr(out, RSTART + 7, RLENGTH - 7)
        printf "%-22s %10.0f %9.2f %14.1f %11s %12.1f %7d\n", mode, n / secs, secs,
            ticks / clk / n * 1e6, nats_us, load / clk / n * 1e6, resent
    }')")
    echo "${RESULTS[-1]}" >&2
}

echo "cluster bench: N = $N records, $CONNECTIONS connections, batches of $BATCH, $(nproc) cores" >&2

# a. One collector on its sled store.
DIR="$WORK/single"
mkdir -p "$DIR"
start_node "$DIR" single
wait_until 60 "the single collector to be ready" ready single
ingest single single
stop "${NODE_PID[single]}"

# b. A 1-node cluster: one nats-server, replicas = 1.
DIR="$WORK/cluster1"
mkdir -p "$DIR"
start_nats "$DIR" 1
start_node "$DIR" c1 "$(cluster_config c1 1)"
wait_until 120 "the 1-node cluster to settle" settled c1
ingest "1-node cluster" c1
stop "${NODE_PID[c1]}"
stop "${NATS_PIDS[@]}"

# c. A 3-node cluster: three nats-servers, replicas = 3, three collectors.
DIR="$WORK/cluster3"
mkdir -p "$DIR"
start_nats "$DIR" 3
NODES=(n1 n2 n3)
# One node at a time: nodes that start together on a fresh cluster make its key-value
# buckets at the same moment, and most of them then fail with "opening a bucket: no
# answer from NATS within 10s" and exit. Once the buckets exist, nodes (re)start fine
# together.
for name in "${NODES[@]}"; do
    start_node "$DIR" "$name" "$(cluster_config "$name" 3)"
    wait_until 120 "$name to join the cluster" listens "$name"
done
wait_until 120 "the 3-node cluster to settle" settled "${NODES[@]}"
ingest "3-node cluster" "${NODES[@]}"

# Takeover: checkout's holder killed while checkout's records flow to all three nodes.
SERVICE=checkout
TARGETS=$(for name in "${NODES[@]}"; do printf '%s,' "${NODE_GRPC[$name]}"; done)
"$BIN/examples/otlp_batch_load" --targets "${TARGETS%,}" --records 0 --batch "$BATCH" \
    --connections "$CONNECTIONS" --rate "$TAKEOVER_RATE" --service "$SERVICE" --version 2 \
    --environment bench --run-id takeover > "$WORK/load-takeover.out" \
    2> "$WORK/load-takeover.log" &
LOAD=$!
PIDS+=("$LOAD")
flowing() {
    kill -0 "$LOAD" 2>/dev/null || { cat "$WORK/load-takeover.log" >&2; fail "the takeover load stopped"; }
    [ "$(count n1 "$SERVICE" 2)" -gt 0 ]
}
wait_until 60 "$SERVICE's records to arrive" flowing
holder() { # holder NAME: who holds SERVICE's partition as NAME sees it ("null" if none)
    view "$1" "$SERVICE" | jq -r '.service.node' 2>/dev/null || echo null
}
TAKEOVERS=()
for (( round = 1; round <= ROUNDS; round++ )); do
    wait_until 120 "the 3-node cluster to settle before round $round" settled "${NODES[@]}"
    flowing || fail "$SERVICE's records stopped arriving"
    owner=$(holder n1)
    case " ${NODES[*]} " in
        *" $owner "*) ;;
        *) fail "$SERVICE's partition is held by '$owner'" ;;
    esac
    for survivor in "${NODES[@]}"; do [ "$survivor" != "$owner" ] && break; done
    killed_at=$(now)
    kill -9 "${NODE_PID[$owner]}"
    wait "${NODE_PID[$owner]}" 2> /dev/null || true # reaped at once, so bash says nothing
    deadline=$(( SECONDS + 60 ))
    while :; do
        new=$(holder "$survivor")
        [ "$new" != null ] && [ "$new" != "$owner" ] && break
        [ "$SECONDS" -lt "$deadline" ] || fail "no node took $SERVICE over within 60 s of killing $owner"
        sleep 0.02
    done
    took=$(awk -v a="$killed_at" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
    TAKEOVERS+=("$took")
    echo "round $round: killed $owner, $new holds $SERVICE after $took s (seen by $survivor)" >&2
    restart_node "$owner"
done
wait_until 120 "the 3-node cluster to settle after the last round" settled "${NODES[@]}"
stop "$LOAD"
# Every node must end with the same count of what was sent during the kills.
agree() {
    local a b c
    a=$(count n1 "$SERVICE" 2); b=$(count n2 "$SERVICE" 2); c=$(count n3 "$SERVICE" 2)
    [ "$a" -gt 0 ] && [ "$a" = "$b" ] && [ "$b" = "$c" ]
}
wait_until 60 "the three nodes to agree on $SERVICE's count" agree
CHECKOUT=$(count n1 "$SERVICE" 2)
stop "${NODE_PID[@]}"
stop "${NATS_PIDS[@]}"

echo
printf '%s records per mode over OTLP/gRPC (%s connections, batches of %s), %s cores\n' \
    "$N" "$CONNECTIONS" "$BATCH" "$(nproc)"
printf "%-22s %10s %9s %14s %11s %12s %7s\n" mode records/s seconds \
    "collector µs/r" "NATS µs/r" "loadgen µs/r" resent
printf '%s\n' "${RESULTS[@]}"
MEDIAN=$(printf '%s\n' "${TAKEOVERS[@]}" | sort -n | awk '{ v[NR] = $1 } END {
    printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
printf 'takeover after kill -9 of the holder (lease_ttl %s, %s records/s of %s): %s s; median %s s\n' \
    "$LEASE_TTL" "$TAKEOVER_RATE" "$SERVICE" "${TAKEOVERS[*]}" "$MEDIAN"
printf '(all three nodes count the same %s records of %s sent during the kills)\n' \
    "$CHECKOUT" "$SERVICE"
