// Package syncapi is verlauf's HTTPS JSON API for the user's own data
// (issue 7): log in with the account's JID and password, read the history
// page by page, follow it incrementally (sync), set the archive
// preferences, forget history, delete the account, export all of it.
// Every route is under /api/v1/ and documented in openapi.yaml beside this
// file; a test checks that every route of the handler is in it. A
// self-service web page for people rather than programs is served beside
// it under /account/ (see below).
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
//
// # Export
//
// GET /api/v1/export?format=xep0227|jsonl streams userdata.Export of the
// token's user (decrypted with the keys the login unlocked) as a download:
// Content-Disposition attachment, application/xml or application/jsonl,
// written as it is read, so memory does not grow with the archive. The
// manifest (counts, byte count, SHA-256) is known only at the end, so it
// cannot be a header: the file itself ends with it (userdata.Verify checks
// a downloaded file on its own), and the HTTP trailer Verlauf-Manifest
// repeats it for clients that read trailers. An error before the first
// byte is a JSON error; after it, the response is aborted, so a broken
// export never looks whole. A long export needs the token to outlive it:
// the keys are wiped at expiry.
//
// # The web page
//
// Under /account/ the same server renders a self-service page
// (html/template, embedded; one stylesheet and one small script, nothing
// from elsewhere): log in, turn history on or off, read recent
// conversations and a conversation, download the export in both formats,
// forget history (all, a partner, a UTC time range), delete the account
// (retyping the JID, and the password as the API asks). The page is
// built on the API's own paths: its login is the API's (same throttle), its
// session is an API token, its deletion is the API's password check.
//
// Security. The session cookie __Host-verlauf-session holds the token:
// Secure, HttpOnly, SameSite=Strict, Path=/, no Domain, Max-Age the
// token's remaining life. Every state-changing POST carries a
// synchronizer token, HMAC-SHA256 of the session's token under a key that
// lives only in this process (so it is bound to the session, dies with
// it, and needs no storage), compared in constant time; the login form's
// token is bound the same way to a random __Host-verlauf-login cookie,
// against login CSRF. Sec-Fetch-Site must be same-origin when sent and
// Origin this https origin when it names one (browsers send "null" under
// Referrer-Policy: no-referrer). A missing or wrong token is 403 and
// nothing changes. Every web answer has
// Content-Security-Policy: default-src 'none'; style-src 'self';
// script-src 'self'; form-action 'self'; frame-ancestors 'none';
// base-uri 'none', Referrer-Policy: no-referrer, X-Frame-Options: DENY and
// Cross-Origin-Opener/Resource-Policy same-origin, and like every answer
// of the server Cache-Control: no-store, X-Content-Type-Options: nosniff
// and HSTS. Messages are shown as text (html/template escapes them).
// The web routes answer HTML and are not in openapi.yaml.
package syncapi
