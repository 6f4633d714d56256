"""Per-tenant configuration as data: YAML settings and CSV maps, validated before anything is stored."""
