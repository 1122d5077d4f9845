#!/bin/sh
# Entrypoint of the reference cache image, compatible with the seed: /start.sh /config.yml
set -e
if [ "$#" -eq 0 ]; then
    set -- /config.yml
fi
exec python3 -m cache_under_test "$@"
