# Test pillar for the statusrelay formula (tests/salt/test-formula.sh sets the environment).
{%- set drop_nginx = salt['environ.get']('STATUSRELAY_DROP_NGINX') == '1' %}
{#- STATUSRELAY_ROLE: unset (a node delivering to its page), aggregator, or collector (a node
    with Monit pushing to an aggregator). #}
{%- set role = salt['environ.get']('STATUSRELAY_ROLE') %}
statusrelay:
  package:
    source: salt://statusrelay/files/statusrelay.deb
  {%- if role == 'collector' %}
  token: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  {%- else %}
  token: token-from-pillar-0123
  {%- endif %}
  {%- if role in ('aggregator', 'aggregator-pg') %}
  role: aggregator
  {%- if role == 'aggregator-pg' %}
  store_password: not-needed-the-test-cluster-trusts-loopback
  {%- endif %}
  nodes:
    db1:
      secret: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
      components: [db cluster]
    db2:
      secret: fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210
  {%- endif %}
  config:
    {%- if role in ('aggregator', 'aggregator-pg') %}
    serve:
      listen: 127.0.0.1:8731
      stale_after: 3
    {%- if role == 'aggregator-pg' %}
    store:
      url: {{ salt['environ.get']('STATUSRELAY_PG_URL') | json }}
      password_file: /etc/statusrelay/pg-password
      instance: agg1
    {%- endif %}
    {%- elif role == 'collector' %}
    node: db2
    collector:
      url: https://aggregator.example.com:8731/collector
      secret_file: /etc/statusrelay/token
    {%- endif %}
    spool: /var/lib/statusrelay/spool.db
    backend:
      kind: html
      dir: /var/lib/statusrelay/www
      title: Fleet status
    delivery:
      max_age: 12h
    component:
      - name: db cluster
        services: [mysql, mysql-*]
        incidents: true
      {%- if not drop_nginx %}
      - name: website
        services: [nginx]
      {%- endif %}
    check:
      - service: mysql
        type: process
        target: matching "mysqld"
        tests: [does not exist, failed port 3306 protocol mysql]
        start: /bin/systemctl start mysql
        stop: /bin/systemctl stop mysql
      {%- if not drop_nginx %}
      - service: nginx
        type: process
        target: with pidfile /run/nginx.pid
        tests: [does not exist, failed port 80 protocol http]
      {%- endif %}
  monit:
    conf_dir: {{ salt['environ.get']('STATUSRELAY_MONIT_DIR') }}
    manage: false
  manage_service: false
