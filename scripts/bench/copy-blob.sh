#!/bin/bash
# The registries' own floor for a copy: one blob streamed by curl from the source's GET into
# the target's upload (POST, then one chunked PUT), no hashing. Usage: SRC_HOST DST_HOST REPO DIGEST
set -euo pipefail
src=$1 dst=$2 repo=$3 digest=$4
location=$(curl -sf -X POST -D - -o /dev/null "http://$dst/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
case $location in /*) location="http://$dst$location" ;; esac
case $location in *\?*) sep='&' ;; *) sep='?' ;; esac
curl -sf "http://$src/v2/$repo/blobs/$digest" | curl -sf -X PUT -H 'content-type: application/octet-stream' -T - -o /dev/null "$location${sep}digest=$digest"
