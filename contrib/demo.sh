#!/bin/sh
# contrib/demo.sh - runs m2worker on the bundled sample files against the
# bundled fake Magento and shows what happened. Run it from a built tree:
#
#   contrib/setup.sh && autoreconf -fi && ./configure && make -j2 && contrib/demo.sh
#
# Everything stays in a temporary directory (printed at the end): the store,
# the config, the daemon's log. Nothing leaves 127.0.0.1.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
M2W="$top/src/m2worker"
QCTL="$top/tools/qctl/qctl"
FAKE="$top/tools/fake-magento/fake-magento"
for b in "$M2W" "$QCTL" "$FAKE"; do
	[ -x "$b" ] || { echo "demo: $b is not built (run make first)" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "demo: jq is needed (contrib/setup.sh installs it)" >&2; exit 1; }

D=$(mktemp -d "${TMPDIR:-/tmp}/m2worker-demo.XXXXXX")
FAKE_PID= DPID=
trap '[ -n "$DPID" ] && kill "$DPID" 2>/dev/null; [ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null; true' EXIT INT TERM

"$FAKE" --port 0 --port-file "$D/port" --orders 20 --products 10 \
	--token demo-token --latency-ms 20 >"$D/fake.log" 2>&1 &
FAKE_PID=$!
i=0; while [ ! -s "$D/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
F="http://127.0.0.1:$(cat "$D/port")"

cat >"$D/m2worker.conf" <<CONF
[store]
path = $D/store
[magento]
base_url = $F
auth = token
token = demo-token
[workers]
threads = 4
[log]
file = $D/m2worker.log
[carriers]
DHL Express = dhl
CONF

q() { "$QCTL" -d "$D/store" "$@"; }
echo "== 1. the samples go into the store (contrib/samples/)"
for f in contrib/samples/2*.csv; do
	echo "-- qctl enqueue --type tracking $f"
	q enqueue --type tracking "$f" || true
done
echo "-- qctl enqueue --type stock contrib/samples/stock.csv"
q enqueue --type stock contrib/samples/stock.csv || true
echo "-- qctl enqueue --type price contrib/samples/price.csv"
q enqueue --type price contrib/samples/price.csv || true

echo
echo "== 2. m2worker works them off against the fake Magento ($F)"
"$M2W" -c "$D/m2worker.conf" & DPID=$!
i=0
while [ "$(q stats --json | jq '.totals | .ready + .scheduled + .leased + .waiting')" != 0 ] && [ $i -lt 300 ]; do
	sleep 0.1; i=$((i + 1))
done
kill -TERM "$DPID"; wait "$DPID" || true; DPID=

echo
echo "== 3. qctl stats"
q stats
echo
echo "== 4. the dead letters, with Magento's own words (qctl list --state dead)"
q list --state dead
echo
echo "== 5. what the fake Magento holds now: tracks per order (each exactly once)"
curl -s "$F/_fake/state" | jq -r '.orders | to_entries[] | "\(.key): " + ([.value.shipments[] | "shipment \(.id): " + ([.tracks[] | "\(.track_number) (\(.carrier_code))"] | join(", "))] | join("; "))'
echo
echo "== 6. the daemon's log ($D/m2worker.log), last lines"
tail -n 8 "$D/m2worker.log"
echo
echo "store, config and log kept in $D (qctl -d $D/store ...)"
