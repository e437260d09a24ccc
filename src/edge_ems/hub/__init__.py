"""The hub: gRPC gateway, minute store, Parquet, uplink and REST API (``edge-ems[hub]``)."""
