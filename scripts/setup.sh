#!/usr/bin/env bash
# Installs every Debian package that tandem's build, tests and demo need, and unpacks Debian's V8
# (libnode108 + libnode-dev) into a project-local prefix when apt refuses it next to the machine's
# own nodejs. Fast and silent when everything is already there. Never removes or replaces nodejs.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
v8_prefix="${TANDEM_V8_PREFIX:-$root/third_party/libnode}"

packages=(
  build-essential cmake ninja-build pkg-config git
  libabsl-dev libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  librocksdb-dev prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev
  clang-14 lld-14 libclang-rt-14-dev wasi-libc libclang-rt-14-dev-wasm32 wabt
  libicu72 libuv1 libc-ares2 libnghttp2-14 libbrotli1 libssl3
  prometheus python3-grpcio python3-protobuf python3-yaml openssl curl
  libcurl4-openssl-dev libzmq3-dev cppzmq-dev litecoind python3-bitcoinlib python3-zmq
  systemd
)

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    sudo_if_needed apt-get update -qq
    apt_updated=1
  fi
}

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt_update_once
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# node and npm, for the AssemblyScript guest's compiler (guests/assemblyscript). Debian's when the
# machine has neither; a machine's own nodejs is never replaced, and one without npm only loses
# that guest (CMake says so).
if ! command -v node >/dev/null 2>&1 && ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing nodejs npm (for the AssemblyScript guest)"
  apt_update_once
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    nodejs npm >/dev/null
elif ! command -v npm >/dev/null 2>&1; then
  echo "setup: node is installed without npm: the AssemblyScript guest will not be built" \
       "(install npm for that node; setup never replaces a machine's nodejs)"
fi

# V8. Prefer the system's libnode when it is installed; otherwise keep a private copy.
if [ -f /usr/include/node/v8.h ] && [ -e /usr/lib/x86_64-linux-gnu/libnode.so.108 ]; then
  exit 0
fi
if [ -f "$v8_prefix/usr/include/node/v8.h" ] && [ -e "$v8_prefix/usr/lib/x86_64-linux-gnu/libnode.so.108" ]; then
  exit 0
fi
echo "setup: unpacking Debian's libnode108 and libnode-dev into $v8_prefix"
apt_update_once
download_dir="$(mktemp -d)"
chmod 755 "$download_dir"  # apt downloads as _apt when it can
trap 'rm -rf "$download_dir"' EXIT
(cd "$download_dir" && apt-get download -qq libnode108 libnode-dev >/dev/null)
mkdir -p "$v8_prefix"
for deb in "$download_dir"/*.deb; do
  dpkg -x "$deb" "$v8_prefix"
done
# libnode-dev's libnode.so is a symlink to the absolute /usr path; point it at the private copy.
ln -sf libnode.so.108 "$v8_prefix/usr/lib/x86_64-linux-gnu/libnode.so"
