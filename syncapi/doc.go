// Package syncapi is verlauf's HTTPS JSON API for the user's own data
// (issue 7): log in with the account's JID and password, read the history
// page by page, follow it incrementally (sync), set the archive
// preferences, forget history, delete the account. Every route is under
// /api/v1/ and documented in openapi.yaml beside this file; a test checks
// that every route of the handler is in it.
//
// # Tokens
//
// A login checks the password (accounts.VerifyPassword), derives the
// SCRAM ClientKey from it and unlocks the user's archive keys
// (archive.Keys.Unlock), as a PLAIN login over XMPP does. It answers a
// random 32-byte token (base64url) that lives only in this process's
// memory, keyed by its SHA-256, bound to that user and valid for TokenTTL.
// Every token holds one session of the keys; logout, expiry (a timer, and
// a check at every use), account deletion and Close release it, and the
// last release wipes the keys. A restart forgets every token: clients log
// in again. Failed logins are throttled per account and per client
// address like SASL: after LoginFailures failures (4× per address) the
// key is refused for LoginPenalty without looking at the password.
//
// # Sync
//
// GET /api/v1/sync returns what was archived after a cursor, in the order
// it was archived, and the next cursor (archive.Service.Since). The
// cursor is a revision of the user's archive stream, opaque to clients;
// it survives restarts, and a client that keeps it sees every message
// exactly once, also across a forget (re-sealed records are not sent
// again). With ?wait= (long-poll, at most MaxWait) or Accept:
// text/event-stream (Server-Sent Events, each event's id the cursor after
// it, Last-Event-ID honoured) the request waits for new messages: it
// re-reads when HandleEvent reports an append to the user's archive, and
// in any case every PollInterval, so it stays correct when HandleEvent is
// not wired or an event is published by another node.
package syncapi
