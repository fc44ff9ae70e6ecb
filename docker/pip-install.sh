#!/bin/sh
# pip install into the runner's virtualenv, in the builder stage only.
# When the build context holds docker/ca/extra-ca.pem (a TLS-intercepting proxy's CA), pip
# trusts it on top of the system's CAs for this command only: it never reaches the runtime stage.
set -eu
BUNDLE=/tmp/roscoe-build/ca-bundle.pem
EXTRA=/tmp/roscoe-build/extra-ca.pem
if [ -s "$EXTRA" ]; then
    if [ ! -s "$BUNDLE" ]; then
        cat /etc/ssl/certs/ca-certificates.crt "$EXTRA" >"$BUNDLE" 2>/dev/null || cp "$EXTRA" "$BUNDLE"
    fi
    export PIP_CERT="$BUNDLE" REQUESTS_CA_BUNDLE="$BUNDLE" SSL_CERT_FILE="$BUNDLE"
fi
# The base's own pip installs into the venv (--python), so the venv itself carries no pip.
exec python3 -m pip --python /opt/roscoe/venv/bin/python install \
    --no-cache-dir --disable-pip-version-check --no-compile "$@"
