#!/usr/bin/env bash
# The package under a real systemd (issue 16): boot systemd as PID 1 of its own PID, mount,
# UTS and IPC namespaces in a Debian bookworm root (debootstrap, cached between runs), install
# the built .deb there as an operator does, and use both units with their hardening untouched.
#   tests/systemd/test-units.sh target/debian/statusrelay_*.deb
# Needs root and debootstrap (Debian's mirror the first time); the network namespace is the
# host's, so the aggregator listens on a free loopback port.
set -uo pipefail
deb="${1:?usage: test-units.sh PACKAGE.deb}"
repo=$(cd "$(dirname "$0")/../.." && pwd)
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

[ "$(id -u)" = 0 ] || { echo "FAIL: the systemd test needs root (namespaces, chroot, dpkg)"; exit 1; }
command -v debootstrap >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
cache="${STATUSRELAY_SYSTEMD_CACHE:-/var/cache/statusrelay-systemd-test}"
base="$cache/bookworm-v2"
if [ ! -x "$base/opt/salt/bin/salt-call" ]; then
    rm -rf "$base.partial"
    mkdir -p "$cache"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,adduser,monit,procps,curl,python3-venv \
        bookworm "$base.partial" http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
        || { echo "FAIL: debootstrap (see $cache/debootstrap.log)"; exit 1; }
    # Salt inside the root: wheels built on the host (its compiler, PyPI as the Salt test
    # reaches it), installed in the root without a compiler or the network.
    venv="${SALT_VENV:-$repo/target/salt-venv}"
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    "$venv/bin/pip" wheel -q --wheel-dir "$base.partial/root/wheels" salt==3008.3 >>"$cache/debootstrap.log" 2>&1 \
        || { echo "FAIL: Salt's wheels (see $cache/debootstrap.log)"; exit 1; }
    unshare --mount sh -c "mount -t proc proc '$base.partial/proc'; mount --rbind /dev '$base.partial/dev'
        chroot '$base.partial' sh -c 'python3 -m venv /opt/salt && /opt/salt/bin/pip install -q --no-index --find-links /root/wheels salt==3008.3'" \
        >>"$cache/debootstrap.log" 2>&1 || { echo "FAIL: Salt in the root (see $cache/debootstrap.log)"; exit 1; }
    rm -rf "$base.partial/root/wheels"
    mv "$base.partial" "$base"
    rm -rf "$cache/bookworm-v1"
fi
work=$(mktemp -d)
root="$work/root"
cp -a "$base" "$root"
cp "$deb" "$root/root/statusrelay.deb"
cp "$repo/tests/data/mmonit/04-status-port-and-program-failed.http" "$root/root/collector.http"
mkdir -p "$root/srv/files/statusrelay/files" "$root/srv/pillar" "$root/srv/conf"
cp -r "$repo/salt/statusrelay" "$root/srv/formula"
cp "$deb" "$root/srv/files/statusrelay/files/statusrelay.deb"

# The root is bind-mounted onto itself: systemd sets up each unit's mount namespace
# (ProtectSystem=, PrivateTmp=...) from /, which must be a mount point ("Failed to set up mount
# namespacing: Invalid argument" otherwise, status 226/NAMESPACE).
unshare --pid --fork --mount --uts --ipc sh -c "
    mount --make-rprivate /; mount --bind '$root' '$root'
    mount -t proc proc '$root/proc'; mount -t sysfs sysfs '$root/sys' -o ro
    mount -t tmpfs tmpfs '$root/run'; mount -t tmpfs tmpfs '$root/tmp'; mount --rbind /dev '$root/dev'
    exec chroot '$root' /lib/systemd/systemd --system" >"$work/boot.log" 2>&1 &
outer=$!
pid=""
cleanup() {
    [ -n "${pgdir:-}" ] && runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 && rm -rf "$pgdir"
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    kill -9 "$outer" 2>/dev/null; wait "$outer" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
# The namespace's PID 1 is the child of unshare's fork.
for _ in $(seq 1 100); do
    pid=$(pgrep -P "$outer" -f "systemd --system" | head -1)
    [ -n "$pid" ] && break
    pid=$(pgrep -f "^/lib/systemd/systemd --system" | while read -r p; do
        [ "$(awk '/^NSpid/ {print $3}' /proc/$p/status)" = 1 ] && [ "$(readlink /proc/$p/root)" = "$root" ] && echo "$p"; done | head -1)
    [ -n "$pid" ] && break
    sleep 0.1
done
[ -n "$pid" ] || { echo "FAIL: systemd did not start: $(cat "$work/boot.log")"; exit 1; }
inside() { nsenter -t "$pid" -a -r -w "$@"; }
# Wait for the boot to settle: "running", or "degraded" (getty, logind and e2scrub fail here).
state=""
for _ in $(seq 1 300); do
    state=$(inside systemctl is-system-running 2>/dev/null)
    case "$state" in running|degraded) break ;; esac
    sleep 0.1
done
case "$state" in running|degraded) ok "systemd booted as PID 1 ($state)" ;; *) bad "systemd state: $state"; exit 1 ;; esac
until_true() { # seconds command...: run the command until it succeeds, or fail after the deadline
    local end=$(( $(date +%s) + $1 )); shift
    while [ "$(date +%s)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}

# Install as an operator does: the package enables and starts the flusher.
inside dpkg -i /root/statusrelay.deb >"$work/dpkg.log" 2>&1 && ok "dpkg -i installs the package under systemd" || bad "dpkg -i: $(tail -5 "$work/dpkg.log")"
until_true 20 inside systemctl is-active --quiet statusrelay && ok "statusrelay.service is active" \
    || bad "statusrelay.service: $(inside journalctl -u statusrelay --no-pager 2>&1 | grep -v '^--' | tail -8)"
inside systemctl is-enabled --quiet statusrelay && ok "statusrelay.service is enabled" || bad "statusrelay.service not enabled"
inside systemctl is-enabled --quiet statusrelay-serve && bad "statusrelay-serve.service is enabled by the package" || ok "statusrelay-serve.service is installed off"

# A Monit event recorded by the root handler reaches the page through the running unit.
inside env -i MONIT_SERVICE=web MONIT_EVENT="Does not exist" MONIT_HOST=node1 MONIT_DESCRIPTION="process is not running" /usr/bin/statusrelay monit \
    && ok "the root handler records an event" || bad "handler failed"
page_says() { inside grep -q "\"$1\"" /var/lib/statusrelay/www/status.json; }
until_true 20 page_says major_outage && ok "the running unit put it on the page" \
    || bad "page: $(inside cat /var/lib/statusrelay/www/status.json 2>&1 | head -5); journal: $(inside journalctl -u statusrelay --no-pager | tail -5)"
# And to an API page: the strict fake Cachet on loopback (the network namespace is the host's).
bench="${STATUSRELAY_BENCH:-$repo/target/debug/statusrelay-bench}"
[ -x "$bench" ] || cargo build -q -p statusrelay-bench --manifest-path "$repo/Cargo.toml"
coproc FAKE { "$bench" fake-cachet fake-token-0123; }
read -r url <&"${FAKE[0]}"
inside cp /etc/statusrelay/config.toml /root/config.html
inside sh -c "printf 'fake-token-0123\n' > /etc/statusrelay/token && chown statusrelay:statusrelay /etc/statusrelay/token && chmod 600 /etc/statusrelay/token"
inside sh -c "printf 'spool = \"/var/lib/statusrelay/spool.db\"\n[backend]\nkind = \"cachet\"\nurl = \"$url\"\ntoken_file = \"/etc/statusrelay/token\"\nversion = \"2.4\"\nschedules = \"off\"\n[[component]]\nname = \"api\"\nid = 1\nservices = [\"api\"]\n' > /etc/statusrelay/config.toml"
inside systemctl restart statusrelay && ok "restarted on the fake Cachet's config" || bad "restart on cachet: $(inside journalctl -u statusrelay --no-pager | tail -3)"
cachet_status() { curl -sf "$url/api/v1/components/1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["status"])'; }
cachet_is() { [ "$(cachet_status)" = "$1" ]; }
inside env -i MONIT_SERVICE=api MONIT_EVENT="Does not exist" MONIT_HOST=node1 /usr/bin/statusrelay monit
until_true 20 cachet_is 4 && ok "the running unit set the fake Cachet's component to Major Outage over loopback" \
    || bad "cachet shows $(cachet_status): $(inside journalctl -u statusrelay --no-pager | tail -5)"
inside env -i MONIT_SERVICE=api MONIT_EVENT=Exists MONIT_HOST=node1 /usr/bin/statusrelay monit
until_true 20 cachet_is 1 && ok "and back to Operational" || bad "cachet shows $(cachet_status)"
inside cp /root/config.html /etc/statusrelay/config.toml
inside systemctl restart statusrelay
exec {FAKE[1]}>&-

# The flusher's decisions are in the journal with their priorities.
inside journalctl -u statusrelay -o json --no-pager >"$work/journal.json" 2>&1
python3 - "$work/journal.json" <<'PY' && ok "journald has the flusher's lines with their priorities (info = 6)" || bad "journal priorities: $(tail -3 "$work/journal.json")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
sent = [l for l in lines if "sent web" in str(l.get("MESSAGE", ""))]
sys.exit(0 if sent and all(l.get("PRIORITY") == "6" for l in sent) else 1)
PY

# Stop within a bound; what is recorded while it is stopped is delivered after the restart.
t0=$(date +%s%N)
inside systemctl stop statusrelay && ok "systemctl stop" || bad "systemctl stop failed"
took=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$took" -lt 5000 ] && ok "stop took ${took} ms (bound 5000)" || bad "stop took ${took} ms"
inside env -i MONIT_SERVICE=web MONIT_EVENT=Exists MONIT_HOST=node1 /usr/bin/statusrelay monit
inside systemctl start statusrelay
until_true 20 page_says operational && ok "restart lost nothing: the recovery recorded while stopped was delivered" || bad "recovery not delivered after restart"

# SIGKILL: systemd restarts it (Restart=on-failure).
before=$(inside systemctl show -p MainPID --value statusrelay)
inside systemctl kill -s KILL statusrelay
restarted() { local now; now=$(inside systemctl show -p MainPID --value statusrelay); [ "$now" != 0 ] && [ "$now" != "$before" ] && inside systemctl is-active --quiet statusrelay; }
until_true 20 restarted && ok "killed with SIGKILL, systemd restarted it (pid $before -> $(inside systemctl show -p MainPID --value statusrelay))" || bad "not restarted after SIGKILL: $(inside systemctl status statusrelay --no-pager | tail -5)"

# The Monit check the package ships: the flusher stopped behind systemd's back is started again.
inside ln -s /etc/monit/conf-available/statusrelay /etc/monit/conf-enabled/statusrelay
inside sed -i 's/^set daemon .*/set daemon 1/' /etc/monit/monitrc
inside systemctl restart monit
until_true 20 inside pgrep -x monit && ok "Monit runs under systemd with the shipped check" || bad "monit: $(inside journalctl -u monit --no-pager | tail -3)"
# The test has started the unit more often in the last seconds than systemd's start limit
# allows (5 in 10 s), which would refuse Monit's start; an operator's unit is not started
# like that, so the count starts over here.
inside systemctl reset-failed statusrelay
inside systemctl stop statusrelay
# (systemd restarts only on failure: a stopped unit that is active again was started by Monit.)
until_true 30 inside systemctl is-active --quiet statusrelay && inside grep -q "'statusrelay-flush'" /var/log/monit.log \
    && ok "Monit's check started the stopped flusher again ($(inside grep "'statusrelay-flush'" /var/log/monit.log | tail -1 | cut -c1-100))" \
    || bad "Monit did not restart it: $(inside tail -4 /var/log/monit.log) $(inside journalctl -u statusrelay --no-pager | tail -6)"
inside rm /etc/monit/conf-enabled/statusrelay
inside systemctl stop monit

# A broken config: ExecStartPre refuses to start, with the reason in the journal.
inside cp /etc/statusrelay/config.toml /root/config.good
echo 'bogus_key = 1' | inside sh -c 'cat >> /etc/statusrelay/config.toml'
inside systemctl restart statusrelay 2>/dev/null && bad "restart succeeded on a broken config" || ok "restart refused on a broken config"
inside journalctl -u statusrelay --no-pager | grep -q "bogus_key" && ok "the journal names the bad key" || bad "journal: $(inside journalctl -u statusrelay --no-pager | tail -5)"
inside cp /root/config.good /etc/statusrelay/config.toml
inside systemctl reset-failed statusrelay; inside systemctl start statusrelay
until_true 20 inside systemctl is-active --quiet statusrelay && ok "starts again once the config is fixed" || bad "did not start after the fix"

# The aggregator's unit: takes a node's report and a Monit document over loopback, delivers them.
port=$(( 20000 + RANDOM % 10000 ))
inside sh -c "printf '[[component]]\nname = \"api\"\nservices = [\"backend\", \"payments-api\"]\n[serve]\nlisten = \"127.0.0.1:$port\"\n' >> /etc/statusrelay/config.toml"
secret=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
echo "$secret" | inside sh -c 'cat > /root/db1.secret'
inside /usr/bin/statusrelay nodes add db1 --secret-file /root/db1.secret >/dev/null && ok "node db1 added" || bad "nodes add failed"
inside /usr/bin/statusrelay nodes add alpha --secret-file /root/db1.secret >/dev/null
inside systemctl start statusrelay-serve && ok "systemctl start statusrelay-serve" || bad "serve: $(inside journalctl -u statusrelay-serve --no-pager | tail -5)"
inside systemctl is-active --quiet statusrelay && bad "the flusher still runs beside the aggregator" || ok "the flusher's unit stopped (Conflicts=)"
until_true 20 curl -sf "http://127.0.0.1:$port/ready" && ok "the aggregator is ready on 127.0.0.1:$port" || bad "not ready: $(inside journalctl -u statusrelay-serve --no-pager | tail -5)"
report='{"epoch":1,"reports":[{"seq":1,"component":"api","failing":[{"service":"backend","test":"connection","state":"major_outage"}]}]}'
answer=$(curl -s -w ' %{http_code}' -u "db1:$secret" -H 'Content-Type: application/json' -d "$report" "http://127.0.0.1:$port/v1/reports")
[ "${answer##* }" = 200 ] && ok "a relayed report is acknowledged" || bad "relay report refused: $answer $(inside journalctl -u statusrelay-serve --no-pager | tail -3)"
until_true 20 inside grep -q '"api"' /var/lib/statusrelay/www/status.json && ok "the aggregator delivered it to the page" || bad "api not on the page"
body=$(sed -n '/<?xml/,$p' "$root/root/collector.http")
code=$(curl -s -o /dev/null -w '%{http_code}' -u "alpha:$secret" -H 'Content-Type: text/xml' --data-binary "$body" "http://127.0.0.1:$port/collector")
[ "$code" = 200 ] && ok "a Monit status document is taken (200)" || bad "collector answered $code"
inside /usr/bin/statusrelay nodes | grep -q "alpha: .*via collector" && ok "the aggregator knows alpha via the collector" || bad "nodes: $(inside /usr/bin/statusrelay nodes)"
t0=$(date +%s%N); inside systemctl stop statusrelay-serve; took=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$took" -lt 5000 ] && ok "the aggregator stops in ${took} ms" || bad "serve stop took ${took} ms"

# Several aggregator instances on one machine (statusrelay-serve@agg1, @agg2) on one
# PostgreSQL: a cluster of the test's own on the host's loopback (the network namespace is
# shared), run by the host's postgres user. Exactly one instance writes the page; stopped, it
# hands the lease over and the other delivers.
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
state_of() { # component: its state on the built-in page, - when it has none
    inside cat /var/lib/statusrelay/www/status.json 2>/dev/null | python3 -c \
        "import json,sys; print(next((c['state'] for c in json.load(sys.stdin)['components'] if c['name'] == '$1'), '-'))"
}
page_is() { [ "$(state_of "$1")" = "$2" ]; }
as_instance() { local i=$1; shift; inside env STATUSRELAY_CONFIG="/etc/statusrelay/serve-$i.toml" /usr/bin/statusrelay "$@"; }
writer_is() { as_instance agg1 status 2>/dev/null | grep -q "instance:  $1 WRITES the page"; }
some_writer() { as_instance agg1 status 2>/dev/null | grep -q "WRITES the page"; }
if [ -z "$pgbin" ] || ! id postgres >/dev/null 2>&1; then
    bad "no PostgreSQL server on the host (apt-get install postgresql): the template unit is untested"
else
    pgdir=$(mktemp -d /tmp/statusrelay-systemd-pg.XXXXXX); chown postgres "$pgdir"; chmod 0755 "$pgdir"
    pgport=$(( 30000 + RANDOM % 10000 ))
    runuser -u postgres -- "$pgbin/initdb" -D "$pgdir/data" -U statusrelay --auth=trust -E UTF8 --no-instructions >"$pgdir/initdb.log" 2>&1 \
        && runuser -u postgres -- "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 \
            -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1" start >/dev/null 2>&1 \
        && runuser -u postgres -- "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U statusrelay statusrelay \
        && ok "a PostgreSQL of the test's own on 127.0.0.1:$pgport" || bad "PostgreSQL: $(tail -3 "$pgdir/initdb.log" "$pgdir/server.log" 2>&1)"
    inside systemctl list-unit-files 'statusrelay-serve@.service' --no-legend | grep -q 'statusrelay-serve@' \
        && ok "the package installs statusrelay-serve@.service" || bad "no statusrelay-serve@.service in the package"
    for i in 1 2; do
        inside sh -c "cp /root/config.good /etc/statusrelay/serve-agg$i.toml
            printf '[[component]]\nname = \"checkout\"\nservices = [\"checkout-api\"]\n[serve]\nlisten = \"127.0.0.1:$((port + i))\"\n[store]\nurl = \"host=127.0.0.1 port=$pgport user=statusrelay dbname=statusrelay sslmode=disable\"\ninstance = \"agg$i\"\n' >> /etc/statusrelay/serve-agg$i.toml
            chown root:statusrelay /etc/statusrelay/serve-agg$i.toml; chmod 0640 /etc/statusrelay/serve-agg$i.toml"
    done
    as_instance agg1 nodes add db1 --secret-file /root/db1.secret >/dev/null && ok "node db1 added to the database" || bad "nodes add on PostgreSQL failed"
    inside systemctl start statusrelay-serve@agg1 statusrelay-serve@agg2 && ok "systemctl start statusrelay-serve@agg1 @agg2" \
        || bad "serve@: $(inside journalctl -u 'statusrelay-serve@*' --no-pager | tail -5)"
    for i in 1 2; do
        until_true 20 curl -sf "http://127.0.0.1:$((port + i))/ready" && ok "instance agg$i is ready on 127.0.0.1:$((port + i))" \
            || bad "agg$i not ready: $(inside journalctl -u "statusrelay-serve@agg$i" --no-pager | tail -5)"
    done
    until_true 30 some_writer
    first=$(as_instance agg1 status 2>/dev/null | sed -n 's/^instance:  \(agg[12]\) WRITES the page.*/\1/p')
    [ -n "$first" ] && ok "one instance writes the page: $first" || bad "no writer: $(as_instance agg1 status 2>&1 | tail -5)"
    [ "$(as_instance agg2 status 2>/dev/null | grep -c 'WRITES the page')" = 1 ] && ok "status lists exactly one writer" || bad "status: $(as_instance agg2 status 2>&1)"
    # A report to the instance that does not write reaches the page through the one that does.
    other=agg2; [ "$first" = agg2 ] && other=agg1
    send() { # instance seq state
        local body="{\"epoch\":2,\"reports\":[{\"seq\":$2,\"component\":\"checkout\",\"failing\":[$3]}]}"
        curl -s -o /dev/null -w '%{http_code}' -u "db1:$secret" -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$((port + ${1#agg}))/v1/reports"
    }
    code=$(send "$other" 1 '{"service":"checkout-api","test":"connection","state":"major_outage"}')
    [ "$code" = 200 ] && ok "$other (not the writer) takes a report" || bad "$other answered $code"
    until_true 20 page_is checkout major_outage && ok "the writer put it on the page" || bad "checkout: $(state_of checkout)"
    # Stopped, the writer gives its lease up; the other takes over and delivers.
    inside systemctl stop "statusrelay-serve@$first" && ok "systemctl stop statusrelay-serve@$first" || bad "stop $first"
    until_true 20 writer_is "$other" && ok "$other writes the page after $first stopped" || bad "no takeover: $(as_instance "$other" status 2>&1 | tail -4)"
    code=$(send "$other" 2 '')
    [ "$code" = 200 ] && ok "the recovery is taken by $other" || bad "$other answered $code"
    until_true 20 page_is checkout operational && ok "and $other put it on the page" || bad "checkout: $(state_of checkout)"
    inside systemctl stop "statusrelay-serve@$other"
    inside journalctl -u "statusrelay-serve@$first" --no-pager | grep -q "serve-$first.toml\|instance $first" \
        && ok "statusrelay-serve@$first ran as instance $first, the name in its own config" || bad "journal of $first: $(inside journalctl -u "statusrelay-serve@$first" --no-pager | tail -3)"
fi

# Hardening stays as shipped; the exposure systemd computes for both units, for the docs.
for u in statusrelay statusrelay-serve statusrelay-serve@agg1; do
    score=$(inside systemd-analyze security "$u" --no-pager 2>/dev/null | tail -1)
    echo "info: systemd-analyze security $u: $score"
done

# Upgrade with a changed conffile keeps it and the spool; purge removes both.
inside sh -c 'echo "# changed by the operator" >> /etc/statusrelay/config.toml'
inside dpkg -i --force-confold /root/statusrelay.deb >"$work/dpkg2.log" 2>&1 && ok "upgrade in place under systemd" || bad "upgrade: $(tail -3 "$work/dpkg2.log")"
inside grep -q "changed by the operator" /etc/statusrelay/config.toml && ok "upgrade kept the changed config" || bad "upgrade replaced the config"
inside test -f /var/lib/statusrelay/spool.db && ok "upgrade kept the spool" || bad "spool gone after upgrade"
inside dpkg -P statusrelay >"$work/dpkg3.log" 2>&1 && ok "purge under systemd" || bad "purge: $(tail -3 "$work/dpkg3.log")"
inside test ! -e /etc/statusrelay -a ! -e /var/lib/statusrelay && ok "purge removed config and spool" || bad "purge left files"
inside systemctl list-unit-files statusrelay.service --no-legend | grep -q statusrelay && bad "unit still known after purge" || ok "the units are gone"

# The Salt formula inside the same root, managing the service (manage_service: true).
cat > "$root/srv/conf/minion" <<CONF
file_client: local
root_dir: /srv/salt-root
file_roots:
  base: [/srv, /srv/files]
pillar_roots:
  base: [/srv/pillar]
CONF
mv "$root/srv/formula" "$root/srv/statusrelay"
printf 'base:\n  "*":\n    - statusrelay\n' > "$root/srv/pillar/top.sls"
cat > "$root/srv/pillar/statusrelay.sls" <<'PILLAR'
statusrelay:
  package:
    source: salt://statusrelay/files/statusrelay.deb
  config:
    spool: /var/lib/statusrelay/spool.db
    backend: {kind: html, dir: /var/lib/statusrelay/www}
    component:
      - {name: web, services: [nginx]}
    check:
      - {service: nginx, type: process, target: 'with pidfile /run/nginx.pid', tests: [does not exist]}
  monit: {conf_dir: /etc/monit/conf.d, manage: false}
  manage_service: true
PILLAR
apply() {
    inside /opt/salt/bin/salt-call --local --config-dir /srv/conf --out json state.apply statusrelay >"$work/salt.json" 2>"$work/salt.err"
    python3 - "$work/salt.json" <<'PY'
import json, sys
ret = json.load(open(sys.argv[1]))["local"]
if not isinstance(ret, dict):
    print("render-error", 0); sys.exit()
failed = [v["comment"] for v in ret.values() if not v["result"]]
changed = [v["__id__"] for v in ret.values() if v.get("changes")]
print(len(failed), len(changed), ",".join(sorted(changed)) or "-", "|".join(failed)[:300] or "-")
PY
}
read -r failed changed names why < <(apply)
[ "$failed" = 0 ] && ok "Salt applies with manage_service: true ($names)" || bad "Salt: $failed failed: $why $(tail -3 "$work/salt.err")"
inside systemctl is-active --quiet statusrelay && ok "Salt's service.running left the flusher active" || bad "not active after Salt"
read -r failed changed names why < <(apply)
[ "$failed" = 0 ] && [ "$changed" = 0 ] && ok "a second apply changes nothing" || bad "second apply: $failed failed, $changed changed ($names) $why"

echo "systemd: $pass passed, $fail failed"
[ "$fail" = 0 ]
