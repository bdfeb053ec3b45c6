#!/usr/bin/env bash
# Install otsentry from this offline bundle: no network needed.
#
#   sudo ./install.sh --public-key /path/to/bundle.pub              # the agent
#   sudo ./install.sh --public-key /path/to/bundle.pub --collector  # the collector
#   ./install.sh verify --public-key /path/to/bundle.pub            # only check the bundle
#
# Run ./install.sh --help for every option.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

usage() {
    cat <<'EOF'
usage: install.sh [verify] --public-key FILE [options]

Checks that this bundle is exactly what your administrator signed, then
installs otsentry without any network access:
  - a Python virtualenv in PREFIX/venv with otsentry and its dependencies;
  - the systemd units otsentry-agent.service (and otsentry-collector.service);
  - the example configs in CONFIG_DIR (existing configs are never overwritten);
  - the service users otsentry-agent (and otsentry-collector).
With "verify" it only checks the signature and every file's SHA-256.

options:
  --public-key FILE   the administrator's public key (bundle.pub); required
  --collector         install the collector too (needs the collector bundle)
  --python PATH       the Python 3.11 to use (default: python3.11 on PATH, or the
                      bundled python-build-standalone in python/, if any)
  --prefix DIR        where to install (default /opt/otsentry)
  --config-dir DIR    where the configs go (default /etc/otsentry)
  --unit-dir DIR      where the systemd units go (default /etc/systemd/system)
  --no-users          do not create the service users
  --no-systemd        do not install the systemd units
  -h, --help          this help

after installing:
  edit /etc/otsentry/agent.toml ([capture] interface, [agent] site and name)
  otsentry-agent enroll --site SITE --agent NAME   (see doc/operator.md)
  systemctl enable --now otsentry-agent
EOF
}

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*" >&2; }

VERIFY_ONLY=0 PUBKEY="" COLLECTOR=0 PYTHON="" PREFIX=/opt/otsentry CONFIG_DIR=/etc/otsentry
UNIT_DIR=/etc/systemd/system USERS=1 SYSTEMD=1
[ "${1:-}" = verify ] && { VERIFY_ONLY=1; shift; }
while [ $# -gt 0 ]; do
    case "$1" in
        --public-key) PUBKEY=${2:?--public-key needs a file}; shift ;;
        --collector) COLLECTOR=1 ;;
        --python) PYTHON=${2:?--python needs a path}; shift ;;
        --prefix) PREFIX=${2:?--prefix needs a folder}; shift ;;
        --config-dir) CONFIG_DIR=${2:?--config-dir needs a folder}; shift ;;
        --unit-dir) UNIT_DIR=${2:?--unit-dir needs a folder}; shift ;;
        --no-users) USERS=0 ;;
        --no-systemd) SYSTEMD=0 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

verify() {
    [ -n "$PUBKEY" ] || die "--public-key FILE is required: the bundle.pub your administrator gave you"
    [ -r "$PUBKEY" ] || die "cannot read the public key $PUBKEY"
    command -v openssl >/dev/null || die "openssl is needed to check the signature (apt-get install openssl)"
    command -v sha256sum >/dev/null || die "sha256sum is needed (coreutils)"
    cd "$HERE"
    if ! openssl pkeyutl -verify -pubin -inkey "$PUBKEY" -rawin -in MANIFEST.sha256 \
            -sigfile MANIFEST.sha256.sig >/dev/null 2>&1; then
        die "the signature of MANIFEST.sha256 does not match $PUBKEY: this bundle was not signed by that key, or was changed. Do not install it."
    fi
    if ! sha256sum --quiet --strict -c MANIFEST.sha256; then
        die "files differ from the signed manifest (listed above). Do not install this bundle."
    fi
    # Nothing may be added to the bundle either.
    local extra
    extra=$(find . -type f ! -name MANIFEST.sha256 ! -name MANIFEST.sha256.sig -printf '%P\n' |
            sort | comm -23 - <(sed 's/^[0-9a-f]*  //' MANIFEST.sha256 | sort))
    [ -z "$extra" ] || die "files not in the signed manifest: $extra"
    say "signature and $(wc -l < MANIFEST.sha256) file hashes OK"
    cd - >/dev/null
}

arch() {
    case "$(uname -m)" in
        x86_64|amd64) echo x86_64 ;;
        aarch64|arm64) echo aarch64 ;;
        *) die "no wheels for this machine ($(uname -m)): bundles exist for x86_64 and aarch64" ;;
    esac
}

is_py311() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; }

find_python() {
    local a=$1
    if [ -n "$PYTHON" ]; then
        is_py311 "$PYTHON" || die "--python $PYTHON is not CPython 3.11 (the wheels are built for 3.11)"
        echo "$PYTHON"; return
    fi
    if command -v python3.11 >/dev/null && is_py311 python3.11; then command -v python3.11; return; fi
    local tarball
    tarball=$(ls "$HERE"/python/*"$a"-unknown-linux-gnu*.tar.gz 2>/dev/null | head -1 || true)
    [ -n "$tarball" ] || die "no Python 3.11 found: install it (Debian 12: apt-get install python3.11 python3.11-venv) or pass --python PATH; see doc/operator.md"
    say "using the bundled Python from $(basename "$tarball")"
    mkdir -p "$PREFIX"
    rm -rf "$PREFIX/python"
    tar -xzf "$tarball" -C "$PREFIX"
    is_py311 "$PREFIX/python/bin/python3" || die "$tarball did not give a working Python 3.11"
    echo "$PREFIX/python/bin/python3"
}

install_wheels() {
    local a=$1 py=$2 wheels="$HERE/wheels/linux-$1" reqs="$HERE/requirements-linux-$1.txt"
    [ -d "$wheels" ] || die "this bundle has no wheels for linux-$a (see BUNDLE.json)"
    if [ $COLLECTOR = 1 ] && ! grep -q '^sqlalchemy==' "$reqs"; then
        die "--collector: this is the agent-only bundle; build one with build-offline-bundle --collector"
    fi
    say "creating the virtualenv $PREFIX/venv with $py"
    "$py" -m venv "$PREFIX/venv" || die "cannot create a virtualenv (Debian: apt-get install python3.11-venv)"
    say "installing $(wc -l < "$reqs") wheels (no network)"
    # No pip.conf of the host: only this bundle's wheels, each checked against its hash.
    PIP_CONFIG_FILE=/dev/null "$PREFIX/venv/bin/python" -m pip install --quiet --no-index \
        --disable-pip-version-check --find-links "$wheels" --require-hashes --only-binary=:all: \
        -r "$reqs"
    mkdir -p "$PREFIX/bin"
    ln -sf "$PREFIX/venv/bin/otsentry-agent" "$PREFIX/bin/otsentry-agent"
    [ $COLLECTOR = 0 ] || ln -sf "$PREFIX/venv/bin/otsentry-collector" "$PREFIX/bin/otsentry-collector"
}

install_files() {
    local roles=(agent)
    [ $COLLECTOR = 1 ] && roles+=(collector)
    mkdir -p "$PREFIX/share/doc" "$CONFIG_DIR"
    cp "$HERE"/etc/*.toml "$PREFIX/share/"
    cp "$HERE"/doc/*.md "$PREFIX/share/doc/" 2>/dev/null || true
    cp "$HERE/sbom.cdx.json" "$HERE/BUNDLE.json" "$PREFIX/share/"
    for role in "${roles[@]}"; do
        if [ -e "$CONFIG_DIR/$role.toml" ]; then
            say "keeping the existing $CONFIG_DIR/$role.toml (the new example is $PREFIX/share/$role.toml)"
        else
            install -m 0644 "$HERE/etc/$role.toml" "$CONFIG_DIR/$role.toml"
        fi
        if [ $SYSTEMD = 1 ]; then
            mkdir -p "$UNIT_DIR"
            sed "s#/opt/otsentry/#$PREFIX/#g" "$HERE/systemd/otsentry-$role.service" \
                > "$UNIT_DIR/otsentry-$role.service"
            chmod 0644 "$UNIT_DIR/otsentry-$role.service"
        fi
        if [ $USERS = 1 ] && ! id "otsentry-$role" >/dev/null 2>&1; then
            useradd --system --user-group --no-create-home --home-dir "/var/lib/otsentry/$role" \
                --shell /usr/sbin/nologin --comment "otsentry $role" "otsentry-$role"
            say "created the system user otsentry-$role"
        fi
    done
    if [ $SYSTEMD = 1 ] && [ -d /run/systemd/system ] && [ "$UNIT_DIR" = /etc/systemd/system ]; then
        systemctl daemon-reload
    fi
}

verify
[ $VERIFY_ONLY = 1 ] && exit 0
if [ $USERS = 1 ] || [ $SYSTEMD = 1 ]; then
    [ "$(id -u)" = 0 ] || die "run as root (sudo) to create users and install units, or pass --no-users --no-systemd"
fi
A=$(arch)
PY=$(find_python "$A")
install_wheels "$A" "$PY"
install_files
"$PREFIX/venv/bin/otsentry-agent" --version >/dev/null || die "the installed agent does not start"
say "installed otsentry in $PREFIX ($("$PREFIX/venv/bin/otsentry-agent" --version))"
say "next: edit $CONFIG_DIR/agent.toml, enrol (doc/operator.md), then: systemctl enable --now otsentry-agent"
