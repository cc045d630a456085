package stream

import (
	"errors"
	"io"
)

// Errors returned by the Reader. Each is wrapped with detail; match them with
// errors.Is and map them to a stream error condition with ConditionOf.
var (
	// ErrStreamClosed is returned by Next when the peer closed its stream
	// with </stream:stream>. It is the clean end, like io.EOF.
	ErrStreamClosed = errors.New("stream: closed by peer")
	// ErrNotWellFormed: the input is not well-formed XML or violates XML
	// namespaces (undefined entity, unbound prefix, mismatched tags, …).
	ErrNotWellFormed = errors.New("stream: XML not well-formed")
	// ErrRestrictedXML: a DTD, comment, processing instruction or entity
	// declaration, which RFC 6120 §11.1 forbids.
	ErrRestrictedXML = errors.New("stream: restricted XML")
	// ErrLimit: a Limits bound was exceeded (see LimitError).
	ErrLimit = errors.New("stream: limit exceeded")
	// ErrBadFormat: well-formed XML that is not an XMPP stream (text at the
	// stream level, a root element that is not <stream>).
	ErrBadFormat = errors.New("stream: bad format")
	// ErrInvalidNamespace: the stream or content namespace is wrong.
	ErrInvalidNamespace = errors.New("stream: invalid namespace")
	// ErrBadNamespacePrefix: the stream element is not qualified by a
	// prefix, which leaves no room for a default content namespace.
	ErrBadNamespacePrefix = errors.New("stream: bad namespace prefix")
	// ErrUnsupportedVersion: the header's version is missing or its major
	// version is not 1.
	ErrUnsupportedVersion = errors.New("stream: unsupported version")
	// ErrUnsupportedEncoding: the XML declaration names an encoding other
	// than UTF-8 (RFC 6120 §11.6).
	ErrUnsupportedEncoding = errors.New("stream: unsupported encoding")
	// ErrBufferedData is returned by Reader.Reset when the peer sent bytes
	// that were not yet parsed before the transport switch (STARTTLS).
	ErrBufferedData = errors.New("stream: unread data before transport switch")
)

// ConditionOf maps an error from Reader to the stream error condition that
// the session should send before closing. It reports false when no stream
// error should be sent: nil, ErrStreamClosed, and I/O errors (the transport
// is gone or timed out; the session decides, e.g. connection-timeout).
func ConditionOf(err error) (Condition, bool) {
	switch {
	case err == nil, errors.Is(err, ErrStreamClosed):
		return "", false
	case errors.Is(err, ErrRestrictedXML):
		return RestrictedXML, true
	case errors.Is(err, ErrLimit), errors.Is(err, ErrBufferedData):
		return PolicyViolation, true
	case errors.Is(err, ErrUnsupportedEncoding):
		return UnsupportedEncoding, true
	case errors.Is(err, ErrNotWellFormed):
		return NotWellFormed, true
	case errors.Is(err, ErrBadFormat):
		return BadFormat, true
	case errors.Is(err, ErrInvalidNamespace):
		return InvalidNamespace, true
	case errors.Is(err, ErrBadNamespacePrefix):
		return BadNamespacePrefix, true
	case errors.Is(err, ErrUnsupportedVersion):
		return UnsupportedVersion, true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "", false
	}
	return "", false
}
