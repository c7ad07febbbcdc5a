#!/bin/sh
# Start Mosquitto, first creating the dynamic security store with the admin login if it does
# not exist yet. Later changes (service and device logins) are made over MQTT, never here.
#
# Environment:
#   MQTT_ADMIN_USERNAME, MQTT_ADMIN_PASSWORD  the admin login (needed on first start only)
#   DYNSEC_STORE  the store's path (default /mosquitto/data/dynamic-security.json)
set -eu

store="${DYNSEC_STORE:-/mosquitto/data/dynamic-security.json}"

if [ ! -s "$store" ]; then
    : "${MQTT_ADMIN_USERNAME:?set MQTT_ADMIN_USERNAME to the dynamic security admin login}"
    : "${MQTT_ADMIN_PASSWORD:?set MQTT_ADMIN_PASSWORD to the dynamic security admin password}"
    mkdir -p "$(dirname "$store")"
    # The password goes in on stdin so it never appears in a process list.
    (
        umask 077
        printf '%s\n%s\n' "$MQTT_ADMIN_PASSWORD" "$MQTT_ADMIN_PASSWORD" |
            mosquitto_ctrl dynsec init "$store" "$MQTT_ADMIN_USERNAME" > /dev/null
    )
    if [ "$(id -u)" = 0 ] && id mosquitto > /dev/null 2>&1; then
        # Mosquitto drops to the mosquitto user and must be able to save the store.
        chown mosquitto:mosquitto "$store"
    fi
    echo "dynsec-init: created $store with admin login $MQTT_ADMIN_USERNAME"
fi

unset MQTT_ADMIN_PASSWORD
exec "$@"
