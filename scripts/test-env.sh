#!/usr/bin/env bash
# Installs what the integration tests need, when it is missing:
#   - Debian's redis-server (not started: tests start their own instances) and curl
#   - a virtualenv at $REPO/.venv with the packages in scripts/test-requirements.txt
#     (SeaweedFS's `weed`, awscli, boto3)
# Idempotent: a second run only checks and prints the resolved paths.
#
# Run it directly, or source it: when sourced it also exports S3CACHED_TEST_VENV
# and puts the virtualenv's bin/ first on PATH.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
REQUIREMENTS="$REPO/scripts/test-requirements.txt"
STAMP="$VENV/.s3cached-requirements.stamp"
PYTHON="${PYTHON:-python3}"

log() { printf '[test-env] %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
    if [ "$(id -u)" -ne 0 ]; then
        log "need root to apt-get install $*; install it by hand and re-run"
        return 1
    fi
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- Redis -------------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1; then
    apt_install redis-server
    # Debian's package starts a system instance where an init system runs;
    # the tests start their own on free ports and do not use it.
fi

# --- curl (the TLS tests compare HTTP/2 with HTTP/1.1 answers) -----------------
if ! command -v curl >/dev/null 2>&1; then
    apt_install curl ca-certificates
fi

# --- Python virtualenv -------------------------------------------------------
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "$PYTHON not found"
    exit 1
fi

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating virtualenv $VENV"
    rm -rf "$VENV"
    if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
        # Debian's own python3 needs python3-venv for ensurepip.
        rm -rf "$VENV"
        pyver="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        apt_install "python${pyver}-venv" || apt_install python3-venv
        "$PYTHON" -m venv "$VENV"
    fi
fi

# The stamp records the requirement list and the interpreter it was installed
# for; pip runs only when either changed.
want_stamp="$("$VENV/bin/python" -c 'import sys; print(sys.version)')
$(cat "$REQUIREMENTS")"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want_stamp" ]; then
    log "pip install -r $REQUIREMENTS"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
    printf '%s' "$want_stamp" >"$STAMP"
else
    log "virtualenv up to date ($STAMP)"
fi

# --- Check and report ---------------------------------------------------------
missing=0
for tool in weed aws python; do
    if [ ! -x "$VENV/bin/$tool" ]; then
        log "missing $VENV/bin/$tool after install"
        missing=1
    fi
done
if [ "$missing" -ne 0 ]; then
    log "remove $STAMP (or $VENV) and re-run"
    exit 1
fi

log "repo:         $REPO"
log "virtualenv:   $VENV"
log "weed:         $VENV/bin/weed ($("$VENV/bin/weed" version 2>/dev/null | head -n1 || echo 'version unknown'))"
log "aws:          $VENV/bin/aws"
log "python:       $VENV/bin/python ($("$VENV/bin/python" -c 'import boto3; print("boto3", boto3.__version__)'))"
log "redis-server: $(command -v redis-server) ($(redis-server --version | head -n1))"

export S3CACHED_TEST_VENV="$VENV"
case ":$PATH:" in
    *":$VENV/bin:"*) ;;
    *) export PATH="$VENV/bin:$PATH" ;;
esac
