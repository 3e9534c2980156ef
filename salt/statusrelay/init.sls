# statusrelay on a node or an aggregator (pillar statusrelay:role): package, config and token
# from pillar, the aggregator's nodes, generated Monit checks (or a Monit-only node's `set
# mmonit`), and the flusher or the aggregator.
include:
  - statusrelay.install
  - statusrelay.config
  - statusrelay.nodes
  - statusrelay.monit
  - statusrelay.service
