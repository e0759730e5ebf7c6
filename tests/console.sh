#!/bin/sh
# console.sh - the web console without a browser: the login (crypt(3)
# hashes, the login form's token, a wrong password), the session cookie's
# attributes, the security headers of every kind of response, redirects to
# the login without a session, 401 from the API, the CSRF token on every
# POST, the viewer role, each action against qctl (requeue, requeue and
# delete a group, retry-now, pause), the overview against `qctl stats
# --json`, idle sessions ending, logout, and the console off.
set -u

. "${top_srcdir:-.}/tests/daemon-lib.sh"
lib_setup console
MKSTORE="$top_builddir/tests/mkstore"
lib_fake --orders 100 --products 20

ALICE_PW='correct horse battery staple'
BOB_PW='viewer-password-1'
ALICE_HASH=$(printf '%s\n' "$ALICE_PW" | "$M2W" --hash-password) ||
	{ echo "--hash-password failed"; exit 99; }
BOB_HASH=$(printf '%s\n' "$BOB_PW" | "$M2W" --hash-password)
case "$ALICE_HASH" in '$6$'*) ;; *) fail "--hash-password: $ALICE_HASH" ;; esac
[ "$ALICE_HASH" != "$(printf '%s\n' "$ALICE_PW" | "$M2W" --hash-password)" ] ||
	fail "two hashes of one password are alike (no salt?)"

# config CONSOLE_LINES
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
threads = 2
shutdown_grace = 2s
[log]
level = info
file = $T/m2w.log
[http]
enabled = yes
listen = 127.0.0.1
port = $HP
tokens = push-token
$1
EOF
}

start() {
	tries=0
	while [ $tries -lt 10 ]; do
		tries=$((tries + 1))
		HP=$(lib_pick_port)
		config "$1"
		: >"$T/m2w.log"
		lib_start_http "$T/m2w.conf" && return 0
		grep -q "cannot listen" "$T/m2w.log" || break
	done
	echo "the daemon did not start"; cat "$T/m2w.log"; exit 99
}

stop() { kill "$DPID"; wait "$DPID"; DPID=; }

# req METHOD PATH [CURL ARGS...]: status in $code, headers in $T/h, body
# in $T/out
req() {
	_m=$1 _p=$2; shift 2
	code=$(curl -s -o "$T/out" -D "$T/h" -w '%{http_code}' -X "$_m" \
		"$@" "$H$_p")
}
hdr() { grep -i "^$1:" "$T/h" | head -1 | cut -d: -f2- | sed 's/^ //; s/\r$//'; }
# the security headers every console response carries
secure_headers() {
	case "$(hdr Content-Security-Policy)" in
	*"script-src 'self'"*"frame-ancestors 'none'"*) ;;
	*) fail "$1: CSP: '$(hdr Content-Security-Policy)'" ;;
	esac
	hdr Content-Security-Policy | grep -q "unsafe-inline" &&
		fail "$1: the CSP allows inline code"
	is "$(hdr X-Frame-Options)" DENY "$1: X-Frame-Options"
	is "$(hdr X-Content-Type-Options)" nosniff "$1: X-Content-Type-Options"
}

# the store: the deterministic tasks of mkstore, everything paused so the
# workers leave them be
"$MKSTORE" "$S" >/dev/null || { echo "mkstore failed"; exit 99; }
lib_q pause >/dev/null

CONSOLE="console = yes
console_users = alice:operator:$ALICE_HASH, bob:viewer:$BOB_HASH
console_idle = 3s"

say "config: console needs users; a plain password is refused"
HP=8480
config "console = yes"
run 1 "$M2W" --check-config -c "$T/m2w.conf"
errhas "console needs console_users"
config "console = yes
console_users = alice:operator:hunter2"
run 1 "$M2W" --check-config -c "$T/m2w.conf"
errhas "not a crypt(3) hash"
config "console = yes
console_users = alice:admin:$ALICE_HASH"
run 1 "$M2W" --check-config -c "$T/m2w.conf"
errhas "is not viewer or operator"
config "$CONSOLE"
run 0 "$M2W" --check-config -c "$T/m2w.conf"

start "$CONSOLE"
# task 4 was leased by mkstore, a process that is gone: the daemon handed
# it back at start (a leased task refused: qctl.sh, check_queue)
is "$(lib_q show 4 --json | jq -r .state)" ready "mkstore's lease after the start"
lib_q show 4 | grep -q "released at start" || fail "task 4's history lacks the release"

say "no session: pages redirect to the login, the API says 401"
for p in /ui/ /ui/tasks /ui/dead "/ui/task?id=2"; do
	req GET "$p"
	is "$code" 303 "GET $p without a session"
	case "$(hdr Location)" in
	/ui/login\?next=*) ;;
	*) fail "GET $p: Location '$(hdr Location)'" ;;
	esac
	secure_headers "GET $p"
done
req GET "/ui/task?id=2"
is "$(hdr Location)" "/ui/login?next=/ui/task%3Fid%3D2" "the redirect keeps the query"
req GET /ui
is "$code" 303 "GET /ui"
for p in me overview history tasks tasks/2 dead-groups; do
	req GET "/ui/api/$p"
	is "$code" 401 "GET /ui/api/$p without a session"
	secure_headers "GET /ui/api/$p"
done
req POST /ui/api/pause -H 'Content-Type: application/json' -d '{"type":null,"paused":false}'
is "$code" 401 "POST without a session"

say "the login page, the assets"
req GET /ui/login
is "$code" 200 "GET /ui/login"
secure_headers "GET /ui/login"
is "$(hdr Cache-Control)" no-store "login page: Cache-Control"
case "$(hdr Content-Type)" in text/html*) ;; *) fail "login: $(hdr Content-Type)" ;; esac
LOGIN_TOKEN=$(hdr Set-Cookie | sed -n 's/^m2w_login=\([0-9a-f]*\);.*/\1/p')
is "${#LOGIN_TOKEN}" 64 "the login token cookie"
hdr Set-Cookie | grep -q "SameSite=Strict" || fail "login cookie: $(hdr Set-Cookie)"
grep -q "<script src=\"/ui/static/app.js\"" "$T/out" || fail "login page has no app.js"
grep -qi "<script>" "$T/out" && fail "login page has an inline script"
req GET /ui/static/app.js
is "$code" 200 "GET app.js"
case "$(hdr Content-Type)" in text/javascript*) ;; *) fail "app.js: $(hdr Content-Type)" ;; esac
is "$(hdr Cache-Control)" no-cache "app.js: Cache-Control"
req GET /ui/static/app.css
is "$code" 200 "GET app.css"
grep -q "innerHTML\|insertAdjacentHTML\|document.write" "$T/out" &&
	fail "app.css?"
curl -s "$H/ui/static/app.js" | grep -q "innerHTML\|outerHTML\|insertAdjacentHTML\|document.write" &&
	fail "app.js writes HTML from strings"
req GET /ui/static/login.html
is "$code" 404 "pages are not assets"
req GET /ui/static/../static/app.js --path-as-is
is "$code" 404 "a path with .."
req GET /ui/nothing
is "$code" 404 "an unknown page"

# login USER PASSWORD [CURL ARGS...]: the session cookie in $SID
login() {
	_u=$1 _pw=$2; shift 2
	req POST /ui/api/login -H 'Content-Type: application/json' \
		-H "X-CSRF-Token: $LOGIN_TOKEN" -b "m2w_login=$LOGIN_TOKEN" \
		-d "{\"user\":\"$_u\",\"password\":\"$_pw\"}" "$@"
	SID=$(hdr Set-Cookie | sed -n 's/^m2w_session=\([0-9a-f]*\);.*/\1/p')
}

say "login: the form's token, wrong passwords, unknown users"
req POST /ui/api/login -H 'Content-Type: application/json' \
	-d "{\"user\":\"alice\",\"password\":\"$ALICE_PW\"}"
is "$code" 403 "login without the form's token"
req POST /ui/api/login -H 'Content-Type: application/json' \
	-H "X-CSRF-Token: $LOGIN_TOKEN" -b "m2w_login=0$LOGIN_TOKEN" \
	-d "{\"user\":\"alice\",\"password\":\"$ALICE_PW\"}"
is "$code" 403 "login with a token unlike the cookie's"
t0=$(date +%s%N)
login alice wrong
t1=$(date +%s%N)
is "$code" 401 "a wrong password"
is "$SID" "" "no session for a wrong password"
[ $(( (t1 - t0) / 1000000 )) -ge 900 ] || fail "a refused login answered at once"
login mallory "$ALICE_PW"
is "$code" 401 "an unknown user"
jq -e '.error == "wrong user or password"' "$T/out" >/dev/null ||
	fail "unknown user: $(cat "$T/out")"
grep -q 'console.login user=mallory result=refused' "$T/m2w.log" ||
	fail "a refused login is not logged"

say "login: the session cookie"
login alice "$ALICE_PW"
is "$code" 200 "alice logs in"
is "${#SID}" 64 "session cookie"
C=$(hdr Set-Cookie)
case "$C" in *HttpOnly*) ;; *) fail "session cookie not HttpOnly: $C" ;; esac
case "$C" in *SameSite=Strict*) ;; *) fail "session cookie not SameSite=Strict: $C" ;; esac
case "$C" in *Path=/ui/*) ;; *) fail "session cookie path: $C" ;; esac
case "$C" in *Secure*) fail "Secure over plain HTTP: $C" ;; esac
CSRF=$(jq -r .csrf "$T/out")
is "${#CSRF}" 64 "the CSRF token"
ASID=$SID
login alice "$ALICE_PW" -H 'X-Forwarded-Proto: https'
case "$(hdr Set-Cookie)" in *Secure*) ;; *) fail "no Secure behind TLS: $(hdr Set-Cookie)" ;; esac

A="-b m2w_session=$ASID"
say "with a session: pages and the API"
for p in /ui/ /ui/tasks /ui/dead "/ui/task?id=2"; do
	# shellcheck disable=SC2086
	req GET "$p" $A
	is "$code" 200 "GET $p with a session"
	secure_headers "GET $p"
	is "$(hdr Cache-Control)" no-store "GET $p: Cache-Control"
done
# shellcheck disable=SC2086
req GET /ui/api/me $A
jq -e '.user == "alice" and .role == "operator"' "$T/out" >/dev/null ||
	fail "me: $(cat "$T/out")"
is "$(jq -r .csrf "$T/out")" "$CSRF" "me gives the session's CSRF token"

say "the overview's counts are qctl's"
# shellcheck disable=SC2086
req GET /ui/api/overview $A
is "$code" 200 "overview"
is "$(hdr Content-Type)" application/json "overview: Content-Type"
jq -S '.stats.types | map({type, paused, counts})' "$T/out" >"$T/ui.json"
lib_q stats --json | jq -S '.types | map({type, paused, counts})' >"$T/qctl.json"
cmp -s "$T/ui.json" "$T/qctl.json" ||
	fail "overview != qctl stats: $(diff "$T/ui.json" "$T/qctl.json" | head -20)"
jq -e '.stats.paused_all == true and .breaker.state == "closed" and
	(.disk_free > 0) and .workers == 2 and (.history_since > 0)' \
	"$T/out" >/dev/null || fail "overview: $(head -c 600 "$T/out")"
# shellcheck disable=SC2086
req GET "/ui/api/history?range=day" $A
jq -e '(.done | length) == 1440 and (.p99_ms | length) == 1440 and
	.step_ms == 60000 and .done[0] == null and .done[-1] != null' \
	"$T/out" >/dev/null || fail "history: $(head -c 300 "$T/out")"

say "tasks, a task, dead-letter groups"
# shellcheck disable=SC2086
req GET "/ui/api/tasks?state=dead" $A
is "$(jq -c '[.tasks[].id]' "$T/out")" "[2,8]" "dead tasks"
# shellcheck disable=SC2086
req GET "/ui/api/tasks?state=dead&type=price&q=NOPE" $A
is "$(jq -c '[.tasks[].id]' "$T/out")" "[8]" "dead tasks filtered"
# shellcheck disable=SC2086
req GET "/ui/api/tasks?state=dead&limit=1" $A
NEXT=$(jq -r .next "$T/out")
# shellcheck disable=SC2086
req GET "/ui/api/tasks?state=dead&limit=1&after=$NEXT" $A
is "$(jq -c '[.tasks[].id]' "$T/out")" "[8]" "the second page"
# shellcheck disable=SC2086
req GET /ui/api/tasks/2 $A
jq -e '.id == 2 and .state == "dead" and (.payload | type) == "object" and
	(.history | length) == 1 and .history[0].http_status == 400 and
	(.history[0].message | test("does not allow a shipment"))' "$T/out" \
	>/dev/null || fail "task 2: $(head -c 600 "$T/out")"
# shellcheck disable=SC2086
req GET /ui/api/tasks/999 $A
is "$code" 404 "no task 999"
# shellcheck disable=SC2086
req GET /ui/api/dead-groups $A
jq -e '.scanned == 2 and (.groups | length) == 2 and
	(.groups | map(.count) | add) == 2' "$T/out" >/dev/null ||
	fail "dead groups: $(head -c 600 "$T/out")"
PRICE_ERR=$(jq -r '.groups[] | select(.type == "price") | .error' "$T/out")

# post PATH BODY [CURL ARGS...] as alice, with the CSRF token
post() {
	_p=$1 _b=$2; shift 2
	# shellcheck disable=SC2086
	req POST "$_p" $A -H 'Content-Type: application/json' \
		-H "X-CSRF-Token: $CSRF" -d "$_b" "$@"
}

say "every POST needs the CSRF token"
# shellcheck disable=SC2086
req POST /ui/api/pause $A -H 'Content-Type: application/json' \
	-d '{"type":"tracking","paused":false}'
is "$code" 403 "POST without the CSRF token"
# shellcheck disable=SC2086
req POST /ui/api/pause $A -H 'Content-Type: application/json' \
	-H "X-CSRF-Token: $LOGIN_TOKEN" -d '{"type":"tracking","paused":false}'
is "$code" 403 "POST with another token"
# shellcheck disable=SC2086
req POST /ui/api/requeue $A -H 'Content-Type: application/json' \
	-d '{"ids":[2]}'
is "$code" 403 "requeue without the CSRF token"
is "$(lib_q show 2 --json | jq -r .state)" dead "a refused requeue changed nothing"
# shellcheck disable=SC2086
req POST /ui/api/pause $A -H 'Content-Type: text/plain' \
	-H "X-CSRF-Token: $CSRF" -d '{"type":null,"paused":false}'
is "$code" 415 "POST text/plain"
head -c 70000 /dev/zero | tr '\0' 'x' >"$T/big"
post /ui/api/pause "@$T/big"
is "$code" 413 "POST of 70,000 bytes"

say "actions, checked with qctl"
post /ui/api/pause '{"type":null,"paused":false}'
is "$code" 200 "resume all"
post /ui/api/pause '{"type":"tracking","paused":true}'
is "$code" 200 "pause tracking"
lib_q stats --json | jq -e '.paused_all == false and
	(.types[] | select(.type == "tracking") | .paused)' >/dev/null ||
	fail "qctl does not see tracking paused: $(lib_q stats --json | jq -c '[.paused_all, .types]')"
post /ui/api/pause '{"type":null,"paused":true}'
lib_q stats --json | jq -e .paused_all >/dev/null || fail "pause all not seen"
post /ui/api/requeue '{"ids":[2]}'
is "$code" 200 "requeue task 2"
is "$(jq .count "$T/out")" 1 "requeue count"
is "$(lib_q show 2 --json | jq -r .state)" ready "task 2 after the requeue"
post /ui/api/requeue '{"ids":[5]}'
is "$code" 409 "requeue of a task that is not dead"
post /ui/api/requeue "$(jq -n --arg e "$PRICE_ERR" '{type:"price",error:$e,dry_run:true}')"
is "$(jq .count "$T/out")" 1 "requeue group, dry run"
is "$(lib_q show 8 --json | jq -r .state)" dead "a dry run changed nothing"
post /ui/api/requeue "$(jq -n --arg e "${PRICE_ERR%?}" '{type:"price",error:$e,dry_run:true}')"
is "$(jq .count "$T/out")" 0 "a group is its exact error"
post /ui/api/delete "$(jq -n --arg e "$PRICE_ERR" '{type:"price",error:$e}')"
is "$(jq .count "$T/out")" 1 "delete group"
run 1 "$QCTL" -d "$S" show 8
post /ui/api/retry-now '{"ids":[3]}'
is "$code" 200 "retry-now task 3"
is "$(lib_q show 3 --json | jq -r .state)" ready "task 3 after retry-now"
post /ui/api/delete '{"ids":[10]}'
is "$code" 200 "delete task 10"
for a in "user=alice action=requeue count=1 what=\"ids 2\"" \
	 "user=alice action=pause count=1 what=tracking" \
	 "user=alice action=delete count=1 what=\"dead type=price"; do
	grep -q "console.action $a" "$T/m2w.log" || fail "not logged: $a"
done

say "the viewer reads, and may not act"
login bob "$BOB_PW"
is "$code" 200 "bob logs in"
BSID=$SID
BCSRF=$(jq -r .csrf "$T/out")
req GET /ui/api/overview -b "m2w_session=$BSID"
is "$code" 200 "the viewer reads the overview"
req POST /ui/api/pause -b "m2w_session=$BSID" -H 'Content-Type: application/json' \
	-H "X-CSRF-Token: $BCSRF" -d '{"type":null,"paused":false}'
is "$code" 403 "the viewer may not resume"
jq -e '.error | test("viewer")' "$T/out" >/dev/null || fail "viewer: $(cat "$T/out")"
lib_q stats --json | jq -e .paused_all >/dev/null || fail "the viewer resumed"

say "logout; idle sessions end"
post /ui/api/logout '{}'
is "$code" 200 "logout"
# shellcheck disable=SC2086
req GET /ui/api/me $A
is "$code" 401 "after logout"
sleep 4
req GET /ui/api/me -b "m2w_session=$BSID"
is "$code" 401 "after console_idle"
stop

say "the console off"
start ""
req GET /ui/
is "$code" 404 "console = no"
req GET /ui/login
is "$code" 404 "console = no: login"
stop

[ "$fails" -eq 0 ]
