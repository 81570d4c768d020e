#!/usr/bin/env bash
# deps.sh installs what the test suite needs, idempotently, on a Debian machine
# as root: the Debian packages for network labs, the SIEM receiver, the browser
# and the peers used by benchmarks, the pinned MinIO server build and the
# pinned gosec.
# It is safe to run again; it only installs what is missing.
set -euo pipefail

# Debian packages the tests and benchmarks use. Keep this list sorted.
PACKAGES=(
  ca-certificates
  chromium
  debootstrap
  file
  gcc
  iproute2
  iputils-ping
  jq
  libc6-dev
  make
  masscan
  ndiff
  nftables
  nmap
  openssl
  poppler-utils
  rpm
  rsyslog
  rsyslog-gnutls
  systemd
  tcpdump
  util-linux
  wrk
)

# MINIO_VERSION is the pinned MinIO server build (see ../shared/DESIGN.md).
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
# GOSEC_VERSION is the pinned gosec (security linter) scripts/test.sh runs;
# its findings are fixed or justified in docs/security.md#gosec.
GOSEC_VERSION="v2.30.0"

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages (${missing[*]}) and not root; install them and rerun" >&2
    exit 1
  fi
  echo "deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The MinIO server is built from source through the Go module proxy; the
# result is cached in GOBIN (default $(go env GOPATH)/bin).
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
stamp="$gobin/.minio-$MINIO_VERSION"
if [ ! -x "$gobin/minio" ] || [ ! -f "$stamp" ]; then
  echo "deps.sh: building minio@$MINIO_VERSION (takes a few minutes the first time)"
  CGO_ENABLED=0 go install "github.com/minio/minio@$MINIO_VERSION"
  touch "$stamp"
fi
gstamp="$gobin/.gosec-$GOSEC_VERSION"
if [ ! -x "$gobin/gosec" ] || [ ! -f "$gstamp" ]; then
  echo "deps.sh: building gosec@$GOSEC_VERSION"
  CGO_ENABLED=0 go install "github.com/securego/gosec/v2/cmd/gosec@$GOSEC_VERSION"
  touch "$gstamp"
fi
echo "deps.sh: ok (minio at $gobin/minio, gosec at $gobin/gosec)"
