# shellcheck shell=bash
# One SeaweedFS (`weed mini`) on free 127.0.0.1 ports for a benchmark, with the flags of
# tests/src/seaweed.rs. Sourced by perfs/s3_puts.sh and perfs/search/migrate.sh.
#
#   weed_start DIR BUCKET LOG   starts it with its data in DIR/data, waits until the bucket
#                               answers (60 s at most); sets WEED_PID, S3_PORT, FILER,
#                               METRICS and exports the AWS_* variables PerOS reads
#   weed_stop                   stops it (safe to call twice)
# Needs $WEED (the weed binary) and python3.
WEED_PID=
weed_start() {
    local dir=$1 bucket=$2 log=$3 p
    mapfile -t p < <(python3 "$(dirname "${BASH_SOURCE[0]}")/puts.py" ports 11)
    S3_PORT=${p[6]}
    FILER=http://127.0.0.1:${p[4]}
    METRICS=http://127.0.0.1:${p[10]}/metrics
    mkdir -p "$dir/data"
    cat >"$dir/s3.json" <<JSON
{"identities":[{"name":"admin","credentials":[{"accessKey":"benchkey","secretKey":"benchsecret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
    export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT AWS_ACCESS_KEY_ID=benchkey \
        AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
    "$WEED" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
        -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
        -s3.config="$dir/s3.json" -bucket="$bucket" \
        -master.port="${p[0]}" -master.port.grpc="${p[1]}" -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" \
        -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" -s3.port="$S3_PORT" -s3.port.grpc="${p[7]}" \
        -admin.port="${p[8]}" -admin.port.grpc="${p[9]}" -metricsPort="${p[10]}" \
        </dev/null >"$log" 2>&1 &
    WEED_PID=$!
    for _ in $(seq 1 600); do
        kill -0 "$WEED_PID" 2>/dev/null || { echo "weed exited: $(tail -5 "$log")" >&2; return 1; }
        if curl -sf -H 'Accept: application/json' "$FILER/buckets/$bucket/" >/dev/null &&
            curl -sf "$METRICS" >/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "SeaweedFS not ready in 60 s (log: $log)" >&2
    return 1
}
weed_stop() {
    if [ -n "$WEED_PID" ]; then
        kill "$WEED_PID" 2>/dev/null
        wait "$WEED_PID" 2>/dev/null
        WEED_PID=
    fi
}
