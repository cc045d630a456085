#!/usr/bin/env bash
# Installs what the test suite needs, if it is missing. Idempotent and quiet
# when everything is present, so `make test` can call it every time.
set -euo pipefail

need_apt=()
# Debian's slixmpp is only visible to the system interpreter.
/usr/bin/python3 -c 'import slixmpp' 2>/dev/null || need_apt+=(python3-slixmpp)
# Federation tests run real peers.
# lua-unbound (lua5.4-unbound) is only a Recommends of prosody, but the tests point
# Prosody's resolver at /etc/hosts through it.
for pkg in prosody lua-unbound ejabberd; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# The self-service web page is tested in a real browser, headless. Its
# recommended packages (fonts among them) come with it: they are what a
# browser draws a page with.
need_chromium=
dpkg -s chromium >/dev/null 2>&1 || need_chromium=1

if ((${#need_apt[@]})) || [ -n "$need_chromium" ]; then
	echo "deps: installing ${need_apt[*]} ${need_chromium:+chromium} from Debian" >&2
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: need root for apt-get (or install: ${need_apt[*]} ${need_chromium:+chromium})" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	# The peer servers' packages would start system services; the tests
	# start their own throwaway instances, so keep dpkg from starting any.
	policy=/usr/sbin/policy-rc.d
	made_policy=
	trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		made_policy=1
	fi
	apt-get update -qq
	if ((${#need_apt[@]})); then
		apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
	fi
	if [ -n "$need_chromium" ]; then
		apt-get install -y -qq chromium >/dev/null
	fi
	if [ -n "$made_policy" ]; then rm -f "$policy"; fi
fi

go mod download
if ! command -v staticcheck >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/staticcheck" ]; then
	echo "deps: installing staticcheck" >&2
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
