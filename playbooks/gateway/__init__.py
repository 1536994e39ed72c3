"""The forced command agency gateways run for containment (stdlib only; see contain_gateway)."""
