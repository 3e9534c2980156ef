{%- from "statusrelay/map.jinja" import statusrelay with context %}
{%- set dir = statusrelay.monit.conf_dir %}

include:
  - statusrelay.config

# One statusrelay-<service> file per [[check]] of the config, plus the flusher's watchdog;
# checks of services dropped from pillar are removed. Runs only when something would change.
statusrelay-monit-checks:
  cmd.run:
    - name: /usr/bin/statusrelay monit-config --dir {{ dir }}
    - unless: /usr/bin/statusrelay monit-config --dir {{ dir }} --check
    - require:
      - cmd: statusrelay-check
      - file: statusrelay-config

{%- if statusrelay.monit.manage %}
statusrelay-monit-reload:
  cmd.run:
    - name: monit -t && monit reload
    - onchanges:
      - cmd: statusrelay-monit-checks
{%- else %}
statusrelay-monit-reload:
  test.show_notification:
    - text: "Monit is not reloaded (pillar statusrelay:monit:manage is false): reload it to pick up changed checks"
{%- endif %}
