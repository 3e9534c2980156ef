base:
  '*':
    - statusrelay
