#!/bin/sh
# browser.sh - the web console in headless Chromium (tests/browser.py over
# chromedriver): against the daemon and the fake Magento, with tasks done
# and dead from a watched directory and from HTTP push, one of them dead of
# a Magento message carrying `<img src=x onerror=alert(1)>`. Screenshots of
# every page go to tests/browser-artefacts/ (kept; look at them).
# Skips (77) without chromium, chromedriver or python3.
#
#   BROWSER_BENCH_TASKS=N   instead: fill a store with N tasks (mkstore
#                           --many) and print the pages' first render times
set -u

. "${top_srcdir:-.}/tests/daemon-lib.sh"
for c in chromium chromedriver python3; do
	command -v "$c" >/dev/null ||
		{ echo "$c not installed (Debian: chromium chromium-driver python3): skipped"; exit 77; }
done
lib_setup browser
MKSTORE="$top_builddir/tests/mkstore"
ART="$top_builddir/tests/browser-artefacts"
rm -rf "$ART"
mkdir -p "$ART"
lib_fake --orders 200 --products 20

PW='operator-password-7'
HASH=$(printf '%s\n' "$PW" | "$M2W" --hash-password) || exit 99
XSS='<img src=x onerror=alert(1)>'
W="$T/3pl"
mkdir -p "$W/incoming"

config() {
	cat >"$T/m2w.conf" <<EOF
[store]
path = $S
[magento]
base_url = $F
auth = token
token = test-token
timeout = 5s
[workers]
threads = 4
shutdown_grace = 2s
[log]
level = info
file = $T/m2w.log
[tracking]
max_attempts = 2
backoff_base = 100ms
[price]
max_attempts = 1
[watch "3pl"]
path = $W/incoming
type = tracking
settle = 200ms
[http]
enabled = yes
listen = 127.0.0.1
port = $HP
tokens = push-token
console = yes
console_users = ops:operator:$HASH
EOF
}

tries=0
while :; do
	tries=$((tries + 1))
	HP=$(lib_pick_port)
	config
	if [ -n "${BROWSER_BENCH_TASKS:-}" ] && [ $tries -eq 1 ]; then
		"$MKSTORE" "$S" --many "$BROWSER_BENCH_TASKS" || exit 99
		lib_q pause >/dev/null
	fi
	: >"$T/m2w.log"
	lib_start_http "$T/m2w.conf" && break
	[ $tries -lt 10 ] && grep -q "cannot listen" "$T/m2w.log" && continue
	echo "the daemon did not start"; cat "$T/m2w.log"; exit 99
done

run_browser() {
	M2W_URL=$H M2W_USER=ops M2W_PASSWORD=$PW QCTL=$QCTL STORE=$S \
	ARTEFACTS=$ART XSS=$XSS BENCH=$1 \
		python3 "$top_srcdir/tests/browser.py"
}

if [ -n "${BROWSER_BENCH_TASKS:-}" ]; then
	lib_q stats | head -20
	run_browser 1
	exit $?
fi

say "tasks: a 3PL file (done, rejected rows, unknown orders), price pushes"
{
	echo "order_number,tracking_number,carrier_code,title"
	i=1
	while [ $i -le 40 ]; do
		printf '%d,1ZBROWSER%04d,ups,UPS\n' $((1000000000 + i)) $i
		i=$((i + 1))
	done
	echo "1000000041,,ups,UPS"
	echo "2000000001,1ZNOORDER01,ups,UPS"
	echo "2000000002,1ZNOORDER02,dhl,DHL"
} >"$W/incoming/.shipments.csv.tmp"
mv "$W/incoming/.shipments.csv.tmp" "$W/incoming/shipments.csv"
jq -cn --arg x "$XSS" '[{type:"price",payload:{sku:$x,price:9.99}},
	{type:"price",payload:{sku:"NO-SUCH-SKU",price:1.5}},
	{type:"price",payload:{sku:"SKU-3",price:12.5}}]' >"$T/push.json"
code=$(curl -s -o "$T/out" -w '%{http_code}' -H 'Authorization: Bearer push-token' \
	-H 'Content-Type: application/json' --data-binary @"$T/push.json" "$H/v1/tasks")
is "$code" 202 "push: $(cat "$T/out")"
i=0
while [ $i -lt 150 ] && [ ! -e "$W/processed/shipments.csv" ]; do sleep 0.1; i=$((i + 1)); done
[ -e "$W/processed/shipments.csv" ] || fail "the 3PL file was not taken"
lib_wait_drained 60
lib_q stats
lib_q list --state dead

say "the console in Chromium"
run_browser 0
rc=$?
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || fail "browser.py: $rc checks failed"
ls "$ART"
[ "$fails" -eq 0 ]
