#!/command/with-contenv bashio
# shellcheck shell=bash
# ==============================================================================
# Announce the hub to Home Assistant: the integration then offers to link to it,
# as the agent "homeassistant", without anything typed by hand. It connects to the
# gateway's internal port (plaintext, on the Supervisor's network only); the
# published port 50051 is for remote agents and has TLS.
# ==============================================================================
declare config

config=$(bashio::var.json \
    host "$(bashio::addon.hostname)" \
    port "^50052" \
    api_port "^8099" \
    agent_id "homeassistant" \
    token "$(cat /data/ha_agent_token)" \
    api_token "$(if bashio::config.has_value 'api_token'; then bashio::config 'api_token'; else cat /data/api_token; fi)" \
)

if bashio::discovery "edge_ems" "${config}" > /dev/null; then
    bashio::log.info "Announced the hub to Home Assistant"
else
    bashio::log.warning "Could not announce the hub; link the integration by hand"
fi
