"""UI routers, one per resource (mirroring ``soc_api.routes``)."""
