#!/usr/bin/env bash
# End-to-end throughput of the agent, release build, on this machine, in two phases
# against one real `bellwether serve`:
#
# 1. File: N lines (~200-byte JSON, 5 % errors, one Java stack trace of 5 lines per 200
#    lines) are written to a file, then a `bellwether-agent --file` tails it (release 1).
# 2. OTLP: N records with the same content are emitted through the OpenTelemetry SDK
#    (batch log processor, OTLP/gRPC exporter; `tests/examples/otlp_sdk_load.rs`) to a
#    fresh agent's OTLP port (release 2, so the collector counts them apart).
#
# Each phase reports throughput from its start (agent start; generator start) to the
# collector having counted every record, agent and collector CPU seconds, the agent's
# peak RSS and bytes written to its data dir; phase 2 also the generator's CPU seconds,
# which it spends on the same cores.
#
#   bench/agent.sh            # N = 2,000,000
#   bench/agent.sh 200000     # smaller
#   bench/agent.sh --peer PATH [N]   # the file phase against Fluent Bit (bench/peer.sh)
#   PEER=PATH bench/agent.sh [N]
set -euo pipefail

if [ "${1:-}" = "--peer" ]; then
    PEER="${2:?--peer needs the path of a Fluent Bit binary}"
    shift 2
fi
if [ -n "${PEER:-}" ]; then
    exec "$(dirname "$0")/peer.sh" "$PEER" "$@"
fi

N="${1:-2000000}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bellwether-bench.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# AGENT_ARGS adds flags to the agents' command lines (e.g. AGENT_ARGS="--compression none").
# LOAD_ARGS adds flags to the OTLP load generator's (e.g. LOAD_ARGS="--instances 4": that
# many SDK pipelines, each with one export in flight, instead of one).
# BENCH_FILE_ONLY=1 stops after the file phase.
# BENCH_NO_BUILD=1 uses the release binaries already in the target directory.
if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cargo build --release --bins --manifest-path "$ROOT/Cargo.toml" >&2
    cargo build --release -p bellwether-e2e --example otlp_sdk_load \
        --manifest-path "$ROOT/Cargo.toml" >&2
fi
BIN="$TARGET/release"

# Lines and the records they make (a trace's 5 lines join into its log line's record).
awk -v n="$N" -v out="$WORK/app.log" -v counts="$WORK/counts" 'BEGIN {
    records = 0; errors = 0; i = 0
    while (i < n) {
        if (i % 200 == 199 && i + 5 < n) {
            printf "2026-11-26 12:00:01.305 ERROR 1 --- [nio-8080-exec-3] com.shop.Checkout : cart check failed for order %d\n", i > out
            print "java.lang.IllegalStateException: cart " i " is empty" > out
            print "\tat com.shop.Checkout.validate(Checkout.java:41)" > out
            print "\tat com.shop.Checkout.main(Checkout.java:33)" > out
            print "\tat java.base/java.lang.Thread.run(Thread.java:840)" > out
            i += 5; records++; errors++
            continue
        }
        level = (i % 20 == 7) ? "error" : "info"
        if (level == "error") errors++
        printf "{\"time\":\"2026-11-26T12:00:%02d.%03dZ\",\"level\":\"%s\",\"msg\":\"handled request %d for customer c-%d\",\"path\":\"/api/v1/orders/%d\",\"status\":%d,\"duration_ms\":%d,\"user\":{\"id\":\"u-%d\"}}\n", (i / 1000) % 60, i % 1000, level, i, i % 977, i, (level == "error") ? 500 : 200, i % 97, i % 31 > out
        i++; records++
    }
    print records, errors > counts
}'
read -r RECORDS ERRORS < "$WORK/counts"
BYTES=$(stat -c %s "$WORK/app.log")

"$BIN/bellwether" serve --data-dir "$WORK/collector" --otlp-grpc-addr 127.0.0.1:0 \
    --otlp-http-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 2> "$WORK/collector.log" &
COLLECTOR=$!
PIDS+=("$COLLECTOR")
addr() { # addr KIND LOGFILE
    for _ in $(seq 300); do
        a=$(sed -n "s/.*listening kind=$1 addr=\([0-9.:]*\).*/\1/p" "$2" | head -1)
        [ -n "$a" ] && { echo "$a"; return; }
        sleep 0.1
    done
    echo "no $1 listener in $2" >&2; exit 1
}
GRPC=$(addr otlp-grpc "$WORK/collector.log")
HTTP=$(addr http "$WORK/collector.log")

cpu_ticks() { # cpu_ticks PID: user + system clock ticks so far
    local stat
    read -r -a stat < "/proc/$1/stat"
    echo $(( stat[13] + stat[14] ))
}
total() { # total VERSION FIELD: a count of release bench/VERSION, empty while unknown
    curl -sf "http://$HTTP/api/v1/releases/bench/$1/stats?environment=bench" \
        | sed -n "s/.*\"totals\":{[^}]*\"$2\":\([0-9]*\).*/\1/p" | head -1 || true
}
COLLECTOR_TICKS0=$(cpu_ticks "$COLLECTOR")
START=$(date +%s.%N)
BELLWETHER_LOG=warn "$BIN/bellwether-agent" --service bench --version 1 --environment bench \
    --instance-id bench-1 --collector "http://$GRPC" --data-dir "$WORK/agent" \
    --otlp-grpc-addr off --otlp-http-addr off --admin-addr off \
    --file "$WORK/app.log" ${AGENT_ARGS:-} 2> "$WORK/agent.log" &
AGENT=$!
PIDS+=("$AGENT")

# Polls the collector; samples the agent's CPU and memory while it runs.
CLK=$(getconf CLK_TCK)
while :; do
    got=$(total 1 log_records)
    if [ -r "/proc/$AGENT/stat" ]; then
        TICKS=$(cpu_ticks "$AGENT")
        HWM=$(awk '/VmHWM/ {print $2}' "/proc/$AGENT/status")
        WRITE=$(awk '/^write_bytes/ {print $2}' "/proc/$AGENT/io" 2>/dev/null || echo 0)
    else
        echo "agent exited:" >&2; cat "$WORK/agent.log" >&2; exit 1
    fi
    [ "${got:-0}" -ge "$RECORDS" ] && break
    sleep 0.2
done
END=$(date +%s.%N)
COLLECTOR_TICKS=$(( $(cpu_ticks "$COLLECTOR") - COLLECTOR_TICKS0 ))
ERRS=$(total 1 error_logs)
DATA=$(du -sb "$WORK/agent" | cut -f1)

awk -v n="$N" -v bytes="$BYTES" -v records="$RECORDS" -v got="$got" -v errors="$ERRORS" \
    -v errs="$ERRS" -v start="$START" -v end="$END" -v ticks="$TICKS" -v clk="$CLK" \
    -v cticks="$COLLECTOR_TICKS" -v hwm="$HWM" -v write="$WRITE" -v data="$DATA" 'BEGIN {
    secs = end - start
    printf "%-34s %s\n", "metric", "value"
    printf "%-34s %d lines, %.1f MiB, %d records\n", "input", n, bytes / 1048576, records
    printf "%-34s %d / %d (errors %d / %d)\n", "records counted by the collector", got, records, errs, errors
    printf "%-34s %.2f\n", "wall seconds (start to counted)", secs
    printf "%-34s %.0f\n", "lines/s end to end", n / secs
    printf "%-34s %.0f\n", "records/s end to end", records / secs
    printf "%-34s %.2f\n", "agent CPU seconds", ticks / clk
    printf "%-34s %.1f\n", "agent CPU microseconds per line", ticks / clk / n * 1e6
    printf "%-34s %.2f\n", "collector CPU seconds", cticks / clk
    printf "%-34s %.1f\n", "agent peak RSS (VmHWM), MiB", hwm / 1024
    printf "%-34s %.1f\n", "agent storage writes (io), MiB", write / 1048576
    printf "%-34s %.1f\n", "agent data dir size at end, MiB", data / 1048576
}'

[ -n "${BENCH_FILE_ONLY:-}" ] && exit 0

# Phase 2: the same volume through the OpenTelemetry SDK to a fresh agent's OTLP port.
# The first agent has nothing left to do; stop it so that it leaves the cores alone.
kill "$AGENT"
wait "$AGENT" 2>/dev/null || true
BELLWETHER_LOG=warn,bellwether_agent::run=info "$BIN/bellwether-agent" --service bench \
    --version 2 --environment bench --instance-id bench-2 --collector "http://$GRPC" \
    --data-dir "$WORK/agent-otlp" --otlp-grpc-addr 127.0.0.1:0 --otlp-http-addr off \
    --admin-addr 127.0.0.1:0 ${AGENT_ARGS:-} 2> "$WORK/agent-otlp.log" &
AGENT=$!
PIDS+=("$AGENT")
OTLP=$(addr otlp-grpc "$WORK/agent-otlp.log")
ADMIN=$(addr admin "$WORK/agent-otlp.log")

COLLECTOR_TICKS0=$(cpu_ticks "$COLLECTOR")
START=$(date +%s.%N)
"$BIN/examples/otlp_sdk_load" --endpoint "http://$OTLP" --records "$N" ${LOAD_ARGS:-} \
    > "$WORK/load.out" 2> "$WORK/load.log" &
LOAD=$!
PIDS+=("$LOAD")
load_finished() { # reaps the generator; fails the bench if it did not send everything
    local rc=0
    wait "$LOAD" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "load generator failed:" >&2; cat "$WORK/load.log" >&2; exit 1
    fi
    LOAD_DONE=$(date +%s)
}
LOAD_DONE=""
while :; do
    got=$(total 2 log_records)
    if [ -r "/proc/$AGENT/stat" ]; then
        TICKS=$(cpu_ticks "$AGENT")
        HWM=$(awk '/VmHWM/ {print $2}' "/proc/$AGENT/status")
        WRITE=$(awk '/^write_bytes/ {print $2}' "/proc/$AGENT/io" 2>/dev/null || echo 0)
    else
        echo "agent exited:" >&2; cat "$WORK/agent-otlp.log" >&2; exit 1
    fi
    [ -z "$LOAD_DONE" ] && ! kill -0 "$LOAD" 2>/dev/null && load_finished
    [ "${got:-0}" -ge "$N" ] && break
    # Once the generator has sent everything, the agent should deliver it promptly.
    if [ -n "$LOAD_DONE" ] && [ $(( $(date +%s) - LOAD_DONE )) -gt 120 ]; then
        echo "collector counted ${got:-0} of $N records 120 s after the generator ended" >&2
        exit 1
    fi
    sleep 0.2
done
END=$(date +%s.%N)
COLLECTOR_TICKS=$(( $(cpu_ticks "$COLLECTOR") - COLLECTOR_TICKS0 ))
[ -n "$LOAD_DONE" ] || load_finished
# The agent's side of each answer: hand-over to durable append, and where appends went.
AGENT_METRICS=$(curl -sf "http://$ADMIN/metrics")
metric() { awk -v m="bellwether_agent_$1" '$1 == m {print $2}' <<< "$AGENT_METRICS"; }
SUBMIT_SUM=$(metric submit_duration_seconds_sum)
SUBMITS=$(metric submit_duration_seconds_count)
STAGES=""
for stage in tag encode write commit; do
    STAGES="$STAGES $stage $(metric "append_stage_seconds_total{stage=\"$stage\"}")"
done
ERRS=$(total 2 error_logs)
DATA=$(du -sb "$WORK/agent-otlp" | cut -f1)
# records=N errors=E seconds=S records_per_second=R requests=Q export_ms_mean=M ...
LOAD_OUT=$(cat "$WORK/load.out")
field() { sed -n "s/.*\<$1=\([0-9.]*\).*/\1/p" <<< "$LOAD_OUT"; }

echo
awk -v n="$N" -v got="$got" -v errors="$(field errors)" -v errs="$ERRS" \
    -v start="$START" -v end="$END" -v lsecs="$(field seconds)" -v lticks="$(field cpu_ticks)" \
    -v ticks="$TICKS" -v clk="$CLK" -v cticks="$COLLECTOR_TICKS" -v hwm="$HWM" \
    -v write="$WRITE" -v data="$DATA" -v requests="$(field requests)" \
    -v export_ms="$(field export_ms_mean)" -v p50="$(field export_ms_p50)" \
    -v p99="$(field export_ms_p99)" -v submit_sum="$SUBMIT_SUM" -v submits="$SUBMITS" \
    -v stages="$STAGES" 'BEGIN {
    secs = end - start
    printf "%-34s %s\n", "metric", "value"
    printf "%-34s %d records via the OpenTelemetry SDK, OTLP/gRPC\n", "input", n
    printf "%-34s %d / %d (errors %d / %d)\n", "records counted by the collector", got, n, errs, errors
    printf "%-34s %.2f\n", "wall seconds (start to counted)", secs
    printf "%-34s %.0f\n", "records/s end to end", n / secs
    printf "%-34s %.2f\n", "generator wall seconds (to sent)", lsecs
    printf "%-34s %.2f\n", "generator CPU seconds", lticks / clk
    printf "%-34s %d, %.1f ms each on average\n", "generator OTLP export requests", requests, export_ms
    printf "%-34s p50 %.1f ms, p99 %.1f ms\n", "answer to a full export (2,048)", p50, p99
    printf "%-34s %.2f ms each on average\n", "  in the agent (hand-over to sync)", submit_sum * 1e3 / (submits ? submits : 1)
    k = split(stages, s, " ")
    for (i = 1; i < k; i += 2)
        printf "%-34s %.2f ms per request\n", "    " s[i], s[i + 1] * 1e3 / (submits ? submits : 1)
    printf "%-34s %.2f\n", "agent CPU seconds", ticks / clk
    printf "%-34s %.1f\n", "agent CPU microseconds per record", ticks / clk / n * 1e6
    printf "%-34s %.2f\n", "collector CPU seconds", cticks / clk
    printf "%-34s %.1f\n", "agent peak RSS (VmHWM), MiB", hwm / 1024
    printf "%-34s %.1f\n", "agent storage writes (io), MiB", write / 1048576
    printf "%-34s %.1f\n", "agent data dir size at end, MiB", data / 1048576
}'
