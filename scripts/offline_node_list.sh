#!/usr/bin/env bash
# Takes a list of replica servers out of service, one at a time, the way Pegasus's
# pegasus_offline_node_list.sh does, with no deployment system: you say how to stop a server.
#
#   scripts/offline_node_list.sh -m META_LIST -n NODE_LIST [-s STOP_TEMPLATE] [-w SECONDS] [--check]
#
#   -m  meta servers, host:port[,host:port...]
#   -n  replica servers to take out, host:port[,host:port...]
#   -s  the command that stops one replica server; %h is its host, %p its port, %a host:port
#       (default: systemctl stop aerie-replica@%p, which needs to run on that host).
#       Over ssh:  -s 'ssh %h sudo systemctl stop aerie-replica@%p'
#   -w  how long to wait for a stopped server to be declared dead (default 120)
#   --check  only run the pre-flight checks
#
# What it does:
#   1. pre-flight checks for the whole list: enough alive nodes stay for every table's replica
#      count, and the meta will not freeze itself once they are stopped (if it would, it says which
#      option to lower; nothing is changed);
#   2. black-lists every listed node, so that no new replica lands on a node that leaves later;
#   3. for each node: `offline_node` empties it (primaries moved away, replicas copied elsewhere,
#      progress shown), the stop command stops it, the meta declares it dead, every table is still
#      fully healthy, and `remove_node` forgets it (no meta restart).
# The aerie binary is $AERIE_BIN, else `aerie` on PATH, else the one built from this checkout.
set -euo pipefail

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

metas="" nodes="" stop_template="systemctl stop aerie-replica@%p" wait_seconds=120 check_only=false
while (($#)); do
    case "$1" in
        -m) metas="$2"; shift 2 ;;
        -n) nodes="$2"; shift 2 ;;
        -s) stop_template="$2"; shift 2 ;;
        -w) wait_seconds="$2"; shift 2 ;;
        --check) check_only=true; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ -n "$metas" && -n "$nodes" ]] || usage

source "$(dirname "$0")/lib/env.sh"
find_aerie
shell() { "${aerie[@]}" shell --meta "$metas" -e "$*"; }

IFS=',' read -r -a node_list <<<"$nodes"
node_flags=()
for node in "${node_list[@]}"; do node_flags+=(-n "$node"); done

echo "== pre-flight checks for ${nodes}"
shell "offline_node --check ${node_flags[*]}"
$check_only && exit 0

echo "== black-listing ${nodes} for new replicas"
shell "remote_command -t meta-server meta.lb.assign_secondary_black_list ${nodes}"

for node in "${node_list[@]}"; do
    host="${node%:*}" port="${node##*:}"
    echo "== ${node}: emptying"
    shell "offline_node -n ${node}"
    stop="${stop_template//%h/$host}"
    stop="${stop//%p/$port}"
    stop="${stop//%a/$node}"
    echo "== ${node}: stopping: ${stop}"
    bash -c "$stop"
    echo "== ${node}: waiting until the meta declares it dead"
    deadline=$((SECONDS + wait_seconds))
    until shell "nodes -s unalive" | grep -q "^${node} "; do
        if ((SECONDS >= deadline)); then
            echo "${node} is still alive after ${wait_seconds} s; is the stop command right?" >&2
            exit 1
        fi
        sleep 1
    done
    echo "== ${node}: checking that every table is fully healthy"
    if shell "ls -d -j" | grep -Eq '"unhealthy": *"[1-9]'; then
        echo "some partitions are not fully healthy after stopping ${node}; look with 'ls -d'" >&2
        exit 1
    fi
    shell "remove_node -n ${node}"
done
echo "== done: ${nodes} are out of service"
