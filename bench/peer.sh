#!/usr/bin/env bash
# The agent against Fluent Bit on the same path, in the same run: one file of N JSON
# lines (as bench/agent.sh writes it) tailed into one real `bellwether serve`, by
#
#   agent      bellwether-agent --file, durable queue on, OTLP/gRPC to the collector;
#   fb-tuned   Fluent Bit: tail -> json parser -> record_modifier (the same identity)
#              -> opentelemetry output over OTLP/HTTP, File_Cache_Advise Off, Workers 2,
#              larger buffers;
#   fb-default the same with Fluent Bit's defaults;
#
# alternately, ROUNDS times (default 5). Each run counts from its start to the collector
# having counted every record of that run; it prints lines/s, CPU seconds and peak RSS of
# each run, then the medians and the agent's ratio to each Fluent Bit setting.
#
#   bench/agent.sh --peer PATH [N]     # or PEER=PATH bench/agent.sh [N]
#   ROUNDS=3 bench/peer.sh PATH 500000
#
# Fluent Bit's record_modifier puts the identity in the log body, not the resource, so
# the collector counts its records under the release unknown/unknown (and does no error
# work on them, which favours it slightly); they are counted there.
set -euo pipefail

PEER="${1:?usage: bench/peer.sh PATH_TO_FLUENT_BIT [N]}"
N="${2:-2000000}"
ROUNDS="${ROUNDS:-5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
[ -x "$PEER" ] || { echo "no Fluent Bit binary at $PEER" >&2; exit 2; }
if ldd "$PEER" | grep -q "not found"; then
    echo "Fluent Bit misses run-time libraries:" >&2
    ldd "$PEER" | grep "not found" >&2
    exit 2
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bellwether-peer.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cargo build --release --bins --manifest-path "$ROOT/Cargo.toml" >&2
fi
BIN="$TARGET/release"

# The same lines as bench/agent.sh: JSON, 5 % errors, a 5-line Java trace every 200.
awk -v n="$N" -v out="$WORK/app.log" -v counts="$WORK/counts" 'BEGIN {
    records = 0; i = 0
    while (i < n) {
        if (i % 200 == 199 && i + 5 < n) {
            printf "2026-11-26 12:00:01.305 ERROR 1 --- [nio-8080-exec-3] com.shop.Checkout : cart check failed for order %d\n", i > out
            print "java.lang.IllegalStateException: cart " i " is empty" > out
            print "\tat com.shop.Checkout.validate(Checkout.java:41)" > out
            print "\tat com.shop.Checkout.main(Checkout.java:33)" > out
            print "\tat java.base/java.lang.Thread.run(Thread.java:840)" > out
            i += 5; records++
            continue
        }
        level = (i % 20 == 7) ? "error" : "info"
        printf "{\"time\":\"2026-11-26T12:00:%02d.%03dZ\",\"level\":\"%s\",\"msg\":\"handled request %d for customer c-%d\",\"path\":\"/api/v1/orders/%d\",\"status\":%d,\"duration_ms\":%d,\"user\":{\"id\":\"u-%d\"}}\n", (i / 1000) % 60, i % 1000, level, i, i % 977, i, (level == "error") ? 500 : 200, i % 97, i % 31 > out
        i++; records++
    }
    print records > counts
}'
read -r AGENT_RECORDS < "$WORK/counts"
# Fluent Bit makes one record of every line (no multi-line join).
FB_RECORDS="$N"

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
OTLP_HTTP=$(addr otlp-http "$WORK/collector.log")
HTTP=$(addr http "$WORK/collector.log")
CLK=$(getconf CLK_TCK)

cpu_ticks() { # cpu_ticks PID
    local stat
    read -r -a stat < "/proc/$1/stat"
    echo $(( stat[13] + stat[14] ))
}
count() { # count SERVICE VERSION ENVIRONMENT: log records the collector counted
    local got
    got=$(curl -sf "http://$HTTP/api/v1/releases/$1/$2/stats?environment=$3" \
        | sed -n 's/.*"totals":{[^}]*"log_records":\([0-9]*\).*/\1/p' | head -1 || true)
    echo "${got:-0}"
}

# run_until PID WANT SERVICE VERSION ENVIRONMENT BASE: waits until the collector counted
# WANT more records than BASE, sampling the process; sets TICKS and HWM.
run_until() {
    local pid=$1 want=$2 got
    while :; do
        if [ -r "/proc/$pid/stat" ]; then
            TICKS=$(cpu_ticks "$pid")
            HWM=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
        else
            echo "process $pid exited early" >&2; return 1
        fi
        got=$(count "$3" "$4" "$5")
        [ $(( got - $6 )) -ge "$want" ] && return 0
        sleep 0.2
    done
}

RESULTS="$WORK/results"
: > "$RESULTS"
record() { # record KIND START END RECORDS
    awk -v kind="$1" -v start="$2" -v end="$3" -v n="$N" -v ticks="$TICKS" -v clk="$CLK" \
        -v hwm="$HWM" -v c0="$COLLECTOR0" -v c1="$(cpu_ticks "$COLLECTOR")" 'BEGIN {
        secs = end - start
        printf "%s %.0f %.2f %.1f %.2f\n", kind, n / secs, ticks / clk, hwm / 1024, (c1 - c0) / clk
    }' | tee -a "$RESULTS" | awk '{ printf "  %-10s %9s lines/s  agent/peer CPU %6s s  peak RSS %6s MiB  collector CPU %6s s\n", $1, $2, $3, $4, $5 }'
}

run_agent() { # run_agent ROUND
    COLLECTOR0=$(cpu_ticks "$COLLECTOR")
    local start end pid
    start=$(date +%s.%N)
    BELLWETHER_LOG=warn "$BIN/bellwether-agent" --service bench --version "r$1" \
        --environment bench --instance-id "bench-$1" --collector "http://$GRPC" \
        --data-dir "$WORK/agent-$1" --otlp-grpc-addr off --otlp-http-addr off \
        --admin-addr off --file "$WORK/app.log" ${AGENT_ARGS:-} 2> "$WORK/agent-$1.log" &
    pid=$!
    PIDS+=("$pid")
    run_until "$pid" "$AGENT_RECORDS" bench "r$1" bench 0
    end=$(date +%s.%N)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    record agent "$start" "$end"
}

run_fluent_bit() { # run_fluent_bit KIND ROUND (KIND: fb-tuned | fb-default)
    local dir="$WORK/$1-$2" start end pid base tuned_input="" tuned_output="" tuned_service=""
    mkdir -p "$dir"
    printf '[PARSER]\n    Name json\n    Format json\n' > "$dir/parsers.conf"
    if [ "$1" = fb-tuned ]; then
        tuned_service="    storage.max_chunks_up 256"
        tuned_input=$'    File_Cache_Advise Off\n    Buffer_Chunk_Size 256k\n    Buffer_Max_Size 1m\n    Mem_Buf_Limit 256m'
        tuned_output="    Workers 2"
    fi
    cat > "$dir/fluent-bit.conf" <<EOF
[SERVICE]
    Flush 1
    Log_Level error
    Parsers_File $dir/parsers.conf
$tuned_service
[INPUT]
    Name tail
    Tag app
    Path $WORK/app.log
    Read_From_Head true
    DB $dir/fb.db
    Parser json
$tuned_input
[FILTER]
    Name record_modifier
    Match app
    Record service.name fb-svc
    Record service.version 1.0.0
    Record deployment.environment.name bench
[OUTPUT]
    Name opentelemetry
    Match app
    Host ${OTLP_HTTP%:*}
    Port ${OTLP_HTTP##*:}
    Logs_uri /v1/logs
    Tls Off
$tuned_output
EOF
    base=$(count unknown unknown unknown)
    COLLECTOR0=$(cpu_ticks "$COLLECTOR")
    start=$(date +%s.%N)
    "$PEER" -c "$dir/fluent-bit.conf" > "$dir/out.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    if ! run_until "$pid" "$FB_RECORDS" unknown unknown unknown "$base"; then
        cat "$dir/out.log" >&2; exit 1
    fi
    end=$(date +%s.%N)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    record "$1" "$start" "$end"
}

echo "$N lines ($(( $(stat -c %s "$WORK/app.log") / 1048576 )) MiB), $ROUNDS alternating rounds on $(nproc) cores; Fluent Bit: $("$PEER" --version 2>/dev/null | head -1)"
for round in $(seq "$ROUNDS"); do
    echo "round $round"
    run_agent "$round"
    run_fluent_bit fb-tuned "$round"
    run_fluent_bit fb-default "$round"
done

echo
awk '
function median(kind, field,   n, i, j, t, v) {
    n = 0
    for (i = 1; i <= rows; i++) if (k[i] == kind) v[++n] = f[i, field]
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
{ rows++; k[rows] = $1; for (i = 2; i <= NF; i++) f[rows, i] = $i }
END {
    printf "%-11s %12s %12s %14s %15s\n", "median of", "lines/s", "CPU s", "peak RSS MiB", "collector CPU s"
    split("agent fb-tuned fb-default", kinds, " ")
    for (i = 1; i <= 3; i++)
        printf "%-11s %12.0f %12.2f %14.1f %15.2f\n", kinds[i], median(kinds[i], 2), median(kinds[i], 3), median(kinds[i], 4), median(kinds[i], 5)
    printf "agent / fb-tuned   %.2fx lines/s\n", median("agent", 2) / median("fb-tuned", 2)
    printf "agent / fb-default %.2fx lines/s\n", median("agent", 2) / median("fb-default", 2)
}' "$RESULTS"
