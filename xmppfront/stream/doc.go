// Package stream reads and writes the XML streams of RFC 6120: the stream
// header, the first-level elements (stanzas and stream-level elements such as
// <starttls/> or <auth/>) as parsed trees, and stream errors.
//
// The reader enforces the restricted XML profile of RFC 6120 §11 (no DTD,
// comment, processing instruction or entity other than the predefined five)
// and hard limits on size, nesting and attributes, so that hostile input is
// refused with bounded memory. Every refusal is a typed error that
// ConditionOf maps to the stream error condition to send.
//
// # Restarting a stream
//
// An XMPP stream restarts twice in a normal session: after STARTTLS and
// after SASL success. The Reader never consumes bytes past the end of the
// element that Next returns, except into its own read buffer, so:
//
//   - after SASL success the caller calls Restart, which keeps the buffered
//     bytes (a pipelining peer may already have sent the new header) and
//     expects ReadHeader next;
//   - after sending <proceed/> the caller wraps the connection in TLS and
//     calls Reset with the TLS connection. Reset refuses with ErrBufferedData
//     if the peer sent anything after <starttls/> in plaintext: those bytes
//     would otherwise be treated as if they had arrived over TLS (the
//     STARTTLS command injection attack).
//
// The Writer has the matching Restart and Reset.
//
// # Cancellation
//
// Reads block on the underlying io.Reader and take no context: a session
// cancels them the way net/http does, by closing the connection or setting
// a read deadline on it, which also serves as the idle timer. The keepalive
// hook (SetKeepaliveHook) reports whitespace pings so that timer can be
// pushed back.
package stream

// Namespaces used by the stream layer.
const (
	NSStream       = "http://etherx.jabber.org/streams"
	NSClient       = "jabber:client"
	NSServer       = "jabber:server"
	NSStreamErrors = "urn:ietf:params:xml:ns:xmpp-streams"
	NSXML          = "http://www.w3.org/XML/1998/namespace"
	nsXMLNS        = "http://www.w3.org/2000/xmlns/"
)
