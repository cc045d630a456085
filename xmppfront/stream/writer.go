package stream

import (
	"fmt"
	"io"
	"slices"
)

// Condition is a stream error condition of RFC 6120 §4.9.3.
type Condition string

// The stream error conditions of RFC 6120 §4.9.3.
const (
	BadFormat              Condition = "bad-format"
	BadNamespacePrefix     Condition = "bad-namespace-prefix"
	Conflict               Condition = "conflict"
	ConnectionTimeout      Condition = "connection-timeout"
	HostGone               Condition = "host-gone"
	HostUnknown            Condition = "host-unknown"
	ImproperAddressing     Condition = "improper-addressing"
	InternalServerError    Condition = "internal-server-error"
	InvalidFrom            Condition = "invalid-from"
	InvalidNamespace       Condition = "invalid-namespace"
	InvalidXML             Condition = "invalid-xml"
	NotAuthorized          Condition = "not-authorized"
	NotWellFormed          Condition = "not-well-formed"
	PolicyViolation        Condition = "policy-violation"
	RemoteConnectionFailed Condition = "remote-connection-failed"
	Reset                  Condition = "reset"
	ResourceConstraint     Condition = "resource-constraint"
	RestrictedXML          Condition = "restricted-xml"
	SeeOtherHost           Condition = "see-other-host"
	SystemShutdown         Condition = "system-shutdown"
	UndefinedCondition     Condition = "undefined-condition"
	UnsupportedEncoding    Condition = "unsupported-encoding"
	UnsupportedFeature     Condition = "unsupported-feature"
	UnsupportedStanzaType  Condition = "unsupported-stanza-type"
	UnsupportedVersion     Condition = "unsupported-version"
)

// StreamError is a stream-level error (RFC 6120 §4.9), sent with
// Writer.WriteError or received as a <stream:error/> element.
type StreamError struct {
	Condition Condition
	// Text is an optional human-readable description; Lang its language.
	Text, Lang string
	// Content carries the condition's content, where it has one: the new
	// address for see-other-host.
	Content string
}

func (e StreamError) Error() string {
	if e.Text != "" {
		return "stream error: " + string(e.Condition) + ": " + e.Text
	}
	return "stream error: " + string(e.Condition)
}

// Element returns e as a <stream:error/> element.
func (e StreamError) Element() *Element {
	el := &Element{Name: Name{NSStream, "error"}}
	cond := &Element{Name: Name{NSStreamErrors, string(e.Condition)}}
	cond.AddText(e.Content)
	el.AddChild(cond)
	if e.Text != "" {
		text := &Element{Name: Name{NSStreamErrors, "text"}}
		if e.Lang != "" {
			text.Attrs = []Attr{{Name{NSXML, "lang"}, e.Lang}}
		}
		el.AddChild(text.AddText(e.Text))
	}
	return el
}

// ParseStreamError reads a <stream:error/> element received from a peer. It
// reports false if el is not one; an unknown condition is kept as is.
func ParseStreamError(el *Element) (StreamError, bool) {
	if el == nil || el.Name != (Name{NSStream, "error"}) {
		return StreamError{}, false
	}
	var e StreamError
	for c := range el.Children() {
		if c.Name.Space != NSStreamErrors {
			continue // application-specific condition
		}
		if c.Name.Local == "text" {
			e.Text, e.Lang = c.Text(), c.Lang()
		} else if e.Condition == "" {
			e.Condition, e.Content = Condition(c.Name.Local), c.Text()
		}
	}
	if e.Condition == "" {
		e.Condition = UndefinedCondition
	}
	return e, true
}

// StreamErrorFor returns the stream error to send for an error from Reader,
// or false if none should be sent (see ConditionOf). The text is left empty
// on purpose: parser details help an attacker more than a peer.
func StreamErrorFor(err error) (StreamError, bool) {
	c, ok := ConditionOf(err)
	return StreamError{Condition: c}, ok
}

// Writer writes one side of an XML stream. Each call issues a single Write
// on the underlying writer, so a stanza is never interleaved with another
// when the Writer is the only writer; it is not safe for concurrent use.
// QueueElement is the exception: it writes nothing, and the next call that
// writes sends what was queued first, in the same Write, so that a burst
// of stanzas costs one TLS record and one system call instead of one each.
type Writer struct {
	w        io.Writer
	ns       string // content namespace of the header written
	buf      []byte // queued elements; the next write appends to them
	inStream bool
	closed   bool
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Restart prepares for a new stream header on the same output, as after
// SASL success. Queued elements belong to the old stream and are dropped.
func (w *Writer) Restart() {
	w.inStream, w.closed = false, false
	w.buf = w.buf[:0]
}

// Reset switches to new output, as after STARTTLS, and prepares for a new
// stream header.
func (w *Writer) Reset(dst io.Writer) {
	w.w = dst
	w.Restart()
}

// WriteHeader writes the XML declaration and the stream header. An empty
// h.Namespace means NSClient, an empty h.Version "1.0".
func (w *Writer) WriteHeader(h Header) error {
	if w.inStream {
		return fmt.Errorf("stream: header already written")
	}
	if h.Namespace == "" {
		h.Namespace = NSClient
	}
	if h.Version == "" {
		h.Version = "1.0"
	}
	b := append(w.buf, "<?xml version='1.0'?><stream:stream xmlns='"...)
	b = appendEscaped(b, h.Namespace, true)
	b = append(b, "' xmlns:stream='"+NSStream+"'"...)
	prefixes := make([]string, 0, len(h.Decls))
	for p := range h.Decls {
		if p != "" && p != "stream" && p != "xml" && p != "xmlns" {
			prefixes = append(prefixes, p)
		}
	}
	slices.Sort(prefixes)
	for _, p := range prefixes {
		b = append(b, " xmlns:"+p+"='"...)
		b = appendEscaped(b, h.Decls[p], true)
		b = append(b, '\'')
	}
	for _, a := range [...][2]string{{"to", h.To}, {"from", h.From}, {"id", h.ID}, {"version", h.Version}, {"xml:lang", h.Lang}} {
		if a[1] != "" {
			b = append(b, ' ')
			b = append(b, a[0]...)
			b = append(b, "='"...)
			b = appendEscaped(b, a[1], true)
			b = append(b, '\'')
		}
	}
	b = append(b, '>')
	w.ns, w.inStream = h.Namespace, true
	return w.flush(b)
}

// WriteElement writes a first-level element, requalified for this stream
// (see Element.AppendStanza).
func (w *Writer) WriteElement(e *Element) error {
	if err := w.QueueElement(e); err != nil {
		return err
	}
	return w.flush(w.buf)
}

// QueueElement adds e to what the next write sends (WriteElement, Flush,
// WriteError or Close), without writing anything now.
func (w *Writer) QueueElement(e *Element) error {
	if !w.inStream || w.closed {
		return fmt.Errorf("stream: element outside an open stream")
	}
	w.buf = e.AppendStanza(w.buf, w.ns)
	return nil
}

// Queued returns the number of bytes queued and not yet written.
func (w *Writer) Queued() int { return len(w.buf) }

// Flush writes what QueueElement queued.
func (w *Writer) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	return w.flush(w.buf)
}

// WriteError writes e and closes the stream. If no header has been written
// yet it writes a minimal one first, since RFC 6120 §4.9.1.2 requires a
// header even when the peer's was unacceptable.
func (w *Writer) WriteError(e StreamError) error {
	if w.closed {
		return fmt.Errorf("stream: already closed")
	}
	if !w.inStream {
		if err := w.WriteHeader(Header{}); err != nil {
			return err
		}
	}
	b := e.Element().AppendStanza(w.buf, w.ns)
	b = append(b, "</stream:stream>"...)
	w.closed = true
	return w.flush(b)
}

// Close writes </stream:stream>. It does not close the underlying writer:
// RFC 6120 §4.4 has the closing side wait for the peer's closing tag first.
func (w *Writer) Close() error {
	if !w.inStream || w.closed {
		return nil
	}
	w.closed = true
	return w.flush(append(w.buf, "</stream:stream>"...))
}

func (w *Writer) flush(b []byte) error {
	// Keep the grown buffer for the next call, but not a giant one from a
	// single huge stanza. Written or failed, nothing stays queued.
	w.buf = nil
	if cap(b) <= 64<<10 {
		w.buf = b[:0]
	}
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("stream: write: %w", err)
	}
	return nil
}
