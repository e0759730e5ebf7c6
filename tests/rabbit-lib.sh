# rabbit-lib.sh - a private RabbitMQ for a test (sourced after
# daemon-lib.sh and lib_setup): the Debian rabbitmq-server on 127.0.0.1,
# its own node name, free ports and files under $T/rmq.
#
#   rabbit_start [PLUGIN...]  starts it (60 s at most) or exits 77 with
#                             the reason; sets $URL, installs the trap
#   ctl ARGS                  rabbitmqctl on that node
#   queue_len QUEUE           messages in a queue
#   PUB                       tools/bench/amqp-pub
RMQ=/usr/lib/rabbitmq/bin
PUB="$top_builddir/tools/bench/amqp-pub"

"$M2W" --version | grep -q 'amqp=yes' ||
	{ echo "m2worker built without AMQP: skipped"; exit 77; }
[ -x "$RMQ/rabbitmq-server" ] ||
	{ echo "rabbitmq-server not installed: skipped"; exit 77; }
[ -x "$PUB" ] || { echo "tools/bench/amqp-pub not built"; exit 99; }

rmq_env() {
	env HOME="$B" RABBITMQ_NODENAME="m2wtest$BP@localhost" \
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$BP \
		RABBITMQ_DIST_PORT=$DP ERL_EPMD_PORT=$EP \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
		RABBITMQ_MNESIA_BASE="$B/mnesia" RABBITMQ_LOG_BASE="$B/log" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$B/plugins" \
		RABBITMQ_PID_FILE="$B/pid" RABBITMQ_CONFIG_FILE="$B/rabbitmq" \
		RABBITMQ_ADVANCED_CONFIG_FILE="$B/advanced.config" "$@"
}
ctl() { rmq_env "$RMQ/rabbitmqctl" -n "m2wtest$BP@localhost" "$@"; }
broker_up() { # 60 s at most (await_startup fails at once while the node
	# is not registered yet)
	# in its own folder: a crashing node writes erl_crash.dump and
	# MnesiaCore.* into its working directory
	(cd "$B" && ERL_CRASH_DUMP="$B/erl_crash.dump" \
		rmq_env "$RMQ/rabbitmq-server" >>"$B/server.out" 2>&1) &
	_i=0
	until ctl await_startup --timeout 10 >/dev/null 2>&1; do
		_i=$((_i + 1))
		[ $_i -gt 120 ] && return 1
		sleep 0.5
	done
}
broker_stop() { ctl stop >/dev/null 2>&1; }
queue_len() { ctl list_queues name messages 2>/dev/null | awk -v q="$1" '$1 == q { print $2 }'; }

rabbit_start() {
	B="$T/rmq"
	mkdir -p "$B"
	if [ $# -gt 0 ]; then
		echo "[$(echo "$*" | tr ' ' ',')]." >"$B/plugins"
	else
		echo '[].' >"$B/plugins"
	fi
	: >"$B/rabbitmq.conf"
	trap 'broker_stop; pkill -f "ERL_EPMD_PORT=$EP" 2>/dev/null; lib_cleanup' EXIT INT TERM
	# a port picked free can be taken by a test running beside this one
	# before the broker binds it: new ports, up to 3 times
	for _try in 1 2 3; do
		BP=$(lib_pick_port); DP=$((BP + 1)); EP=$((BP + 2))
		broker_up && break
		broker_stop
		pkill -f "ERL_EPMD_PORT=$EP" 2>/dev/null
		rm -rf "$B/mnesia"
		[ $_try = 3 ] && { echo "rabbitmq-server does not start here: skipped"; tail -5 "$B/server.out"; exit 77; }
	done
	URL="amqp://127.0.0.1:$BP"
}
