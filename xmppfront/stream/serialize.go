package stream

import (
	"io"
	"strconv"
	"unicode/utf8"
)

// Append appends the XML of e to buf as it would appear where scope is the
// default namespace in force, and returns the extended buffer. Elements get
// an xmlns declaration only where their namespace differs from their
// parent's; namespaced attributes get generated prefixes declared on the
// element itself. Names are written as they are; text and attribute values
// are escaped, and anything that is not an XML character becomes U+FFFD so
// the output is always well-formed.
func (e *Element) Append(buf []byte, scope string) []byte {
	return encoder{}.element(buf, e, scope, false)
}

// AppendStanza appends e as a first-level element of a stream whose content
// namespace is contentNS (the default namespace of that stream's header).
//
// A stanza keeps the namespace it was read in, so one read from a c2s
// stream is in jabber:client; RFC 6120 §4.8.3 requires it to travel as
// jabber:server between servers. AppendStanza therefore writes an element
// in jabber:client, jabber:server or no namespace in contentNS, together
// with the descendants that share its namespace through an unbroken chain
// (<body/>, <error/>), while an element under another namespace keeps its
// own: the <message xmlns='jabber:client'/> forwarded inside a carbon stays
// jabber:client. Elements in the stream namespace are written with the
// stream: prefix the header declared, as older clients expect.
func (e *Element) AppendStanza(buf []byte, contentNS string) []byte {
	enc := encoder{streamPrefix: true}
	switch e.Name.Space {
	case NSClient, NSServer, "":
		enc.mapping, enc.from, enc.to = true, e.Name.Space, contentNS
	}
	return enc.element(buf, e, contentNS, enc.mapping)
}

// WriteTo writes e as a standalone XML fragment (with its own xmlns); it
// implements io.WriterTo.
func (e *Element) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(e.Append(nil, ""))
	return int64(n), err
}

// String returns e as a standalone XML fragment, for logs and tests.
func (e *Element) String() string { return string(e.Append(nil, "")) }

type encoder struct {
	streamPrefix bool
	mapping      bool
	from, to     string
}

// element writes e. mapped says whether the requalification chain of
// AppendStanza is still unbroken at e's parent.
func (enc encoder) element(buf []byte, e *Element, scope string, mapped bool) []byte {
	space := e.Name.Space
	if mapped && space == enc.from {
		space = enc.to
	} else {
		mapped = false
	}
	prefixed := enc.streamPrefix && space == NSStream && space != scope
	buf = append(buf, '<')
	if prefixed {
		buf = append(buf, "stream:"...)
	}
	buf = append(buf, e.Name.Local...)
	childScope := scope
	if !prefixed && space != scope {
		buf = append(buf, " xmlns='"...)
		buf = appendEscaped(buf, space, true)
		buf = append(buf, '\'')
		childScope = space
	}
	buf = appendAttrs(buf, e.Attrs)
	if len(e.Nodes) == 0 {
		return append(buf, "/>"...)
	}
	buf = append(buf, '>')
	for _, n := range e.Nodes {
		if n.Elem != nil {
			buf = enc.element(buf, n.Elem, childScope, mapped)
		} else {
			buf = appendEscaped(buf, n.Text, false)
		}
	}
	buf = append(buf, "</"...)
	if prefixed {
		buf = append(buf, "stream:"...)
	}
	buf = append(buf, e.Name.Local...)
	return append(buf, '>')
}

// appendAttrs writes attributes. Attributes in a namespace other than xml:
// are rare (XEP-0131 style extensions) and get prefixes ns0, ns1, …
// declared on the same element, so no prefix is ever relied on from an
// ancestor and the element can be moved into any other tree.
func appendAttrs(buf []byte, attrs []Attr) []byte {
	var spaces []string // index = prefix number
	for _, a := range attrs {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns", a.Name.Space == nsXMLNS:
			// Declarations are the encoder's business; writing one
			// from a hand-built attribute could rebind names.
			continue
		case a.Name.Space == "":
			buf = append(buf, ' ')
		case a.Name.Space == NSXML:
			buf = append(buf, " xml:"...)
		default:
			i := 0
			for i < len(spaces) && spaces[i] != a.Name.Space {
				i++
			}
			if i == len(spaces) {
				spaces = append(spaces, a.Name.Space)
				buf = append(buf, " xmlns:ns"...)
				buf = strconv.AppendInt(buf, int64(i), 10)
				buf = append(buf, "='"...)
				buf = appendEscaped(buf, a.Name.Space, true)
				buf = append(buf, '\'')
			}
			buf = append(buf, " ns"...)
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, ':')
		}
		buf = append(buf, a.Name.Local...)
		buf = append(buf, "='"...)
		buf = appendEscaped(buf, a.Value, true)
		buf = append(buf, '\'')
	}
	return buf
}

// appendEscaped escapes s for character data or, with attr, for a value
// quoted with '. Tab, newline and carriage return in attributes and carriage
// return in text become character references, because a parser would
// otherwise normalise them away.
func appendEscaped(buf []byte, s string, attr bool) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			var esc string
			switch c {
			case '&':
				esc = "&amp;"
			case '<':
				esc = "&lt;"
			case '>':
				esc = "&gt;"
			case '\r':
				esc = "&#xD;"
			case '\'':
				if attr {
					esc = "&apos;"
				}
			case '\n':
				if attr {
					esc = "&#xA;"
				}
			case '\t':
				if attr {
					esc = "&#x9;"
				}
			default:
				if c < 0x20 {
					esc = "\uFFFD"
				}
			}
			if esc != "" {
				buf = append(buf, s[last:i]...)
				buf = append(buf, esc...)
				last = i + 1
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || !isXMLChar(r) {
			buf = append(buf, s[last:i]...)
			buf = append(buf, "\uFFFD"...)
			last = i + size
		}
		i += size
	}
	return append(buf, s[last:]...)
}

// isXMLChar is the Char production of XML 1.0 §2.2.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}
