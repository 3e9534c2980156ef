{%- from "statusrelay/map.jinja" import statusrelay with context %}
# The aggregator's nodes, from pillar: each secret in a root-only file, handed to
# `statusrelay nodes add --secret-file` (which keeps only its hash, and re-keys on a change).

include:
  - statusrelay.config

{%- if statusrelay.role == 'aggregator' %}
statusrelay-nodes-dir:
  file.directory:
    - name: /etc/statusrelay/nodes
    - user: root
    - group: root
    - mode: '0700'
    - require:
      - pkg: statusrelay-package

{%- for name, node in statusrelay.nodes | dictsort %}
statusrelay-node-{{ name }}-secret:
  file.managed:
    - name: /etc/statusrelay/nodes/{{ name }}.secret
    - contents: {{ node.secret | json }}
    - user: root
    - group: root
    - mode: '0600'
    - show_changes: false
    - require:
      - file: statusrelay-nodes-dir

statusrelay-node-{{ name }}:
  cmd.run:
    - name: >-
        /usr/bin/statusrelay nodes add {{ name | quote }}
        --secret-file /etc/statusrelay/nodes/{{ name }}.secret
        {%- for c in node.get('components', []) %} --component {{ c | quote }}{%- endfor %}
    # Also when the config changed: a new store ([store], docs/ha.md) gets every node.
    - onchanges:
      - file: statusrelay-node-{{ name }}-secret
      - file: statusrelay-config
      - pkg: statusrelay-package
    - require:
      - cmd: statusrelay-check
{%- endfor %}
{%- endif %}
