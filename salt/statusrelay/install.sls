{%- from "statusrelay/map.jinja" import statusrelay with context %}
{%- set pkg = statusrelay.package %}

{%- if pkg.source %}
statusrelay-package-file:
  file.managed:
    - name: /var/cache/statusrelay/{{ pkg.name }}.deb
    - source: {{ pkg.source }}
    {%- if pkg.source_hash %}
    - source_hash: {{ pkg.source_hash }}
    {%- else %}
    - skip_verify: {{ pkg.source.startswith('salt://') or pkg.source.startswith('/') }}
    {%- endif %}
    - makedirs: true

statusrelay-package:
  pkg.installed:
    - sources:
      - {{ pkg.name }}: /var/cache/statusrelay/{{ pkg.name }}.deb
    - require:
      - file: statusrelay-package-file
{%- else %}
statusrelay-package:
  pkg.installed:
    - name: {{ pkg.name }}
{%- endif %}
