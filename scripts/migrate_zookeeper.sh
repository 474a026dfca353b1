#!/usr/bin/env bash
# Moves the cluster map to another ZooKeeper ensemble, by either method of the Pegasus procedure
# (reference/zk-migration.md), with no deployment system: you say how to stop and start a meta.
#
#   scripts/migrate_zookeeper.sh --method recover|copy -m META_LIST -c CONFIG_LIST --to-zk HOSTS \
#       --stop STOP_TEMPLATE --start START_TEMPLATE [-w SECONDS] [--dir DIR] [--overwrite]
#
#   --method     recover: rebuild the map on the new ZooKeeper from the replica servers;
#                copy: set the leader blind, copy the subtree (aerie zk-copy), restart on the new one
#   -m           the meta servers, host:port[,host:port...]
#   -c           each meta's TOML config file, in the order of -m (comma separated); the script sets
#                [zookeeper] hosts_list and [meta_server] recover_from_replica_server in them
#   --to-zk      the new ZooKeeper ensemble, host:port[,host:port...]
#   --stop       stops one meta; %a is its host:port, %h its host, %p its port, %c its config file
#   --start      starts one meta, e.g. 'systemctl start aerie-meta@%p' or 'ssh %h ...'
#   -w           recover: seconds to wait after stopping the metas so that every replica server's
#                lease runs out (default 30; [replication] fd_lease_seconds plus a margin)
#   --dir        where the listings are kept (default ./zk-migration-<time>)
#   --overwrite  copy: replace the subtree if the new ZooKeeper already has it
#
# Both methods save `ls -d`, `nodes -d` and `app NAME -d` before and after into --dir, and end
# when every table is fully healthy again. The old ZooKeeper's data is left alone; once satisfied,
# remove it with: zkCli.sh -server OLD_HOST deleteall <zookeeper_root>
# The aerie binary is $AERIE_BIN, else `aerie` on PATH, else the one built from this checkout.
set -euo pipefail

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

method="" metas="" configs="" to_zk="" stop_template="" start_template="" wait_seconds=30
dir="zk-migration-$(date +%Y%m%d-%H%M%S)" overwrite=false
while (($#)); do
    case "$1" in
        --method) method="$2"; shift 2 ;;
        -m) metas="$2"; shift 2 ;;
        -c) configs="$2"; shift 2 ;;
        --to-zk) to_zk="$2"; shift 2 ;;
        --stop) stop_template="$2"; shift 2 ;;
        --start) start_template="$2"; shift 2 ;;
        -w) wait_seconds="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        --overwrite) overwrite=true; shift ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ "$method" == recover || "$method" == copy ]] || { echo "--method must be recover or copy" >&2; usage; }
[[ -n "$metas" && -n "$configs" && -n "$to_zk" && -n "$stop_template" && -n "$start_template" ]] || usage

source "$(dirname "$0")/lib/env.sh"
find_aerie
IFS=',' read -r -a meta_list <<<"$metas"
IFS=',' read -r -a config_list <<<"$configs"
if ((${#meta_list[@]} != ${#config_list[@]})); then
    echo "-m names ${#meta_list[@]} metas but -c ${#config_list[@]} config files" >&2
    exit 2
fi
mkdir -p "$dir"

shell() { "${aerie[@]}" shell --meta "$metas" -e "$*"; }

# Runs a template for meta number $2.
run_template() {
    local template="$1" i="$2" addr="${meta_list[$2]}"
    local cmd="${template//%a/$addr}"
    cmd="${cmd//%h/${addr%:*}}"
    cmd="${cmd//%p/${addr##*:}}"
    cmd="${cmd//%c/${config_list[$i]}}"
    echo "   \$ $cmd"
    bash -c "$cmd"
}

# Sets KEY = VALUE in [SECTION] of a TOML file (adding the key or the section when missing).
toml_set() {
    local file="$1" section="$2" key="$3" value="$4" tmp
    tmp="$(mktemp)"
    awk -v section="[$section]" -v key="$key" -v value="$value" '
        function emit() { print key " = " value; done = 1 }
        /^[[:space:]]*\[/ {
            if (inside && !done) emit()
            inside = ($0 ~ "^[[:space:]]*\\[" substr(section, 2, length(section) - 2) "\\][[:space:]]*$")
        }
        inside && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" { if (!done) emit(); next }
        { print }
        END {
            if (inside && !done) emit()
            else if (!done) { print ""; print section; emit() }
        }' "$file" >"$tmp"
    cat "$tmp" >"$file"
    rm -f "$tmp"
}

set_configs() {
    local recover="$1"
    for config in "${config_list[@]}"; do
        toml_set "$config" zookeeper hosts_list "\"$to_zk\""
        toml_set "$config" meta_server recover_from_replica_server "$recover"
    done
    echo "   set [zookeeper] hosts_list = \"$to_zk\", recover_from_replica_server = $recover in ${configs}"
}

# Waits until a meta answers cluster_info naming the new ZooKeeper; prints the answer.
wait_meta_on_new_zk() {
    local i info
    for i in $(seq 1 120); do
        if info="$(shell cluster_info 2>/dev/null)" && grep -q "zookeeper_hosts .*: $to_zk\$" <<<"$info"; then
            echo "$info"
            return 0
        fi
        sleep 1
    done
    echo "no meta server answered on the new ZooKeeper within 120 s" >&2
    return 1
}

save_listings() {
    local when="$1" name
    shell "ls -d -o $dir/$when.ls" >/dev/null
    shell "nodes -d -o $dir/$when.nodes" >/dev/null
    for name in $(awk '$2 == "AVAILABLE" { print $3 }' "$dir/$when.ls"); do
        shell "app $name -d -o $dir/$when.app.$name" >/dev/null
    done
    echo "   listings saved as $dir/$when.*"
}

wait_fully_healthy() {
    local i
    for i in $(seq 1 600); do
        shell "ls -d -o $dir/check.ls" >/dev/null 2>&1 || { sleep 1; continue; }
        # [healthy_info] rows: app_id app_name partition_count fully_healthy unhealthy ...
        if awk '/^\[healthy_info\]/ { on = 1; next } /^\[/ { on = 0 } on && $1 ~ /^[0-9]+$/ && $3 != $4 { bad = 1 } END { exit bad }' "$dir/check.ls"; then
            echo "   every table is fully healthy"
            return 0
        fi
        ((i % 10 == 0)) && echo "   waiting for every table to be fully healthy ($i s)"
        sleep 1
    done
    echo "tables are still not fully healthy after 600 s; see 'ls -d'" >&2
    return 1
}

echo "== saving the cluster's listings"
shell "ls -o $dir/apps.list" >/dev/null
save_listings before
info="$(shell cluster_info)"
leader="$(awk '$1 == "primary_meta_server" { print $3 }' <<<"$info")"
root="$(awk '$1 == "zookeeper_root" { print $3 }' <<<"$info")"
from_zk="$(awk '$1 == "zookeeper_hosts" { print $3 }' <<<"$info")"
echo "   leader $leader, cluster map at $root on ZooKeeper $from_zk"
[[ -n "$root" && -n "$from_zk" ]] || { echo "the meta servers do not run on ZooKeeper" >&2; exit 1; }
leader_index=""
for i in "${!meta_list[@]}"; do [[ "${meta_list[$i]}" == "$leader" ]] && leader_index="$i"; done
[[ -n "$leader_index" ]] || { echo "the leader $leader is not in -m $metas" >&2; exit 1; }
# The operator's meta level is kept in the meta store: a recovery does not bring it back (the
# replica servers do not know it) and a copy carries "blind" along. It is set again at the end.
level_before=$(shell "get_meta_level" | sed -n 's/^current meta level is fl_//p' | head -n 1)
level_before=${level_before:-steady}
echo "   meta level $level_before"

if [[ "$method" == recover ]]; then
    shell "nodes -d -o $dir/nodes.list" >/dev/null
    # (as Pegasus's `grep ALIVE`, without matching UNALIVE)
    awk '$2 == "ALIVE" { print $1 }' "$dir/nodes.list" >"$dir/recover_node_list"
    echo "   $(wc -l <"$dir/recover_node_list") alive replica servers in $dir/recover_node_list"

    echo "== stopping every meta server"
    for i in "${!meta_list[@]}"; do run_template "$stop_template" "$i"; done
    echo "== waiting ${wait_seconds} s for the replica servers' leases to run out"
    sleep "$wait_seconds"

    echo "== pointing the metas at $to_zk in recovery mode, starting ${meta_list[$leader_index]}"
    set_configs true
    run_template "$start_template" "$leader_index"
    wait_meta_on_new_zk >/dev/null

    echo "== recover -f $dir/recover_node_list"
    shell "recover -f $dir/recover_node_list" | tee "$dir/recover.out"
    grep -q "Recover result: ERR_OK" "$dir/recover.out"

    echo "== leaving recovery mode: restarting ${meta_list[$leader_index]}, starting the others"
    set_configs false
    run_template "$stop_template" "$leader_index"
    run_template "$start_template" "$leader_index"
else
    echo "== stopping the meta servers that do not lead"
    for i in "${!meta_list[@]}"; do
        [[ "$i" == "$leader_index" ]] || run_template "$stop_template" "$i"
    done
    echo "== set_meta_level blind on $leader: no change of the cluster map from now on"
    shell "set_meta_level blind"
    echo "== copying $root from $from_zk to $to_zk"
    copy_flags=()
    $overwrite && copy_flags+=(--overwrite)
    "${aerie[@]}" zk-copy --from "$from_zk" --to "$to_zk" --path "$root" "${copy_flags[@]}" | tee "$dir/zk-copy.out"

    echo "== pointing the metas at $to_zk, restarting $leader"
    set_configs false
    run_template "$stop_template" "$leader_index"
    run_template "$start_template" "$leader_index"
fi

wait_meta_on_new_zk >/dev/null
echo "== set_meta_level $level_before, as before the migration"
shell "set_meta_level $level_before"
for i in "${!meta_list[@]}"; do
    [[ "$i" == "$leader_index" ]] || run_template "$start_template" "$i"
done
echo "== waiting for every table to be fully healthy"
wait_fully_healthy
save_listings after
echo "== done: the cluster map is on $to_zk under $root"
echo "   the old data on $from_zk stays until you remove it: zkCli.sh -server ${from_zk%%,*} deleteall $root"
