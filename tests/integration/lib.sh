# Shared by the integration tests: checks, free ports, and stopping what kanaria left running.

failures=0
passed=0

check() { # DESCRIPTION STATUS
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
    else
        echo "FAIL: $1"
        failures=$((failures + 1))
    fi
}

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Stop the HAProxy and the app instances a kanaria with this dataDir started: they run in
# their own sessions, on purpose, so they outlive kanaria; a test must not leave them behind.
stop_local_platform() { # DATA_DIR
    local d=$1 f pid
    for f in $(find "$d/local" -name '*.json' ! -name apps.json 2>/dev/null); do
        pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("pid", ""))' "$f" 2>/dev/null)
        [ -n "$pid" ] && kill -TERM -- "-$pid" 2>/dev/null; [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    for f in $(find "$d/local" -name haproxy.pid 2>/dev/null); do
        pid=$(head -n1 "$f")
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    return 0
}
