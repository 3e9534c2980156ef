# Test pillar for the statusrelay formula (tests/salt/test-formula.sh sets the environment).
{%- set drop_nginx = salt['environ.get']('STATUSRELAY_DROP_NGINX') == '1' %}
statusrelay:
  package:
    source: salt://statusrelay/files/statusrelay.deb
  token: token-from-pillar-0123
  config:
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
