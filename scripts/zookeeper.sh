#!/usr/bin/env bash
# Runs Debian's ZooKeeper (apt-get install -y zookeeper) as a plain process on a loopback port with
# its own data dir: no systemd, no root. Used by the tests, CI and the docs.
#
#   scripts/zookeeper.sh start  [--port 2181] [--dir /tmp/aerie-zk-2181]
#   scripts/zookeeper.sh stop   [--port 2181] [--dir ...]
#   scripts/zookeeper.sh status [--port 2181] [--dir ...]
#
# `start` returns once the server answers `ruok` with `imok` (at most 30 s), and is a no-op when it
# already runs. Its log is <dir>/zookeeper.log; its pid is in <dir>/zookeeper.pid.
set -euo pipefail

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

action="${1:-}"
[ -n "$action" ] || usage
shift
port=2181
dir=""
while (($#)); do
    case "$1" in
        --port) port="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        *) echo "zookeeper.sh: unknown argument '$1'" >&2; usage ;;
    esac
done
dir="${dir:-/tmp/aerie-zk-$port}"
pidfile="$dir/zookeeper.pid"

ruok() {
    # The four-letter word check, over bash's /dev/tcp (no nc needed).
    { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
    printf 'ruok' >&3
    local answer
    answer="$(timeout 2 cat <&3 2>/dev/null || true)"
    exec 3>&- 3<&-
    [ "$answer" = "imok" ]
}

source "$(dirname "$0")/lib/env.sh"
running_pid() { live_pid_in "$pidfile"; }

start() {
    if pid="$(running_pid)"; then
        echo "zookeeper already running on 127.0.0.1:$port (pid $pid, dir $dir)"
        return 0
    fi
    if [ ! -e /usr/share/java/zookeeper.jar ]; then
        echo "zookeeper.sh: ZooKeeper is not installed; run: apt-get install -y zookeeper" >&2
        exit 1
    fi
    mkdir -p "$dir/data"
    cat >"$dir/zoo.cfg" <<CFG
tickTime=500
minSessionTimeout=1000
maxSessionTimeout=60000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,srvr
CFG
    local classpath
    classpath="/etc/zookeeper/conf:$(ls /usr/share/java/*.jar | tr '\n' ':')"
    nohup java -Xmx256m -cp "$classpath" -Dzookeeper.log.dir="$dir" -Dzookeeper.root.logger=INFO,CONSOLE \
        org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" >"$dir/zookeeper.log" 2>&1 &
    echo $! >"$pidfile"
    for _ in $(seq 1 150); do
        if ruok; then
            echo "zookeeper running on 127.0.0.1:$port (pid $(cat "$pidfile"), dir $dir)"
            return 0
        fi
        if ! running_pid >/dev/null; then
            echo "zookeeper.sh: ZooKeeper exited during start; its log:" >&2
            tail -20 "$dir/zookeeper.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "zookeeper.sh: ZooKeeper did not answer ruok on 127.0.0.1:$port within 30 s" >&2
    exit 1
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        echo "zookeeper not running on 127.0.0.1:$port (dir $dir)"
        rm -f "$pidfile"
        return 0
    fi
    if terminate_pid "$pid" 10; then
        echo "zookeeper stopped (pid $pid)"
    else
        echo "zookeeper killed after 10 s (pid $pid)"
    fi
    rm -f "$pidfile"
}

status() {
    if ruok; then
        echo "zookeeper on 127.0.0.1:$port: imok${pid:+ (pid $pid)}"
    else
        echo "zookeeper on 127.0.0.1:$port: not answering"
        return 1
    fi
}

case "$action" in
    start) start ;;
    stop) stop ;;
    status) pid="$(running_pid || true)"; status ;;
    *) usage ;;
esac
