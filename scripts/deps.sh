#!/usr/bin/env bash
# Installs what the test suite needs, if it is missing. Idempotent and quiet
# when everything is present, so `make test` can call it every time.
set -euo pipefail

need_apt=()
# Debian's slixmpp is only visible to the system interpreter.
/usr/bin/python3 -c 'import slixmpp' 2>/dev/null || need_apt+=(python3-slixmpp)

if ((${#need_apt[@]})); then
	echo "deps: installing ${need_apt[*]} from Debian" >&2
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: need root for apt-get (or install: ${need_apt[*]})" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

go mod download
if ! command -v staticcheck >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/staticcheck" ]; then
	echo "deps: installing staticcheck" >&2
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
