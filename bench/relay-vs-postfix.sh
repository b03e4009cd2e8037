#!/usr/bin/env bash
# Benchmark: Cascade relay vs Postfix + OpenDKIM, in one run, same machine, same load.
#
# Load: bench/load.py (asyncio; STARTTLS, then AUTH where the server supports it), SESSIONS
# concurrent sessions, N messages of SIZE bytes, all to one smtp-sink (Postfix's test receiver).
#   Cascade: STARTTLS + AUTH + DKIM RSA-2048 + AES-256-GCM fsynced spool, smarthost -> smtp-sink.
#   Postfix: STARTTLS (no SASL: needs Dovecot/Cyrus; clients relay by mynetworks instead),
#            OpenDKIM milter signing with RSA-2048, its default durable queue, relayhost -> smtp-sink.
# Prints messages/second end to end (until the sink has them all) for both, and the ratio.
# Then: Cascade's RSS with IDLE idle connections open.
#
# Usage: bench/relay-vs-postfix.sh            (N=10000 SESSIONS=50 SIZE=4096 IDLE=1000)
# Needs root for Postfix; installs postfix and opendkim when missing. Loopback only; bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}; SESSIONS=${SESSIONS:-50}; SIZE=${SIZE:-4096}; IDLE=${IDLE:-1000}; LIMIT_S=${LIMIT_S:-600}
export PATH="$PATH:/usr/sbin"
ulimit -n 8192 || true

missing=()
command -v smtp-sink >/dev/null || missing+=(postfix)
command -v opendkim >/dev/null || missing+=(opendkim)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --locked --ignore-rust-version -p cascade-relay 2>&1 | tail -1
BIN=$PWD/target/release/cascade-relay
# OpenDKIM refuses keys below a world-writable directory such as /tmp, and Postfix's daemons (user
# postfix) must reach their queue: a root-owned 0755 directory outside /tmp and $HOME serves both.
mkdir -p /var/lib/cascade-bench && chmod 755 /var/lib/cascade-bench
work=$(mktemp -d /var/lib/cascade-bench/run.XXXXXX) && chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/cascade.pid" ] && kill "$(cat "$work/cascade.pid")" 2>/dev/null || true
  [ -f "$work/opendkim.pid" ] && kill "$(cat "$work/opendkim.pid")" 2>/dev/null || true
  postfix -c "$work/pf" stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 150); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 not up" >&2; return 1; }

# Runs the load against PORT, waits until the sink counted N messages; prints msgs/s.
measure() {
  local port=$1; shift
  local sink; sink=$(port)
  mkdir -p "$work/dump-$port" && chown postfix "$work/dump-$port"   # smtp-sink appends a suffix to the -D name
  smtp-sink -u postfix -c -D "$work/dump-$port/m" 127.0.0.1:"$sink" 1000 > "$work/sink-$port.out" 2>&1 & pids+=($!)
  wait_port "$sink"
  echo "$sink" > "$work/sinkport"
  "$@" "$sink"   # start the server under test, pointed at the sink
  wait_port "$port"
  local start; start=$(date +%s.%N)
  /usr/bin/python3 bench/load.py --port "$port" --sessions "$SESSIONS" --messages "$N" --size "$SIZE" ${AUTH_ARGS:-} > "$work/load-$port.json"
  local deadline=$((SECONDS + LIMIT_S)) got=0
  while [ "$SECONDS" -lt "$deadline" ]; do
    got=$(tr '\r' '\n' < "$work/sink-$port.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1)
    [ "${got:-0}" -ge "$N" ] && break
    sleep 0.2
  done
  local end; end=$(date +%s.%N)
  sleep 0.5
  local signed; signed=$(cat "$work/dump-$port"/* 2>/dev/null | grep -c '^DKIM-Signature: v=1; a=rsa-sha256' || true)
  echo "  load: $(cat "$work/load-$port.json"); sink received ${got:-0}, ${signed} carry an RSA-SHA256 DKIM signature" >&2
  /usr/bin/python3 -c "print(round(${got:-0} / ($end - $start), 1))"
}

start_cascade() {
  local sink=$1 dir=$work/cascade
  CASCADE_LOG=warn "$BIN" dev --data-dir "$dir" --submission 127.0.0.1:"$CASCADE_PORT" --submissions 127.0.0.1:0 \
    --http 127.0.0.1:"$CASCADE_HTTP" --smarthost 127.0.0.1:"$sink" > "$work/cascade.out" 2> "$work/cascade.log" & pids+=($!)
  echo $! > "$work/cascade.pid"
}

start_postfix() {
  local sink=$1 pf=$work/pf
  mkdir -p "$pf" "$work/pfq" "$work/pfd" && chown postfix "$work/pfd"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pf/tls.key" -out "$pf/tls.crt" -days 2 -subj /CN=localhost 2>/dev/null
  openssl genrsa -out "$work/dkim.key" 2048 2>/dev/null; chmod 600 "$work/dkim.key"
  local milter; milter=$(port)
  cat > "$work/opendkim.conf" <<EOF
Syslog no
Mode s
Domain example.test
Selector bench
KeyFile $work/dkim.key
Canonicalization relaxed/relaxed
Socket inet:$milter@127.0.0.1
PidFile $work/opendkim.pid
EOF
  opendkim -f -x "$work/opendkim.conf" > "$work/opendkim.log" 2>&1 & pids+=($!)
  wait_port "$milter"
  sed "s/^smtp      inet.*/127.0.0.1:$POSTFIX_PORT inet n - n - - smtpd/" /etc/postfix/master.cf > "$pf/master.cf"
  cat > "$pf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $work/pfq
data_directory = $work/pfd
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = bench.localhost
mydestination =
local_recipient_maps =
alias_maps =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:$sink
smtpd_tls_cert_file = $pf/tls.crt
smtpd_tls_key_file = $pf/tls.key
smtpd_tls_security_level = may
smtp_tls_security_level = none
smtpd_milters = inet:127.0.0.1:$milter
milter_default_action = tempfail
default_process_limit = 150
maillog_file_prefixes = $work
maillog_file = $work/postfix.log
EOF
  postconf -c "$pf" -F '*/*/chroot = n'   # no chroot: nothing is copied into the queue directory
  postfix -c "$pf" check
  postfix -c "$pf" start || { tail -5 "$work/postfix.log" >&2; return 1; }
}

CASCADE_PORT=$(port); CASCADE_HTTP=$(port); POSTFIX_PORT=$(port)
echo "Load: $N messages of $SIZE bytes over $SESSIONS sessions (STARTTLS; AUTH on Cascade)"
# Credentials exist only after the dev bundle is written; create it first.
"$BIN" dev --data-dir "$work/cascade" --submission 127.0.0.1:0 --submissions 127.0.0.1:0 --http "" >/dev/null 2>&1 & p=$!
for _ in $(seq 100); do [ -f "$work/cascade/relay.yaml" ] && break; sleep 0.1; done; kill $p; wait $p 2>/dev/null || true
creds=$work/cascade/credentials.json
AUTH_ARGS="--user $(/usr/bin/python3 -c "import json;print(json.load(open('$creds'))['username'])") --password $(/usr/bin/python3 -c "import json;print(json.load(open('$creds'))['password'])")"
cascade=$(AUTH_ARGS="$AUTH_ARGS" measure "$CASCADE_PORT" start_cascade)
echo "Cascade relay:       $cascade msg/s"
AUTH_ARGS="" postfix_rate=$(AUTH_ARGS="" measure "$POSTFIX_PORT" start_postfix) || postfix_rate=0
echo "Postfix + OpenDKIM:  $postfix_rate msg/s"
/usr/bin/python3 -c "p=$postfix_rate; c=$cascade; print('Ratio Cascade/Postfix: ' + (f'{c/p:.2f}x (target >= 2x)' if p else 'n/a (Postfix run failed)'))"

# Memory with idle connections.
CASCADE_PID=$(cat "$work/cascade.pid")
rss_before=$(awk '/VmRSS/{print $2}' /proc/"$CASCADE_PID"/status)
/usr/bin/python3 - "$CASCADE_PORT" "$IDLE" "$CASCADE_PID" <<'EOF'
import socket, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.recv(512)  # the greeting: the session is established
    socks.append(s)
time.sleep(1)
rss = [l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1]
print(f"Cascade RSS with {n} idle connections: {int(rss) / 1024:.1f} MB (target < 100 MB)")
for s in socks:
    s.close()
EOF
echo "(Cascade RSS before opening them: $((rss_before / 1024)) MB)"
