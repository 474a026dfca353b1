# Shared by the scripts: the build's cache location and the Debian packages the build needs.
# shellcheck shell=bash

# Builds are cached outside the clone (RocksDB's C++ takes ~10 minutes to compile from scratch).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/aerie/target}"

# Installs missing Debian packages: clang and libclang-dev (RocksDB's bindings are generated with
# bindgen, and its C++ is compiled with the system compiler), zookeeper for the tests, nftables
# for the fault tests that cut links between processes (they run as root), and systemd for
# systemd-analyze.
ensure_build_packages() {
    local missing=()
    command -v clang >/dev/null 2>&1 || missing+=(clang)
    dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
    # ZooKeeper (and its Java runtime) for the meta store tests; run as a plain process by
    # scripts/zookeeper.sh, never as a system service.
    [ -e /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
    command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || missing+=(nftables)
    # systemd-analyze checks the unit files in scripts/systemd (t49).
    command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
    # Prometheus and promtool: t54 runs every dashboard query and alert rule against a real
    # Prometheus (started as a plain process on a loopback port, never as a service).
    command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    echo "installing Debian packages: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" || {
        $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
    }
}

# The aerie binary for the operator scripts: $AERIE_BIN, else `aerie` on PATH, else the one built
# from this checkout (scripts/aerie). Sets the array `aerie`.
find_aerie() {
    if [[ -n "${AERIE_BIN:-}" ]]; then
        aerie=("$AERIE_BIN")
    elif command -v aerie >/dev/null 2>&1; then
        aerie=(aerie)
    else
        aerie=("$(dirname "${BASH_SOURCE[0]}")/../aerie")
    fi
}

# Prints the pid in FILE when that process is alive; fails when there is no file or no process.
live_pid_in() {
    [ -f "$1" ] || return 1
    local pid
    pid="$(cat "$1")"
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

# Sends PID SIGTERM and waits up to SECONDS for it to end, then SIGKILLs it. Fails when it had to
# be killed.
terminate_pid() {
    local pid=$1 deadline=$((SECONDS + $2))
    kill "$pid" 2>/dev/null || return 0
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    return 1
}
