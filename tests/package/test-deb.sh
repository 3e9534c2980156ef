#!/usr/bin/env bash
# Package test: install the .deb on this machine (as root), check files, owners and modes, run
# `statusrelay check` on the shipped config, run the handler as root and the flusher as the
# statusrelay user against the same spool, upgrade in place, then remove and purge.
#   tests/package/test-deb.sh target/debian/statusrelay_*.deb
set -uo pipefail
deb="${1:?usage: test-deb.sh PACKAGE.deb}"
pass=0; fail=0
ok()   { pass=$((pass + 1)); echo "ok: $*"; }
bad()  { fail=$((fail + 1)); echo "FAIL: $*"; }
expect() { local what="$1"; shift; if "$@" >/tmp/statusrelay-pkg.out 2>&1; then ok "$what"; else bad "$what: $(tail -3 /tmp/statusrelay-pkg.out)"; fi; }
owner_mode() { # path "user:group mode"
    local got; got=$(stat -c '%U:%G %a' "$1" 2>/dev/null || echo missing)
    [ "$got" = "$2" ] && ok "$1 is $2" || bad "$1 is '$got', want '$2'"
}

[ "$(id -u)" = 0 ] || { echo "FAIL: the package test needs root (dpkg -i)"; exit 1; }
dpkg -P statusrelay >/dev/null 2>&1 || true

expect "dpkg -i installs the package" dpkg -i "$deb"
owner_mode /usr/bin/statusrelay "root:root 755"
owner_mode /etc/statusrelay "root:statusrelay 750"
owner_mode /etc/statusrelay/config.toml "root:statusrelay 640"
owner_mode /var/lib/statusrelay "statusrelay:statusrelay 2770"
owner_mode /usr/lib/systemd/system/statusrelay.service "root:root 644"
owner_mode /usr/lib/systemd/system/statusrelay-serve.service "root:root 644"
grep -q "^Conflicts=statusrelay.service" /usr/lib/systemd/system/statusrelay-serve.service \
    && ok "the aggregator's unit conflicts with the flusher's (one process per spool)" || bad "statusrelay-serve.service has no Conflicts="
owner_mode /etc/monit/conf-available/statusrelay "root:root 644"
for f in /usr/share/man/man1/statusrelay.1.gz /usr/share/man/man1/statusrelay-flush.1.gz \
         /usr/share/man/man1/statusrelay-serve.1.gz /usr/share/doc/statusrelay/fleet.md \
         /usr/share/bash-completion/completions/statusrelay /usr/share/doc/statusrelay/README.md; do
    [ -f "$f" ] && ok "$f shipped" || bad "$f missing"
done
dpkg-query -W -f='${Conffiles}\n' statusrelay | grep -q /etc/statusrelay/config.toml \
    && ok "config.toml is a conffile" || bad "config.toml is not a conffile"
getent passwd statusrelay >/dev/null && ok "system user statusrelay exists" || bad "no statusrelay user"
file /usr/bin/statusrelay | grep -q "static" && ok "the binary is statically linked" || bad "the binary is not static: $(file /usr/bin/statusrelay)"
expect "statusrelay check passes on the shipped config" /usr/bin/statusrelay check
expect "the flusher's user can read the config" runuser -u statusrelay -- /usr/bin/statusrelay check

# The handler as root (as Monit runs it), the flusher as statusrelay, one spool.
expect "handler as root records an event" env -i MONIT_SERVICE=web MONIT_EVENT="Does not exist" MONIT_HOST=node1 /usr/bin/statusrelay monit
owner_mode /var/lib/statusrelay/spool.db "statusrelay:statusrelay 660"
expect "flusher as statusrelay delivers it" runuser -u statusrelay -- /usr/bin/statusrelay flush --once
grep -q '"major_outage"' /var/lib/statusrelay/www/status.json && ok "the page shows web down" || bad "status.json: $(cat /var/lib/statusrelay/www/status.json 2>&1 | head -5)"
expect "handler as root writes again after the flusher" env -i MONIT_SERVICE=web MONIT_EVENT=Exists MONIT_HOST=node1 /usr/bin/statusrelay monit
expect "flusher as statusrelay delivers the recovery" runuser -u statusrelay -- /usr/bin/statusrelay flush --once
grep -q '"operational"' /var/lib/statusrelay/www/status.json && ok "the page shows web up" || bad "recovery not on the page"
# The shipped build has SQLite's memsys5 compiled in (.cargo/config.toml), so the handler gets its fixed heap.
env -i MONIT_SERVICE=web MONIT_EVENT=Exists MONIT_HOST=node1 /usr/bin/statusrelay --log-level debug monit >/tmp/statusrelay-pkg.out 2>&1
grep -q "sqlite: a fixed 32 MiB heap" /tmp/statusrelay-pkg.out && ok "the packaged handler gives SQLite its fixed heap" \
    || bad "the packaged handler has no fixed SQLite heap: $(grep sqlite: /tmp/statusrelay-pkg.out)"
for f in /var/lib/statusrelay/spool.db-wal /var/lib/statusrelay/spool.db-shm; do
    [ ! -e "$f" ] || runuser -u statusrelay -- test -w "$f" && ok "$f writable by the flusher" || bad "$f not writable by statusrelay"
done

if command -v systemd-analyze >/dev/null 2>&1; then
    expect "systemd-analyze verify accepts the unit" systemd-analyze verify /usr/lib/systemd/system/statusrelay.service
    expect "systemd-analyze verify accepts the aggregator's unit" systemd-analyze verify /usr/lib/systemd/system/statusrelay-serve.service
else
    echo "skip: systemd-analyze is not installed here (unit not verified)"
fi

# The aggregator, as its unit runs it: the statusrelay user, the shipped config plus [serve].
cp /etc/statusrelay/config.toml /tmp/statusrelay-pkg-agg.toml
printf '[serve]\nlisten = "127.0.0.1:18799"\n' >> /tmp/statusrelay-pkg-agg.toml
chmod 644 /tmp/statusrelay-pkg-agg.toml
runuser -u statusrelay -- /usr/bin/statusrelay --config /tmp/statusrelay-pkg-agg.toml serve >/tmp/statusrelay-pkg-serve.log 2>&1 &
serve_pid=$!
ready=no
for _ in $(seq 1 100); do
    if { exec 3<>/dev/tcp/127.0.0.1/18799; } 2>/dev/null; then
        printf 'GET /ready HTTP/1.0\r\n\r\n' >&3
        grep -q '"ready":true' <&3 && ready=yes
        exec 3<&-
        [ "$ready" = yes ] && break
    fi
    sleep 0.1
done
[ "$ready" = yes ] && ok "the aggregator runs as statusrelay and answers /ready" || bad "serve: $(tail -3 /tmp/statusrelay-pkg-serve.log)"
kill -TERM "$serve_pid" 2>/dev/null; wait "$serve_pid" 2>/dev/null
rm -f /tmp/statusrelay-pkg-agg.toml

# Upgrade (reinstall) keeps the spool and a changed config.
echo "# changed by the operator" >> /etc/statusrelay/config.toml
events=$(/usr/bin/statusrelay status --json | grep -o '"events":[0-9]*')
expect "reinstall over the installed package" dpkg -i --force-confold "$deb"
grep -q "changed by the operator" /etc/statusrelay/config.toml && ok "upgrade kept the changed config" || bad "upgrade replaced the config"
[ "$(/usr/bin/statusrelay status --json | grep -o '"events":[0-9]*')" = "$events" ] && ok "upgrade kept the spool ($events)" || bad "upgrade lost the spool"

expect "dpkg -r removes the package" dpkg -r statusrelay
[ ! -e /usr/bin/statusrelay ] && ok "binary removed" || bad "binary still there"
[ -f /etc/statusrelay/config.toml ] && [ -f /var/lib/statusrelay/spool.db ] && ok "remove keeps config and spool" || bad "remove deleted config or spool"
expect "dpkg -P purges the package" dpkg -P statusrelay
[ ! -e /etc/statusrelay ] && [ ! -e /var/lib/statusrelay ] && ok "purge removed config and spool" || bad "purge left files behind"

echo "package: $pass passed, $fail failed"
[ "$fail" = 0 ]
