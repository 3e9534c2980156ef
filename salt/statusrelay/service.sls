{%- from "statusrelay/map.jinja" import statusrelay with context %}
{#- The aggregator runs `serve` (its own flusher on its spool); a node with Monit pushing to a
    collector runs nothing of statusrelay's; any other node runs the flusher. The two units
    conflict: one process delivers a spool. #}
{%- if statusrelay.role == 'aggregator' %}
{%-   set unit, other = 'statusrelay-serve', 'statusrelay' %}
{%- elif statusrelay.config.get('collector') %}
{%-   set unit, other = None, 'statusrelay' %}
{%- else %}
{%-   set unit, other = 'statusrelay', 'statusrelay-serve' %}
{%- endif %}

include:
  - statusrelay.config

{%- if statusrelay.manage_service %}
statusrelay-service-off:
  service.dead:
    - name: {{ other }}
    - enable: false
    - require:
      - pkg: statusrelay-package

{%- if unit %}
statusrelay-service:
  service.running:
    - name: {{ unit }}
    - enable: true
    - require:
      - cmd: statusrelay-check
      - service: statusrelay-service-off
    - watch:
      - file: statusrelay-config
      - pkg: statusrelay-package
      {%- if statusrelay.token %}
      - file: statusrelay-token
      {%- endif %}
      {%- if statusrelay.store_password %}
      - file: statusrelay-store-password
      {%- endif %}
{%- endif %}
{%- else %}
statusrelay-service:
  test.show_notification:
    - text: "service management skipped (pillar statusrelay:manage_service is false): run {{ unit or 'nothing (Monit pushes to the collector)' }}"
{%- endif %}
