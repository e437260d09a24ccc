#!/command/with-contenv bashio
# shellcheck shell=bash
# ==============================================================================
# Create the hub's secrets once and keep them in /data: the API token (unless the
# user set one) and the token of the Home Assistant integration's agent.
# ==============================================================================
set -e

umask 077
for secret in api_token ha_agent_token; do
    if [[ ! -s "/data/${secret}" ]]; then
        bashio::log.info "Creating ${secret}"
        python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "/data/${secret}"
    fi
done
mkdir -p /share/edge_ems/parquet
