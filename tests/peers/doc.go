// Package peers starts throwaway Prosody and ejabberd instances from
// Debian for verlauf's tests: each with its own configuration, data
// directory and loopback address, certificates from a CA made for the
// test, names in /etc/hosts that are removed again, and a process that
// is stopped when the test ends.
//
// The servers run as their own system users, so the tests that use them
// run as root; a missing tool or missing root fails the test, it never
// skips (scripts/deps.sh installs them). Tests of different packages may
// run at the same time: give each its own loopback addresses and, for
// ejabberd, its own Erlang node name and distribution port.
package peers
