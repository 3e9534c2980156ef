# statusrelay on a node: package, config and token from pillar, generated Monit checks, the flusher.
include:
  - statusrelay.install
  - statusrelay.config
  - statusrelay.monit
  - statusrelay.service
