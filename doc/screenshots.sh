#!/bin/sh
# doc/screenshots.sh - makes doc/console-overview.png and
# doc/console-dead.png, the README's pictures of the web console: a few
# minutes of work against the fake Magento (20 ms a call, 3% of calls
# answered 503), tracking files dropped in a watched directory and price
# and stock pushes, some of them for orders and SKUs Magento does not know,
# then headless Chromium (tests/browser.py's driver) takes the pictures.
#
#   doc/screenshots.sh [MINUTES]     (default 4; from a built tree)
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
MIN=${1:-4}
M2W="$top/src/m2worker" QCTL="$top/tools/qctl/qctl"
FAKE="$top/tools/fake-magento/fake-magento"
D=$(mktemp -d "${TMPDIR:-/tmp}/m2w-shots.XXXXXX")
FP= DP=
trap '[ -n "$DP" ] && kill "$DP"; [ -n "$FP" ] && kill "$FP"; rm -rf "$D"' EXIT INT TERM

"$FAKE" --port 0 --port-file "$D/port" --orders 5000 --products 300 \
	--token t --latency-ms 20 --fail-rate 0.03 >"$D/fake.log" 2>&1 & FP=$!
while [ ! -s "$D/port" ]; do sleep 0.1; done
PW=screenshot
HASH=$(printf '%s\n' "$PW" | "$M2W" --hash-password)
HP=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000 + 20000 ))
mkdir -p "$D/3pl/incoming"
cat >"$D/m2w.conf" <<EOF
[store]
path = $D/store
[magento]
base_url = http://127.0.0.1:$(cat "$D/port")
auth = token
token = t
[workers]
threads = 4
[tracking]
max_attempts = 3
backoff_base = 2s
[price]
max_attempts = 2
backoff_base = 2s
[watch "3pl"]
path = $D/3pl/incoming
type = tracking
settle = 500ms
[log]
file = $D/m2w.log
[http]
enabled = yes
port = $HP
tokens = t
console = yes
console_users = ops:operator:$HASH
EOF
"$M2W" -c "$D/m2w.conf" & DP=$!
H="http://127.0.0.1:$HP"
until curl -sf "$H/healthz" >/dev/null; do sleep 0.2; done

end=$(( $(date +%s) + MIN * 60 ))
k=0
while [ "$(date +%s)" -lt "$end" ]; do
	k=$((k + 1))
	f="$D/3pl/incoming/$(date +%Y%m%d_%H%M%S).csv"
	{
		echo "order_number,tracking_number,carrier_code,title"
		j=0
		while [ $j -lt 300 ]; do
			printf '%d,1Z%06d%03d,ups,UPS\n' \
				$((1000000000 + (k * 300 + j) % 5000 + 1)) $k $j
			j=$((j + 1))
		done
		[ $((k % 3)) -eq 0 ] && printf '%d,1ZLOST%04d,dhl,DHL\n' $((2000000000 + k)) $k
		[ $((k % 4)) -eq 0 ] && echo "1000000007,,ups,UPS"
	} >"$f.part"
	mv "$f.part" "$f"
	jq -cn --argjson k "$k" '[range(0; 200) | {type: "stock",
		payload: {sku: ("SKU-\(. % 300 + 1)"), qty: (. + $k)}}] +
		[{type: "price", payload: {sku: "SKU-\($k % 300 + 1)", price: 19.99}}] +
		(if $k % 2 == 0 then [{type: "price", payload: {sku: "OLD-\($k % 5)", price: 5}}] else [] end)' |
		curl -s -o /dev/null -H 'Authorization: Bearer t' \
			-H 'Content-Type: application/json' --data-binary @- "$H/v1/tasks"
	sleep 15
done
sleep 5
M2W_URL=$H M2W_USER=ops M2W_PASSWORD=$PW QCTL=$QCTL STORE=$D/store \
ARTEFACTS=$D python3 - <<'PY'
import os, sys, time
sys.path.insert(0, "tests")
import browser as t
b = t.Browser()
try:
    t.login(b, os.environ["M2W_USER"], os.environ["M2W_PASSWORD"])
    b.ready("overview", 30)
    time.sleep(3)
    b.screenshot("console-overview")
    b.go("/ui/dead")
    b.ready("dead", 30)
    b.screenshot("console-dead")
finally:
    b.close()
PY
cp "$D/console-overview.png" "$D/console-dead.png" doc/
echo "doc/console-overview.png doc/console-dead.png"
