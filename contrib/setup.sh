#!/usr/bin/env bash
# contrib/setup.sh -- install everything needed to build and test m2worker.
#
#   contrib/setup.sh            install build + test dependencies
#   contrib/setup.sh --browser  also headless Chromium, chromedriver and
#                               python3 for the console's browser test
#                               (tests/browser.sh skips without them)
#   contrib/setup.sh --print    only print the package list for this system
#
# Debian/Ubuntu: installed with apt-get (uses sudo when not root).
# Other systems: prints the RHEL/Rocky package names and exits 1.
set -euo pipefail

DEBIAN_PACKAGES=(
    build-essential pkg-config autoconf automake libtool autoconf-archive
    liblmdb-dev lmdb-utils
    libcurl4-openssl-dev libjson-c-dev libcsv-dev
    check libmicrohttpd-dev libssl-dev libsystemd-dev libcrypt-dev
    librabbitmq-dev rabbitmq-server
    beanstalkd curl jq ca-certificates
)
BROWSER_PACKAGES=(chromium chromium-driver python3)

# RHEL/Rocky 9: lmdb-devel, libcsv-devel, check-devel and beanstalkd come from
# EPEL (dnf install epel-release; dnf config-manager --set-enabled crb).
RHEL_PACKAGES=(
    gcc make pkgconf-pkg-config autoconf automake libtool autoconf-archive
    lmdb-devel lmdb
    libcurl-devel json-c-devel libcsv-devel
    check-devel libmicrohttpd-devel openssl-devel systemd-devel libxcrypt-devel
    librabbitmq-devel rabbitmq-server
    beanstalkd curl jq ca-certificates
)

print_only=no
for a in "$@"; do
    case "$a" in
        --print) print_only=yes ;;
        --browser) DEBIAN_PACKAGES+=("${BROWSER_PACKAGES[@]}") ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup.sh: unknown argument: $a (try --help)" >&2; exit 2 ;;
    esac
done

is_debian_like() {
    [ -r /etc/os-release ] || return 1
    # shellcheck disable=SC1091
    . /etc/os-release
    case " ${ID:-} ${ID_LIKE:-} " in
        *" debian "*|*" ubuntu "*) command -v apt-get >/dev/null 2>&1 ;;
        *) return 1 ;;
    esac
}

if ! is_debian_like; then
    cat >&2 <<MSG
setup.sh: automatic installation is only implemented for Debian/Ubuntu.

On RHEL/Rocky/Alma (9.x) install, as root:
    dnf install -y epel-release && dnf config-manager --set-enabled crb
    dnf install -y ${RHEL_PACKAGES[*]}
(lmdb-devel, libcsv-devel, check-devel and beanstalkd are in EPEL.)
MSG
    exit 1
fi

if [ "$print_only" = yes ]; then
    echo "${DEBIAN_PACKAGES[*]}"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "setup.sh: must run as root, or have sudo installed, to install packages" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get update
${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${DEBIAN_PACKAGES[@]}"
echo "setup.sh: dependencies installed"
