#!/bin/bash
# The registry's own floor for an upload: one blob (a file named by its digest) sent as curl
# sends it, POST then one monolithic PUT, with no client-side hashing. Usage: HOST REPO FILE
set -euo pipefail
host=$1 repo=$2 file=$3
digest="sha256:$(basename "$file")"
location=$(curl -sf -X POST -D - -o /dev/null "http://$host/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
case $location in /*) location="http://$host$location" ;; esac
case $location in *\?*) sep='&' ;; *) sep='?' ;; esac
curl -sf -X PUT -H 'content-type: application/octet-stream' --data-binary "@$file" -o /dev/null "$location${sep}digest=$digest"
