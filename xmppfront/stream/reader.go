package stream

import (
	"bufio"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Header is the opening <stream:stream> element of a stream.
type Header struct {
	To, From, ID string
	// Version is as sent, e.g. "1.0"; ReadHeader accepts any 1.x.
	Version string
	// Lang is the xml:lang attribute.
	Lang string
	// Namespace is the content namespace (the default namespace of the
	// header): NSClient or NSServer.
	Namespace string
	// Decls holds prefix declarations other than the stream prefix, e.g.
	// "db" → "jabber:server:dialback" (XEP-0220 looks for it).
	Decls map[string]string
}

// Reader reads one XML stream: ReadHeader once, then Next until it returns
// ErrStreamClosed or another error. It buffers its input; see the package
// documentation for restarting the stream and switching to TLS. A Reader is
// not safe for concurrent use.
//
// Any error other than one that happens while Next is waiting between
// elements (a read deadline, say) is final: later calls return it again.
type Reader struct {
	lim       Limits
	src       source
	dec       *xml.Decoder
	ns        []binding // in-scope prefix bindings, innermost last
	stack     []frame   // open elements of the current first-level element
	root      xml.Name  // raw name of the stream element, to match its end tag
	inStream  bool      // the header has been read
	err       error     // sticky error
	keepalive func(n int)
	text      []byte // character data not yet stored in the open element

	stanzaLimit, headerLimit error
}

type binding struct{ prefix, uri string }

type frame struct {
	el     *Element
	raw    xml.Name // as written, to match the end tag
	nsMark int      // len(ns) before this element's declarations
}

// readBufferSize is the Reader's buffer. Every connected session holds
// one, so it is small: under TLS a refill is a copy out of the record
// tls.Conn has already decrypted, not a system call, and before TLS only
// the stream header and <starttls/> come through it.
const readBufferSize = 1024

// NewReader returns a Reader over r with the given limits (zero fields take
// their defaults).
func NewReader(r io.Reader, lim Limits) *Reader {
	lim = lim.withDefaults()
	rd := &Reader{
		lim:         lim,
		stanzaLimit: &LimitError{"MaxStanzaSize", lim.MaxStanzaSize},
		headerLimit: &LimitError{"MaxHeaderSize", lim.MaxHeaderSize},
	}
	rd.src.br = bufio.NewReaderSize(r, readBufferSize)
	rd.Restart()
	return rd
}

// SetKeepaliveHook sets a function called with the number of whitespace
// bytes Next skipped between first-level elements (RFC 6120 §4.6.1
// whitespace keepalives). It is called as soon as the whitespace is read,
// before Next blocks for more input, so it can push back an idle timer.
func (r *Reader) SetKeepaliveHook(f func(n int)) { r.keepalive = f }

// Restart prepares for a new stream header on the same input, as after SASL
// success. Bytes already buffered are kept: they belong to the new stream.
func (r *Reader) Restart() {
	r.dec = xml.NewDecoder(&r.src)
	r.dec.Strict = true
	r.dec.CharsetReader = refuseCharset
	r.src.err = nil
	r.ns = r.ns[:0]
	clear(r.stack)
	r.stack = r.stack[:0]
	r.root = xml.Name{}
	r.inStream = false
	r.err = nil
	r.text = r.text[:0]
}

// Reset switches the Reader to new input, as after STARTTLS, and prepares
// for a new stream header. It fails with ErrBufferedData, and changes
// nothing, if bytes read from the old input have not been consumed: a peer
// must send nothing after <starttls/> until the TLS handshake, and whatever
// it did send must not be mistaken for data protected by TLS.
func (r *Reader) Reset(src io.Reader) error {
	if n := r.src.br.Buffered(); n > 0 {
		return fmt.Errorf("%w: %d bytes", ErrBufferedData, n)
	}
	r.src.br.Reset(src)
	r.Restart()
	return nil
}

// Buffered returns how many bytes have been read from the input but not yet
// parsed.
func (r *Reader) Buffered() int { return r.src.br.Buffered() }

// refuseCharset makes encoding/xml report a non-UTF-8 XML declaration as a
// typed error; RFC 6120 §11.6 allows UTF-8 only.
func refuseCharset(label string, _ io.Reader) (io.Reader, error) {
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedEncoding, label)
}

// ReadHeader reads the XML declaration, if any, and the stream header, and
// checks the stream namespace, the content namespace and the version. On an
// error the caller still owes the peer a header before the stream error
// (RFC 6120 §4.9.1.2); Writer.WriteError takes care of that.
func (r *Reader) ReadHeader() (Header, error) {
	if r.err != nil {
		return Header{}, r.err
	}
	if r.inStream {
		return Header{}, errors.New("stream: ReadHeader called twice without Restart")
	}
	r.src.window(r.lim.MaxHeaderSize, r.headerLimit)
	for first := true; ; first = false {
		tok, err := r.dec.RawToken()
		if err != nil {
			return Header{}, r.fail(err, first)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			// Only the XML declaration, and only as the very first
			// thing; encoding/xml has checked its version and encoding.
			if t.Target != "xml" || !first {
				return Header{}, r.failf(ErrRestrictedXML, "processing instruction <?%s?>", t.Target)
			}
		case xml.Directive:
			return Header{}, r.failf(ErrRestrictedXML, "DTD or declaration <!%.20s…>", t)
		case xml.Comment:
			return Header{}, r.failf(ErrRestrictedXML, "comment")
		case xml.CharData:
			if !isSpace(t) {
				return Header{}, r.failf(ErrNotWellFormed, "text before the stream header")
			}
		case xml.EndElement:
			return Header{}, r.failf(ErrNotWellFormed, "end tag </%s> before the stream header", t.Name.Local)
		case xml.StartElement:
			return r.header(t)
		}
	}
}

func (r *Reader) header(t xml.StartElement) (Header, error) {
	// The header is bounded by MaxHeaderSize alone: a server's header can
	// carry more declarations than any stanza element needs.
	el, err := r.resolve(t, false)
	if err != nil {
		return Header{}, r.failf(err, "")
	}
	if el.Name.Space != NSStream {
		return Header{}, r.failf(ErrInvalidNamespace, "stream element in %q", el.Name.Space)
	}
	if el.Name.Local != "stream" {
		return Header{}, r.failf(ErrBadFormat, "root element <%s>", el.Name.Local)
	}
	if t.Name.Space == "" {
		return Header{}, r.failf(ErrBadNamespacePrefix, "stream element without a prefix")
	}
	h := Header{
		To:        el.Attr("to"),
		From:      el.Attr("from"),
		ID:        el.Attr("id"),
		Version:   el.Attr("version"),
		Lang:      el.Lang(),
		Namespace: r.lookup(""),
	}
	if h.Namespace != NSClient && h.Namespace != NSServer {
		return Header{}, r.failf(ErrInvalidNamespace, "content namespace %q", h.Namespace)
	}
	if err := checkVersion(h.Version); err != nil {
		return Header{}, r.failf(err, "")
	}
	for _, b := range r.ns {
		if b.prefix != "" && b.prefix != t.Name.Space {
			if h.Decls == nil {
				h.Decls = make(map[string]string)
			}
			h.Decls[b.prefix] = b.uri
		}
	}
	r.root = t.Name
	r.inStream = true
	return h, nil
}

// checkVersion applies RFC 6120 §4.7.5: "major.minor", major 1. A missing
// version means a pre-RFC 3920 peer, which cannot do STARTTLS or SASL.
func checkVersion(v string) error {
	if v == "" {
		return fmt.Errorf("%w: no version attribute", ErrUnsupportedVersion)
	}
	major, minor, ok := strings.Cut(v, ".")
	if !ok || !isDigits(major) || !isDigits(minor) {
		return fmt.Errorf("%w: version %q", ErrBadFormat, v)
	}
	if strings.TrimLeft(major, "0") != "1" {
		return fmt.Errorf("%w: %q", ErrUnsupportedVersion, v)
	}
	return nil
}

// Next returns the next first-level element of the stream, complete. It
// returns ErrStreamClosed when the peer sends </stream:stream>.
func (r *Reader) Next() (*Element, error) {
	if r.err != nil {
		return nil, r.err
	}
	if !r.inStream {
		return nil, errors.New("stream: Next called before ReadHeader")
	}
	if err := r.skipSpace(); err != nil {
		return nil, err
	}
	r.src.window(r.lim.MaxStanzaSize, r.stanzaLimit)
	for {
		tok, err := r.dec.RawToken()
		if err != nil {
			return nil, r.fail(err, false)
		}
		if _, ok := tok.(xml.CharData); !ok && len(r.text) > 0 {
			r.stack[len(r.stack)-1].el.AddText(string(r.text))
			r.text = r.text[:0]
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(r.stack) >= r.lim.MaxDepth {
				return nil, r.failf(&LimitError{"MaxDepth", r.lim.MaxDepth}, "")
			}
			mark := len(r.ns)
			el, err := r.resolve(t, true)
			if err != nil {
				return nil, r.failf(err, "")
			}
			if n := len(r.stack); n > 0 {
				parent := r.stack[n-1].el
				parent.Nodes = append(parent.Nodes, Node{Elem: el})
			}
			r.stack = append(r.stack, frame{el: el, raw: t.Name, nsMark: mark})
		case xml.EndElement:
			n := len(r.stack)
			if n == 0 {
				if t.Name == r.root {
					r.err = ErrStreamClosed
					return nil, ErrStreamClosed
				}
				return nil, r.failf(ErrNotWellFormed, "unexpected end tag </%s>", t.Name.Local)
			}
			top := r.stack[n-1]
			if t.Name != top.raw {
				return nil, r.failf(ErrNotWellFormed, "end tag </%s> does not match <%s>", t.Name.Local, top.raw.Local)
			}
			r.ns = r.ns[:top.nsMark]
			r.stack[n-1] = frame{}
			r.stack = r.stack[:n-1]
			if n == 1 {
				return top.el, nil
			}
		case xml.CharData:
			n := len(r.stack)
			if n == 0 {
				return nil, r.failf(ErrBadFormat, "character data at the stream level")
			}
			// Collected and stored once the run ends: many CDATA
			// sections in a row would otherwise cost quadratic time.
			r.text = append(r.text, t...)
		case xml.Comment:
			return nil, r.failf(ErrRestrictedXML, "comment")
		case xml.ProcInst:
			return nil, r.failf(ErrRestrictedXML, "processing instruction <?%s?>", t.Target)
		case xml.Directive:
			return nil, r.failf(ErrRestrictedXML, "DTD or declaration <!%.20s…>", t)
		}
	}
}

// skipSpace consumes whitespace up to the next '<' directly from the
// buffer: keepalives cost no allocation, an endless run of them no memory,
// and a read error here (a deadline) leaves the Reader usable because no
// element has been started.
func (r *Reader) skipSpace() error {
	n := 0
	report := func() {
		if n > 0 && r.keepalive != nil {
			r.keepalive(n)
		}
		n = 0
	}
	for {
		if n > 0 && r.src.br.Buffered() == 0 {
			report()
		}
		b, err := r.src.br.ReadByte()
		if err != nil {
			report()
			if err == io.EOF {
				return io.EOF
			}
			return fmt.Errorf("stream: read: %w", err)
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			n++
			continue
		}
		_ = r.src.br.UnreadByte()
		report()
		if b != '<' {
			return r.failf(ErrBadFormat, "character data at the stream level")
		}
		return nil
	}
}

// resolve turns a raw start tag into an Element: it pushes the tag's
// namespace declarations onto r.ns, resolves prefixes and checks the
// attribute limits and the Namespaces in XML constraints that encoding/xml's
// RawToken leaves to its caller.
func (r *Reader) resolve(t xml.StartElement, limited bool) (*Element, error) {
	lim := r.lim
	if !limited {
		lim.MaxAttrs, lim.MaxNameLen, lim.MaxAttrValueLen = r.lim.MaxHeaderSize, r.lim.MaxHeaderSize, r.lim.MaxHeaderSize
	}
	if len(t.Attr) > lim.MaxAttrs {
		return nil, &LimitError{"MaxAttrs", lim.MaxAttrs}
	}
	if rawLen(t.Name) > lim.MaxNameLen {
		return nil, &LimitError{"MaxNameLen", lim.MaxNameLen}
	}
	plain := 0
	for i, a := range t.Attr {
		if rawLen(a.Name) > lim.MaxNameLen {
			return nil, &LimitError{"MaxNameLen", lim.MaxNameLen}
		}
		if a.Name.Space != "" && !ncName(a.Name.Local) {
			return nil, fmt.Errorf("%w: malformed qualified name %q", ErrNotWellFormed, a.Name.Space+":"+a.Name.Local)
		}
		if len(a.Value) > lim.MaxAttrValueLen {
			return nil, &LimitError{"MaxAttrValueLen", lim.MaxAttrValueLen}
		}
		for _, b := range t.Attr[:i] {
			if b.Name == a.Name {
				return nil, fmt.Errorf("%w: duplicate attribute %q", ErrNotWellFormed, a.Name.Local)
			}
		}
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			if a.Value == NSXML || a.Value == nsXMLNS {
				return nil, fmt.Errorf("%w: reserved namespace as default", ErrNotWellFormed)
			}
			r.ns = append(r.ns, binding{"", a.Value})
		case a.Name.Space == "xmlns":
			if err := checkDecl(a.Name.Local, a.Value); err != nil {
				return nil, err
			}
			r.ns = append(r.ns, binding{a.Name.Local, a.Value})
		default:
			plain++
		}
	}
	if len(r.ns) > lim.MaxNamespaces {
		return nil, &LimitError{"MaxNamespaces", lim.MaxNamespaces}
	}
	if strings.IndexByte(t.Name.Local, ':') >= 0 {
		return nil, fmt.Errorf("%w: malformed qualified name %q", ErrNotWellFormed, t.Name.Local)
	}
	if t.Name.Space != "" && !ncName(t.Name.Local) {
		return nil, fmt.Errorf("%w: malformed qualified name %q", ErrNotWellFormed, t.Name.Space+":"+t.Name.Local)
	}
	el := &Element{Name: Name{Local: t.Name.Local}}
	if t.Name.Space == "" {
		el.Name.Space = r.lookup("")
	} else {
		space, ok := r.lookupPrefix(t.Name.Space)
		if !ok {
			return nil, fmt.Errorf("%w: unbound prefix %q", ErrNotWellFormed, t.Name.Space)
		}
		el.Name.Space = space
	}
	if plain == 0 {
		return el, nil
	}
	el.Attrs = make([]Attr, 0, plain)
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
			continue
		}
		if strings.IndexByte(a.Name.Local, ':') >= 0 {
			return nil, fmt.Errorf("%w: malformed qualified name %q", ErrNotWellFormed, a.Name.Local)
		}
		var space string
		if a.Name.Space != "" {
			var ok bool
			if space, ok = r.lookupPrefix(a.Name.Space); !ok {
				return nil, fmt.Errorf("%w: unbound prefix %q", ErrNotWellFormed, a.Name.Space)
			}
			// Two prefixes bound to one namespace can spell the same
			// expanded name twice; the raw check above cannot see it.
			for _, b := range el.Attrs {
				if b.Name.Space == space && b.Name.Local == a.Name.Local {
					return nil, fmt.Errorf("%w: duplicate attribute {%s}%s", ErrNotWellFormed, space, a.Name.Local)
				}
			}
		}
		el.Attrs = append(el.Attrs, Attr{Name{space, a.Name.Local}, a.Value})
	}
	return el, nil
}

// ncName reports whether s, the part of a prefixed name after its colon,
// is a name on its own (Namespaces in XML 1.0: both parts are NCNames).
// encoding/xml checks "p:local" as one XML name, so "p:0" passes, and the
// element would be written back as the malformed <0/> (found by
// FuzzRoundTrip). ASCII is decided here; for the rare other first
// character, encoding/xml's own tables decide.
func ncName(s string) bool {
	if s == "" {
		return false
	}
	if c := s[0]; c < utf8.RuneSelf {
		return c == '_' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
	}
	_, err := xml.NewDecoder(strings.NewReader("<" + s + "/>")).RawToken()
	return err == nil
}

// checkDecl applies the Namespaces in XML 1.0 §3 constraints on xmlns:p.
func checkDecl(prefix, uri string) error {
	switch {
	case prefix == "xmlns":
		return fmt.Errorf("%w: the xmlns prefix cannot be declared", ErrNotWellFormed)
	case prefix == "xml" && uri != NSXML, prefix != "xml" && uri == NSXML, uri == nsXMLNS:
		return fmt.Errorf("%w: reserved prefix or namespace rebound", ErrNotWellFormed)
	case uri == "":
		return fmt.Errorf("%w: prefix %q undeclared", ErrNotWellFormed, prefix)
	}
	return nil
}

// lookup returns the namespace bound to prefix ("" for the default
// namespace), or "" if none is.
func (r *Reader) lookup(prefix string) string {
	uri, _ := r.lookupPrefix(prefix)
	return uri
}

func (r *Reader) lookupPrefix(prefix string) (string, bool) {
	if prefix == "xml" {
		return NSXML, true
	}
	for i := len(r.ns) - 1; i >= 0; i-- {
		if r.ns[i].prefix == prefix {
			return r.ns[i].uri, true
		}
	}
	return "", false
}

// fail classifies an error from the decoder and makes it sticky. The byte
// source's own error takes precedence: a limit or I/O failure may surface
// from encoding/xml as a syntax error about a truncated token.
func (r *Reader) fail(err error, atStart bool) error {
	switch serr := r.src.err; {
	case serr == io.EOF && atStart && r.src.n == 0:
		err = io.EOF
	case serr == io.EOF:
		err = fmt.Errorf("stream: connection closed inside an element: %w", io.ErrUnexpectedEOF)
	case serr != nil && errors.Is(serr, ErrLimit):
		err = serr
	case serr != nil:
		err = fmt.Errorf("stream: read: %w", serr)
	case errors.Is(err, ErrUnsupportedEncoding):
		err = fmt.Errorf("stream: %w", err)
	default:
		err = fmt.Errorf("%w: %w", ErrNotWellFormed, err)
	}
	r.err = err
	return err
}

// failf wraps kind with detail and makes it sticky.
func (r *Reader) failf(kind error, format string, args ...any) error {
	err := kind
	if format != "" {
		err = fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
	}
	r.err = err
	return err
}

func rawLen(n xml.Name) int {
	if n.Space == "" {
		return len(n.Local)
	}
	return len(n.Space) + 1 + len(n.Local)
}

func isSpace(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
