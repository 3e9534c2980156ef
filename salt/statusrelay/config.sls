{%- from "statusrelay/map.jinja" import statusrelay with context %}

include:
  - statusrelay.install

statusrelay-config:
  file.managed:
    - name: /etc/statusrelay/config.toml
    - source: salt://statusrelay/files/config.toml.jinja
    - template: jinja
    - context:
        config: {{ statusrelay.config | json }}
    - user: root
    - group: statusrelay
    - mode: '0640'
    - require:
      - pkg: statusrelay-package

{%- if statusrelay.token %}
statusrelay-token:
  file.managed:
    - name: /etc/statusrelay/token
    - contents: {{ statusrelay.token | json }}
    - user: statusrelay
    - group: statusrelay
    - mode: '0600'
    - show_changes: false
    - require:
      - pkg: statusrelay-package
{%- endif %}

{%- if statusrelay.store_password %}
statusrelay-store-password:
  file.managed:
    - name: /etc/statusrelay/pg-password
    - contents: {{ statusrelay.store_password | json }}
    - user: statusrelay
    - group: statusrelay
    - mode: '0600'
    - show_changes: false
    - require:
      - pkg: statusrelay-package
{%- endif %}

# The flusher is never (re)started on a config that does not pass its own check.
statusrelay-check:
  cmd.run:
    - name: /usr/bin/statusrelay check
    - onchanges:
      - file: statusrelay-config
      {%- if statusrelay.token %}
      - file: statusrelay-token
      {%- endif %}
      {%- if statusrelay.store_password %}
      - file: statusrelay-store-password
      {%- endif %}
      - pkg: statusrelay-package
