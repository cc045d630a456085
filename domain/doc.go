// Package domain is the language of verlauf: JIDs, the event catalogue, the
// aggregates (account, roster, archive preferences, blocklist) and the rules
// that decide which events a command produces.
//
// The package is pure. It performs no I/O, opens no sockets and reads the
// clock only through a Clock passed in by the caller, so every rule can be
// tested with table-driven tests and replayed deterministically from the log.
package domain
