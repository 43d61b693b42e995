# Starting kanaria's fake API server (tests/fakes/kube_fake.py) for the integration tests and
# the demo, sourced by both:
#
#     kube_fake_start DIR    a test CA and a server certificate for 127.0.0.1 in DIR, the fake
#                            on a free loopback port over HTTPS with a bearer token, and
#                            DIR/kubeconfig naming it (certificate-authority-data, token);
#                            sets kube_fake_pid, kube_fake_url, kube_fake_token, kube_fake_ca.
#                            1 with the reason in kube_fake_error when it does not answer.
#     kube_fake_curl ARGS    curl with the CA and the token
#     kube_view ARGS         tests/kube/fake_view.py on the fake (what it holds and saw)
#
# HTTPS because client-go (kubectl) sends no bearer token over plain HTTP; it also puts
# kanaria's kubeconfig CA path to work. Needs python3, openssl and curl.
kube_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kube_fake_pid=
kube_fake_url=
kube_fake_token=
kube_fake_ca=
kube_fake_error=
# Debian's python3 (the fake is written for it); another only when it is missing
kube_py=/usr/bin/python3
[ -x "$kube_py" ] || kube_py=$(command -v python3)

kube_fake_start() { # DIR
    local d=$1 port
    kube_fake_ca=$d/ca.crt
    kube_fake_token=kn-fake-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    if ! {
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$d/ca.key" -out "$d/ca.crt" -subj /CN=kanaria-test-ca -days 2 \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign &&
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
                -keyout "$d/server.key" -out "$d/server.csr" -subj /CN=127.0.0.1 &&
            printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
                >"$d/server.ext" &&
            openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
                -CAcreateserial -out "$d/server.crt" -days 2 -extfile "$d/server.ext"
    } >"$d/openssl.log" 2>&1; then
        kube_fake_error="the test certificates could not be made: $(tail -n 2 "$d/openssl.log")"
        return 1
    fi
    # the interpreter itself in the background (not a shell function wrapping it), so that
    # kube_fake_pid is the fake's own pid and a kill stops it
    "$kube_py" "$kube_here/../fakes/kube_fake.py" --port 0 --port-file "$d/fake.port" \
        --token "$kube_fake_token" --tls-cert "$d/server.crt" --tls-key "$d/server.key" \
        >>"$d/fake.log" 2>&1 &
    kube_fake_pid=$!
    for _ in $(seq 1 50); do
        if [ -s "$d/fake.port" ]; then
            port=$(cat "$d/fake.port")
            kube_fake_url=https://127.0.0.1:$port
            kube_fake_curl -o /dev/null "$kube_fake_url/version" && break
        fi
        kill -0 "$kube_fake_pid" 2>/dev/null || break
        sleep 0.2
    done
    if ! kube_fake_curl -o /dev/null "$kube_fake_url/version"; then
        kube_fake_error="the fake API server did not answer: $(tail -n 3 "$d/fake.log" | tr '\n' ' ')"
        return 1
    fi
    cat >"$d/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster:
      server: "$kube_fake_url"
      certificate-authority-data: $(base64 -w0 "$d/ca.crt")
users:
  - name: kanaria
    user: {token: "$kube_fake_token"}
contexts:
  - name: fake
    context: {cluster: fake, user: kanaria, namespace: default}
current-context: fake
YAML
    chmod 600 "$d/kubeconfig"
}

kube_fake_curl() {
    curl -sf --cacert "$kube_fake_ca" -H "Authorization: Bearer $kube_fake_token" "$@"
}

kube_view() {
    python3 "$kube_here/fake_view.py" --url "$kube_fake_url" --cacert "$kube_fake_ca" "$@"
}
