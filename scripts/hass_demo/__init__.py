"""The Home Assistant demo: a real Home Assistant with Edge EMS, the simulated site and the hub.

What ``make demo`` runs inside ``scripts/in-env`` (``python -m scripts.hass_demo``):

1. the simulated site starts in this process (Deye and SDM630 behind a Modbus gateway, the
   SunSpec hybrid inverter, the OPC UA BESS, an EV charger and a heat pump), on free
   loopback ports;
2. the hub (``python -m edge_ems.hub``) starts beside it with a configuration written here:
   its REST API (default port 8099), its gRPC gateway (default 50051), a store of its own,
   and an API token and an agent token made for this run;
3. ``hass -c CONFIG`` starts from a fresh configuration folder with the integration linked
   into ``custom_components`` and its blueprints in ``blueprints``;
4. onboarding is done over HA's own API with a demo user, then the site and its devices are
   added through the integration's config flow and subentry flows, as a person would in the
   UI (every step connects to the simulated device before it creates anything); the options
   flow switches control on and links the site to the hub; a dashboard shows the Edge EMS
   cards (``dashboard``);
5. once the entities report live values and the hub hears the site, the URL, the login and
   the dashboard are printed, and the hub's URL, token and two curl commands to try; Ctrl-C
   stops Home Assistant, the hub and the site and removes the folder.

``--once`` prints the live entities, charges the site's batteries for a minute through
``edge_ems.dispatch``, discharges them through the hub's ``/dispatch``, waits for the hub's
first stored minute in ``/measurements`` and stops instead of waiting (a smoke test);
``--screenshot FILE`` saves the integration's page as headless chromium shows it to the demo
user.

The pieces (``processes``: Home Assistant and the hub as child processes; ``hass_api``: Home
Assistant's HTTP and websocket API as the frontend uses it; ``site``: the simulated site added
through the flows, and what the demo asks of it and of the hub; ``dashboard``: the cards on a
dashboard; ``browser``: headless chromium logged in) serve the benchmarks, browser tests and
release checks that need a real Home Assistant too.
"""
