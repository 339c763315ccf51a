#!/bin/sh
# Install, from Debian's packages, whatever tools/deps.txt lists and this
# machine lacks. Idempotent: a machine that has everything is not touched.
set -eu
cd "$(dirname "$0")"
want=$(grep -v '^#' deps.txt | grep -v '^$')
missing=
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && { echo "deps: all present"; exit 0; }
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing:$missing; run as root (sudo make deps)" >&2
	exit 1
fi
echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
