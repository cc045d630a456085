// Package sasl is the server side of the SASL mechanisms verlauf offers on
// client-to-server streams: SCRAM-SHA-256, SCRAM-SHA-1 (RFC 5802, RFC 7677),
// their -PLUS variants with TLS channel binding (RFC 5929, RFC 9266), and
// PLAIN (RFC 4616).
//
// It exists instead of an off-the-shelf SCRAM server because the archive
// needs what those hide: a successful SCRAM exchange recovers the user's
// ClientKey (ClientProof XOR ClientSignature), from which the layer above
// derives the key that unwraps the user's archive key. Under PLAIN the
// prepared password is handed up instead.
//
// The package knows nothing of XMPP framing. A c2s stream picks the
// mechanism, base64-decodes each <auth>/<response> payload, feeds it to
// [Server.Step], base64-encodes what comes back into <challenge> or
// <success>, and turns an error into <failure> with [ConditionOf].
package sasl
