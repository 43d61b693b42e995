# Finding and starting moto_server (the AWS emulator) for the ECS tests and `make demo-ecs`.
# Sourced; it defines functions only.
#
# moto is not packaged in Debian 12: it comes from the machine image (pip moto 5.2.1 in pyenv's
# Python). moto_server is a script whose first line names that Python, which also has boto3,
# so tests/aws/moto_env.py runs with it.

# moto_find: sets moto_bin (the moto_server script) and moto_py (its Python); returns 1 with
# the reason in moto_missing when there is none that works.
moto_find() {
    local shim interp
    moto_missing=
    shim=$(command -v moto_server 2>/dev/null) || {
        moto_missing="moto_server not found in PATH (the machine image's pip moto 5.2.1; not in Debian 12)"
        return 1
    }
    moto_bin=$shim
    # A pyenv shim runs whichever Python pyenv picks: take the script it stands for.
    if grep -q pyenv "$shim" 2>/dev/null && command -v pyenv >/dev/null; then
        moto_bin=$(pyenv which moto_server 2>/dev/null) || {
            moto_missing="moto_server is a pyenv shim, but no pyenv Python has it"
            return 1
        }
    fi
    interp=$(head -n1 "$moto_bin" | sed -n 's/^#! *//p')
    case $interp in
    */env\ *) moto_py=${interp#*/env } ;;
    "") moto_py=python3 ;;
    *) moto_py=$interp ;;
    esac
    "$moto_py" -c 'import boto3, moto' 2>/dev/null || {
        moto_missing="$moto_py (moto_server's Python) cannot import boto3 and moto"
        return 1
    }
}

# moto_start DIR: moto_server on a free loopback port with request authentication on (after the
# unchecked requests tests/aws/moto_env.py's setup spends) and every request recorded in
# DIR/moto.rec; log in DIR/moto.log. Sets moto_pid and moto_url; returns 1 when it does not
# answer within 30 s.
moto_start() {
    local dir=$1 port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    INITIAL_NO_AUTH_ACTION_COUNT=6 MOTO_ENABLE_RECORDING=1 MOTO_RECORDER_FILEPATH="$dir/moto.rec" \
        "$moto_bin" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    moto_pid=$!
    moto_url="http://127.0.0.1:$port"
    for _ in $(seq 1 150); do
        curl -sf -o /dev/null "$moto_url/moto-api/" && return 0
        kill -0 "$moto_pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "moto_server did not answer on $moto_url within 30s: $(tail -n 5 "$dir/moto.log")"
    return 1
}

# moto_proxy_start DIR: tests/aws/counts_proxy.py in front of moto (after moto_env.py's setup
# wrote DIR/env.json): the endpoint kanaria talks to. It adds to ECS task sets the counts moto
# lacks; everything else passes unchanged, signatures included. Sets proxy_pid and proxy_url;
# log in DIR/proxy.log.
moto_proxy_start() {
    local dir=$1 port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    "$moto_py" "$moto_here/counts_proxy.py" --port "$port" --moto "$moto_url" \
        --env "$dir/env.json" >"$dir/proxy.log" 2>&1 &
    proxy_pid=$!
    proxy_url="http://127.0.0.1:$port"
    for _ in $(seq 1 50); do
        curl -s -o /dev/null "$proxy_url/moto-api/" && return 0
        kill -0 "$proxy_pid" 2>/dev/null || break
        sleep 0.2
    done
    echo "the counts proxy did not answer on $proxy_url within 10s: $(tail -n 5 "$dir/proxy.log")"
    return 1
}

moto_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# moto_env ARGS...: tests/aws/moto_env.py with moto's Python. In the background, run
# "$moto_py" "$moto_here/moto_env.py" instead, so that $! is the Python process itself.
moto_env() {
    "$moto_py" "$moto_here/moto_env.py" "$@"
}
