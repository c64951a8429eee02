#!/usr/bin/env bash
# Give this machine's RabbitMQ a TLS (amqps) listener on 127.0.0.1:5671 for tests/e2e/test_tls.py,
# next to the plain listener on 5672 that everything else uses. Idempotent: certificates are made
# once, the config block is written once, and the broker is restarted only while 5671 is not
# listening yet. Run as root (scripts/test.sh does, before the test suite). See docs/tls.md.
#
# The certificates are TEST credentials: the client key is world-readable so the test suite can
# run as any user. Never point a production broker at them.
set -euo pipefail

TLS_DIR="${SD_TLS_DIR:-/var/lib/rabbitmq/sd-tls}"
CONF="${RABBITMQ_CONFIG_FILE:-/etc/rabbitmq/rabbitmq.conf}"
CONF="${CONF%.conf}.conf"
TLS_PORT=5671
PLAIN_PORT=5672
BEGIN="# BEGIN sd-tls (written by scripts/rabbitmq-tls-setup.sh)"
END="# END sd-tls"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_ports() {  # wait_ports SECONDS PORT...: true once every port accepts connections
  local deadline=$((SECONDS + $1)) port
  shift
  while [ $SECONDS -lt $deadline ]; do
    for port in "$@"; do port_open "$port" || { sleep 1; continue 2; }; done
    return 0
  done
  return 1
}

[ "$(id -u)" = 0 ] || die "run as root: it writes $CONF and may restart RabbitMQ"
command -v openssl >/dev/null || die "openssl is not installed (apt-get install openssl)"
command -v rabbitmqctl >/dev/null || die "RabbitMQ is not installed (apt-get install rabbitmq-server)"

# -- certificates: a CA, a server certificate for localhost/127.0.0.1, a client certificate ------

sign() {  # sign NAME SUBJECT EXTENSIONS: NAME.key + NAME.pem signed by ca.pem
  openssl req -new -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" "basicConstraints=critical,CA:FALSE" "subjectKeyIdentifier=hash" \
    "authorityKeyIdentifier=keyid,issuer" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
    -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

if [ -s "$TLS_DIR/ca.pem" ] && [ -s "$TLS_DIR/server.pem" ] && [ -s "$TLS_DIR/client.pem" ]; then
  say "TLS test certificates already in $TLS_DIR"
else
  say "making a test CA and server/client certificates in $TLS_DIR"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    openssl req -x509 -new -newkey rsa:2048 -nodes -days 3650 -sha256 \
      -subj "/CN=Sistema Distribuido test CA" -keyout ca.key -out ca.pem \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    sign server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth"
    sign client "/CN=sd-test-client" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    # `set -e` does not apply inside a subshell that is followed by ||: this check catches all.
    openssl verify -CAfile ca.pem server.pem client.pem >/dev/null
  ) || die "could not make the certificates (openssl failed)"
  mkdir -p "$TLS_DIR"
  cp "$work"/{ca.pem,ca.key,server.pem,server.key,client.pem,client.key} "$TLS_DIR"/
  chown -R root:root "$TLS_DIR"
  chmod 755 "$TLS_DIR"
  chmod 644 "$TLS_DIR"/{ca.pem,server.pem,client.pem,client.key}
  chmod 600 "$TLS_DIR/ca.key"
  chown rabbitmq:rabbitmq "$TLS_DIR/server.key" 2>/dev/null || true
  chmod 600 "$TLS_DIR/server.key"
fi

# -- broker config: one marked block, plain listener untouched ----------------------------------

if [ -f "$CONF" ] && grep -qF "$BEGIN" "$CONF"; then
  say "$CONF already has the TLS listener block"
else
  if [ -f "$CONF" ] && grep -Eq '^[[:space:]]*(listeners\.ssl|ssl_options)\.' "$CONF"; then
    die "$CONF already configures TLS; leaving it alone (test_tls.py needs certs from $TLS_DIR)"
  fi
  say "adding a TLS listener on 127.0.0.1:$TLS_PORT to $CONF"
  mkdir -p "$(dirname "$CONF")"
  {
    [ -s "$CONF" ] && echo
    echo "$BEGIN"
    echo "listeners.ssl.sd_tls = 127.0.0.1:$TLS_PORT"
    echo "ssl_options.cacertfile = $TLS_DIR/ca.pem"
    echo "ssl_options.certfile = $TLS_DIR/server.pem"
    echo "ssl_options.keyfile = $TLS_DIR/server.key"
    echo "ssl_options.verify = verify_peer"
    echo "ssl_options.fail_if_no_peer_cert = true"
    echo "$END"
  } >>"$CONF"
fi

# -- restart once, only if the TLS listener is not up yet ---------------------------------------

if port_open "$TLS_PORT"; then
  say "RabbitMQ already listens on 127.0.0.1:$TLS_PORT (amqps) and :$PLAIN_PORT"
  exit 0
fi

start_broker() {
  if command -v systemctl >/dev/null && systemctl is-enabled --quiet rabbitmq-server 2>/dev/null \
     && [ -d /run/systemd/system ]; then
    systemctl restart rabbitmq-server
  else
    if port_open "$PLAIN_PORT" || rabbitmqctl -q status >/dev/null 2>&1; then
      rabbitmqctl -q stop >/dev/null
    fi
    rabbitmq-server -detached >/dev/null 2>&1
  fi
}

say "restarting RabbitMQ so it reads the TLS listener config (about 10 s)"
start_broker
if wait_ports 90 "$PLAIN_PORT" "$TLS_PORT"; then
  say "RabbitMQ listens on 127.0.0.1:$PLAIN_PORT (amqp) and 127.0.0.1:$TLS_PORT (amqps)"
  exit 0
fi

# The broker must keep serving the plain listener: take the TLS block back out and start again.
say "RabbitMQ did not open both ports; removing the TLS block from $CONF and restarting"
awk -v b="$BEGIN" -v e="$END" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' \
  "$CONF" >"$CONF.sd-tls.tmp" && mv "$CONF.sd-tls.tmp" "$CONF"
start_broker
wait_ports 90 "$PLAIN_PORT" || die "RabbitMQ does not come back on $PLAIN_PORT; see /var/log/rabbitmq/"
die "RabbitMQ would not open a TLS listener on $TLS_PORT (see /var/log/rabbitmq/); config reverted"
