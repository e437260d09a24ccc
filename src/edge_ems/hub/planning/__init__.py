"""The planner inside the hub: prices and forecasts fetched on schedule, a plan per site made
and re-made every step, its setpoints sent down the gateway as leases, planned against
actual audited from the minute store, one leader among hubs sharing a database."""
