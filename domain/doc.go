// Package domain is the language of verlauf: JIDs, the event catalogue, the
// aggregates (account, roster, archive preferences, blocklist) and the rules
// that decide which events a command produces.
//
// The package is pure. It performs no I/O, opens no sockets and reads the
// clock only through a Clock passed in by the caller, so every rule can be
// tested with table-driven tests and replayed deterministically from the log.
//
// # How the pieces fit the command path
//
// Every aggregate has the same shape, so that one generic helper beside the
// Store port can run every command:
//
//   - a state type with a constructor for the empty state (Account{},
//     NewRoster(max), NewArchivePrefs(mode), NewBlocklist(max)), the
//     constructor carrying the server's policy (limits, defaults), which is
//     configuration and therefore not recorded in the log;
//   - a fold function, the Apply method: S.Apply has the type
//     func(S, Payload) S and is passed to Fold;
//   - decision methods on the state that return the payloads to record
//     ([]Payload, or RosterOutcome.Events for the roster) and never modify
//     the state.
//
// The helper reads the stream, upcasts each event (package migrations),
// folds them with Fold, calls the decision, wraps the payloads with
// NewEvents and appends them with the stream's last revision as the
// expected revision, retrying the whole sequence on a conflict. Only after
// the append succeeds does the front end act on a RosterOutcome's effects.
package domain
