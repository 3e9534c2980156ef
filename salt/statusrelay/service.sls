{%- from "statusrelay/map.jinja" import statusrelay with context %}

include:
  - statusrelay.config

{%- if statusrelay.manage_service %}
statusrelay-service:
  service.running:
    - name: statusrelay
    - enable: true
    - require:
      - cmd: statusrelay-check
    - watch:
      - file: statusrelay-config
      - pkg: statusrelay-package
      {%- if statusrelay.token %}
      - file: statusrelay-token
      {%- endif %}
{%- else %}
statusrelay-service:
  test.show_notification:
    - text: "service management skipped (pillar statusrelay:manage_service is false): start the flusher with `statusrelay flush`"
{%- endif %}
