#!/usr/bin/env bash
# Installs the system tools dist's tests and demo talk to: Debian's docker-registry (the CNCF
# distribution server), the peers (skopeo, umoci, containerd), and shell tools the seed's
# pipelines use. Installs only what is missing; fails loudly when it cannot.
set -euo pipefail
declare -A pkg=(
  [docker-registry]=docker-registry [skopeo]=skopeo [umoci]=umoci [ctr]=containerd
  [jq]=jq [zstd]=zstd [htpasswd]=apache2-utils [busybox]=busybox-static [hyperfine]=hyperfine
  [podman]=podman [buildah]=buildah [runc]=runc [squid]=squid [tinyproxy]=tinyproxy
  [curl]=curl [xargs]=findutils [tar]=tar [gzip]=gzip [openssl]=openssl [script]=bsdutils [setpriv]=util-linux [chroot]=coreutils [setfattr]=attr [getfattr]=attr [strace]=strace
  [debootstrap]=debootstrap [dpkg-deb]=dpkg [xz]=xz-utils [bzip2]=bzip2
)
missing=()
for tool in "${!pkg[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: apt-get install ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
