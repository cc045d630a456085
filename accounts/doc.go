// Package accounts holds the account commands and the authentication checks
// that every front end shares: in-band registration and SASL in the c2s
// layer, the admin socket behind `verlauf user add|passwd|delete|list`,
// and later the HTTPS sync API. It is the only place that turns a
// password into SCRAM verifiers, so every front end applies the same
// password policy and the same iteration count.
//
// Every change goes through eventstore.Execute on the account's stream
// (domain.AccountStream); reads of one account load that stream, which is
// authoritative and short. Only List reads a projection (package
// projections, name "accounts"), because listing every account from the
// log would mean reading all of it.
package accounts
