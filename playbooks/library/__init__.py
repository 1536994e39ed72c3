"""The shipped playbook library: one YAML file per playbook (a package so its files install)."""
