package stream

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadHeader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Header
	}{
		{"c2s", c2sHeader, Header{To: "example.org", Version: "1.0", Lang: "en", Namespace: NSClient}},
		{"s2s with dialback", s2sHeader, Header{To: "example.org", From: "example.net", Version: "1.0", Namespace: NSServer,
			Decls: map[string]string{"db": "jabber:server:dialback"}}},
		{"no declaration, other prefix, minor version",
			"\n<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:client' id='abc' version='01.7'>",
			Header{ID: "abc", Version: "01.7", Namespace: NSClient}},
		{"double quotes and utf-8 declaration",
			`<?xml version="1.0" encoding="UTF-8"?><stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" version="1.0" from="ünï.example">`,
			Header{From: "ünï.example", Version: "1.0", Namespace: NSClient}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.in), Limits{})
			h, err := r.ReadHeader()
			if err != nil {
				t.Fatal(err)
			}
			if h.To != tt.want.To || h.From != tt.want.From || h.ID != tt.want.ID || h.Version != tt.want.Version ||
				h.Lang != tt.want.Lang || h.Namespace != tt.want.Namespace || len(h.Decls) != len(tt.want.Decls) {
				t.Fatalf("got %+v, want %+v", h, tt.want)
			}
			for k, v := range tt.want.Decls {
				if h.Decls[k] != v {
					t.Fatalf("Decls[%q] = %q, want %q", k, h.Decls[k], v)
				}
			}
		})
	}
}

func TestReadHeaderErrors(t *testing.T) {
	const tail = ` xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`
	tests := []struct {
		name string
		in   string
		want Condition
	}{
		{"doctype before header", `<?xml version='1.0'?><!DOCTYPE stream:stream><stream:stream xmlns='jabber:client'` + tail, RestrictedXML},
		{"comment before header", `<!-- hi --><stream:stream xmlns='jabber:client'` + tail, RestrictedXML},
		{"processing instruction", `<?xml-stylesheet href='a'?><stream:stream xmlns='jabber:client'` + tail, RestrictedXML},
		{"declaration not first", ` <?xml version='1.0'?><stream:stream xmlns='jabber:client'` + tail, RestrictedXML},
		{"billion laughs", billionLaughs + `<stream:stream xmlns='jabber:client'` + tail, RestrictedXML},
		{"xxe", `<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><stream:stream xmlns='jabber:client'` + tail, RestrictedXML},
		{"wrong stream namespace", `<stream:stream xmlns='jabber:client' xmlns:stream='http://example.com/streams' version='1.0'>`, InvalidNamespace},
		{"wrong content namespace", `<stream:stream xmlns='jabber:component:accept'` + tail, InvalidNamespace},
		{"no content namespace", `<stream:stream` + tail, InvalidNamespace},
		{"unprefixed stream element", `<stream xmlns='http://etherx.jabber.org/streams' version='1.0'>`, BadNamespacePrefix},
		{"root is not stream", `<stream:flow xmlns='jabber:client'` + tail, BadFormat},
		{"unbound prefix", `<stream:stream xmlns='jabber:client' version='1.0'>`, NotWellFormed},
		{"no version", `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, UnsupportedVersion},
		{"version 2", `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='2.0'>`, UnsupportedVersion},
		{"version garbage", `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0a'>`, BadFormat},
		{"latin-1", `<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns='jabber:client'` + tail, UnsupportedEncoding},
		{"text before header", `hello<stream:stream xmlns='jabber:client'` + tail, NotWellFormed},
		{"end tag first", `</stream:stream>`, NotWellFormed},
		{"header too large", `<stream:stream xmlns='jabber:client' to='` + strings.Repeat("a", DefaultMaxHeaderSize) + `'` + tail, PolicyViolation},
		{"endless whitespace", strings.Repeat(" ", DefaultMaxHeaderSize+1), PolicyViolation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(strings.NewReader(tt.in), Limits{}).ReadHeader()
			wantCondition(t, err, tt.want)
		})
	}
}

func TestReadHeaderEOF(t *testing.T) {
	if _, err := NewReader(strings.NewReader(""), Limits{}).ReadHeader(); err != io.EOF {
		t.Fatalf("empty input: %v, want io.EOF", err)
	}
	_, err := NewReader(strings.NewReader("<stream:stream xmlns='jab"), Limits{}).ReadHeader()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated header: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, ok := ConditionOf(err); ok {
		t.Fatal("a truncated connection must not map to a stream error")
	}
}

func TestNext(t *testing.T) {
	msg := func(nodes ...Node) *Element {
		return &Element{Name: Name{NSClient, "message"}, Nodes: nodes}
	}
	el := func(e *Element) Node { return Node{Elem: e} }
	text := func(s string) Node { return Node{Text: s} }
	tests := []struct {
		name string
		in   string
		want *Element
	}{
		{"chat message",
			`<message to='romeo@example.net' type='chat' xml:lang='en'><body>Hi &amp; bye &#x263A;&#9731;</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
			&Element{Name: Name{NSClient, "message"},
				Attrs: []Attr{{Name{"", "to"}, "romeo@example.net"}, {Name{"", "type"}, "chat"}, {Name{NSXML, "lang"}, "en"}},
				Nodes: []Node{
					el(&Element{Name: Name{NSClient, "body"}, Nodes: []Node{text("Hi & bye ☺☃")}}),
					el(&Element{Name: Name{"http://jabber.org/protocol/chatstates", "active"}}),
				}}},
		{"prefixed child and its default-namespace grandchild",
			`<message><x:foo xmlns:x='urn:x' x:a='1' b='2'><bar/><x:baz/></x:foo></message>`,
			msg(el(&Element{Name: Name{"urn:x", "foo"},
				Attrs: []Attr{{Name{"urn:x", "a"}, "1"}, {Name{"", "b"}, "2"}},
				Nodes: []Node{el(&Element{Name: Name{NSClient, "bar"}}), el(&Element{Name: Name{"urn:x", "baz"}})}}))},
		{"stream-level element", `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`,
			&Element{Name: Name{NSStream, "features"}, Nodes: []Node{el(&Element{Name: Name{"urn:ietf:params:xml:ns:xmpp-tls", "starttls"},
				Nodes: []Node{el(&Element{Name: Name{"urn:ietf:params:xml:ns:xmpp-tls", "required"}})}})}}},
		{"cdata merged with text, CRLF normalised", "<message><body>a<![CDATA[<b>&]]>c\r\nd</body></message>",
			msg(el(&Element{Name: Name{NSClient, "body"}, Nodes: []Node{text("a<b>&c\nd")}}))},
		{"mixed content keeps whitespace", "<message>\n <body>x</body>\n</message>",
			msg(text("\n "), el(&Element{Name: Name{NSClient, "body"}, Nodes: []Node{text("x")}}), text("\n"))},
		{"empty default namespace", `<message><x xmlns=''/></message>`, msg(el(&Element{Name: Name{"", "x"}}))},
		{"character reference for CR survives", `<message a='x&#xD;&#9;y'>&#13;</message>`,
			&Element{Name: Name{NSClient, "message"}, Attrs: []Attr{{Name{"", "a"}, "x\r\ty"}}, Nodes: []Node{text("\r")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := open(t, tt.in+"</stream:stream>", Limits{})
			got, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if _, err := r.Next(); err != ErrStreamClosed {
				t.Fatalf("after element: %v, want ErrStreamClosed", err)
			}
			if _, err := r.Next(); err != ErrStreamClosed {
				t.Fatalf("after close: %v, want ErrStreamClosed again", err)
			}
		})
	}
}

const billionLaughs = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;"><!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;"><!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;"><!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;"><!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;"><!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>`

func TestNextErrors(t *testing.T) {
	small := Limits{MaxAttrs: 3, MaxNameLen: 8, MaxAttrValueLen: 4}
	tests := []struct {
		name string
		in   string
		lim  Limits
		want Condition
	}{
		{"comment between stanzas", `<!-- x -->`, Limits{}, RestrictedXML},
		{"comment in stanza", `<message><!-- x --></message>`, Limits{}, RestrictedXML},
		{"processing instruction", `<message><?php x?></message>`, Limits{}, RestrictedXML},
		{"xml declaration mid-stream", `<?xml version='1.0'?>`, Limits{}, RestrictedXML},
		{"doctype mid-stream", `<!DOCTYPE message>`, Limits{}, RestrictedXML},
		{"entity declaration", `<message><!ENTITY a "b"></message>`, Limits{}, RestrictedXML},
		{"billion laughs after header", billionLaughs + `<message>&lol9;</message>`, Limits{}, RestrictedXML},
		{"billion laughs reference without DTD", `<message>&lol9;</message>`, Limits{}, NotWellFormed},
		{"xxe reference", `<message>&xxe;</message>`, Limits{}, NotWellFormed},
		{"undefined entity in attribute", `<message to='&foo;'/>`, Limits{}, NotWellFormed},
		{"ampersand alone", `<message>a & b</message>`, Limits{}, NotWellFormed},
		{"character reference to NUL", `<message>&#0;</message>`, Limits{}, NotWellFormed},
		{"raw control character", "<message>\x01</message>", Limits{}, NotWellFormed},
		{"invalid UTF-8", "<message>\xff</message>", Limits{}, NotWellFormed},
		{"cdata end in text", `<message>]]></message>`, Limits{}, NotWellFormed},
		{"less-than in attribute", `<message to='<'/>`, Limits{}, NotWellFormed},
		{"unquoted attribute", `<message to=a/>`, Limits{}, NotWellFormed},
		{"mismatched end tag", `<message><body></message></body>`, Limits{}, NotWellFormed},
		{"end tag with other prefix", `<a:message xmlns:a='jabber:client' xmlns:b='jabber:client'></b:message>`, Limits{}, NotWellFormed},
		{"unexpected end tag", `</message>`, Limits{}, NotWellFormed},
		{"unbound element prefix", `<x:message/>`, Limits{}, NotWellFormed},
		{"unbound attribute prefix", `<message x:a='1'/>`, Limits{}, NotWellFormed},
		{"prefix out of scope", `<message><x:a xmlns:x='urn:x'/><x:b/></message>`, Limits{}, NotWellFormed},
		{"duplicate attribute", `<message to='a' to='b'/>`, Limits{}, NotWellFormed},
		{"duplicate expanded attribute", `<message xmlns:a='urn:x' xmlns:b='urn:x' a:t='1' b:t='2'/>`, Limits{}, NotWellFormed},
		{"duplicate declaration", `<message xmlns:a='urn:x' xmlns:a='urn:y'/>`, Limits{}, NotWellFormed},
		{"undeclared prefix", `<message xmlns:a=''/>`, Limits{}, NotWellFormed},
		{"xmlns prefix declared", `<message xmlns:xmlns='urn:x'/>`, Limits{}, NotWellFormed},
		{"xml prefix rebound", `<message xmlns:xml='urn:x'/>`, Limits{}, NotWellFormed},
		{"empty local name", `<message a:='1'/>`, Limits{}, NotWellFormed},
		// encoding/xml takes "p:0" for a name; the part after the colon
		// is not one (found by FuzzRoundTrip).
		{"element local name starts with a digit", `<stream:000/>`, Limits{}, NotWellFormed},
		{"element local name starts with a hyphen", `<a:-m xmlns:a='jabber:client'/>`, Limits{}, NotWellFormed},
		{"attribute local name starts with a digit", `<message xml:0='1'/>`, Limits{}, NotWellFormed},
		{"declared prefix starts with a digit", `<message xmlns:0='urn:x'/>`, Limits{}, NotWellFormed},
		{"non-ASCII local name not a name start", "<a:\u0300m xmlns:a='jabber:client'/>", Limits{}, NotWellFormed},
		{"text at stream level", `hello`, Limits{}, BadFormat},
		{"cdata at stream level", `<![CDATA[x]]>`, Limits{}, BadFormat},
		{"too many attributes", `<message a='1' b='2' c='3' d='4'/>`, small, PolicyViolation},
		{"declarations count as attributes", `<message xmlns:a='u' xmlns:b='u' xmlns:c='u' xmlns:d='u'/>`, small, PolicyViolation},
		{"element name too long", `<messagexyz/>`, small, PolicyViolation},
		{"attribute name too long", `<m abcdefghi='1'/>`, small, PolicyViolation},
		{"attribute value too long", `<m a='12345'/>`, small, PolicyViolation},
		{"too many namespaces in scope", `<m xmlns:a='u' xmlns:b='u'><n xmlns:c='u'/></m>`, Limits{MaxNamespaces: 4}, PolicyViolation},
		{"too deep", strings.Repeat("<a>", 4) + strings.Repeat("</a>", 4), Limits{MaxDepth: 3}, PolicyViolation},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := open(t, tt.in+"<presence/></stream:stream>", tt.lim)
			_, err := readAll(r)
			wantCondition(t, err, tt.want)
			if _, again := r.Next(); again != err {
				t.Fatalf("error is not sticky: %v then %v", err, again)
			}
		})
	}
}

func TestNextWithinLimits(t *testing.T) {
	// The boundary cases of TestNextErrors, one step lower, must pass.
	small := Limits{MaxAttrs: 3, MaxNameLen: 8, MaxAttrValueLen: 4, MaxDepth: 3}
	in := `<message a='1234' b='2' xmlns:ab='u'><a><a/></a></message>`
	if _, err := open(t, in, small).Next(); err != nil {
		t.Fatal(err)
	}
	// The header's two declarations count towards MaxNamespaces.
	in = `<m xmlns:a='u' xmlns:b='u'><n/></m>`
	if _, err := open(t, in, Limits{MaxNamespaces: 4}).Next(); err != nil {
		t.Fatal(err)
	}
}

func TestEndOfInput(t *testing.T) {
	r := open(t, "<presence/> ", Limits{})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("peer hung up between stanzas: %v, want io.EOF", err)
	}
	r = open(t, "<message><body>half", Limits{})
	_, err := r.Next()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("peer hung up inside a stanza: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestKeepalives(t *testing.T) {
	var seen []int
	r := open(t, " \n\t<presence/>\n\n<presence/></stream:stream>", Limits{})
	r.SetKeepaliveHook(func(n int) { seen = append(seen, n) })
	els, err := readAll(r)
	if err != ErrStreamClosed || len(els) != 2 {
		t.Fatalf("got %d elements, %v", len(els), err)
	}
	if len(seen) != 2 || seen[0] != 3 || seen[1] != 2 {
		t.Fatalf("hook saw %v, want [3 2]", seen)
	}
}

func TestKeepaliveReportedBeforeBlocking(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() {
		_, _ = io.WriteString(pw, c2sHeader)
	}()
	r := openOn(t, pr, Limits{})
	pinged := make(chan int, 1)
	r.SetKeepaliveHook(func(n int) { pinged <- n })
	type result struct {
		el  *Element
		err error
	}
	done := make(chan result, 1)
	go func() {
		el, err := r.Next()
		done <- result{el, err}
	}()
	// The stanza is only written once the hook has fired, so Next must
	// report the keepalive while it is still waiting for input.
	if _, err := io.WriteString(pw, " "); err != nil {
		t.Fatal(err)
	}
	if n := <-pinged; n != 1 {
		t.Fatalf("hook got %d, want 1", n)
	}
	if _, err := io.WriteString(pw, "<presence/>"); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.err != nil || res.el.Name.Local != "presence" {
		t.Fatalf("got %v, %v", res.el, res.err)
	}
}

func TestStanzaSizeLimit(t *testing.T) {
	const limit = 1000
	stanza := func(size int) string {
		open, close := "<message><body>", "</body></message>"
		return open + strings.Repeat("x", size-len(open)-len(close)) + close
	}
	tests := []struct {
		name string
		size int
		ok   bool
	}{
		{"exactly the limit", limit, true},
		{"one byte over", limit + 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whitespace before the stanza does not count against it.
			r := open(t, "   "+stanza(tt.size)+stanza(tt.size)+"</stream:stream>", Limits{MaxStanzaSize: limit})
			els, err := readAll(r)
			if tt.ok {
				if err != ErrStreamClosed || len(els) != 2 {
					t.Fatalf("got %d elements, %v", len(els), err)
				}
				return
			}
			wantCondition(t, err, PolicyViolation)
			var le *LimitError
			if !errors.As(err, &le) || le.Limit != "MaxStanzaSize" {
				t.Fatalf("%v is not a MaxStanzaSize LimitError", err)
			}
		})
	}
}

func TestEndlessStanzaStopsAtLimit(t *testing.T) {
	// A 100 MB (here: endless) body must be cut off after the limit, not
	// buffered. The reader may pull at most one buffer beyond it.
	src := &countingReader{r: io.MultiReader(strings.NewReader(c2sHeader+"<message><body>"), &repeatReader{s: "lol "})}
	r := openOn(t, src, Limits{})
	_, err := r.Next()
	wantCondition(t, err, PolicyViolation)
	if max := len(c2sHeader) + DefaultMaxStanzaSize + 4096; src.n > max {
		t.Fatalf("read %d bytes, want at most %d", src.n, max)
	}
}

func TestEndlessAttributeStopsAtLimit(t *testing.T) {
	src := &countingReader{r: io.MultiReader(strings.NewReader(c2sHeader+"<message to='"), &repeatReader{s: "a"})}
	r := openOn(t, src, Limits{MaxStanzaSize: 10000})
	_, err := r.Next()
	wantCondition(t, err, PolicyViolation)
	if src.n > len(c2sHeader)+10000+4096 {
		t.Fatalf("read %d bytes", src.n)
	}
}

func TestDeepNestingStopsAtDepthLimit(t *testing.T) {
	const depth = 10000
	src := &countingReader{r: strings.NewReader(c2sHeader + strings.Repeat("<a>", depth) + strings.Repeat("</a>", depth))}
	r := openOn(t, src, Limits{})
	_, err := r.Next()
	var le *LimitError
	if !errors.As(err, &le) || le.Limit != "MaxDepth" {
		t.Fatalf("got %v, want a MaxDepth LimitError", err)
	}
	// Parsing stopped at depth 65: only the first buffers were read.
	if src.n > len(c2sHeader)+3*(DefaultMaxDepth+1)+4096 {
		t.Fatalf("read %d bytes of a %d-deep document", src.n, depth)
	}
	if len(r.stack) != DefaultMaxDepth {
		t.Fatalf("parse stack holds %d frames, want %d", len(r.stack), DefaultMaxDepth)
	}
}

func TestRestartAfterSASL(t *testing.T) {
	// A pipelining client sends the new header right behind <auth/>.
	in := c2sHeader + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>` +
		c2sHeader + `<iq type='set' id='b1'/>`
	r := openOn(t, strings.NewReader(in), Limits{})
	auth, err := r.Next()
	if err != nil || auth.Name.Local != "auth" {
		t.Fatalf("got %v, %v", auth, err)
	}
	if r.Buffered() == 0 {
		t.Fatal("the pipelined header should still be buffered")
	}
	r.Restart()
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	iq, err := r.Next()
	if err != nil || iq.Attr("id") != "b1" {
		t.Fatalf("got %v, %v", iq, err)
	}
}

func TestResetAfterSTARTTLS(t *testing.T) {
	const starttls = `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`
	tests := []struct {
		name     string
		plain    string // what the peer sent before the TLS handshake
		wantErr  error
		buffered int
	}{
		{"clean", c2sHeader + starttls, nil, 0},
		{"injected stanza", c2sHeader + starttls + `<iq type='get' id='evil'/>`, ErrBufferedData, len(`<iq type='get' id='evil'/>`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := openOn(t, strings.NewReader(tt.plain), Limits{})
			el, err := r.Next()
			if err != nil || el.Name.Local != "starttls" {
				t.Fatalf("got %v, %v", el, err)
			}
			if r.Buffered() != tt.buffered {
				t.Fatalf("Buffered() = %d, want %d: the reader read past <starttls/>", r.Buffered(), tt.buffered)
			}
			tls := strings.NewReader(c2sHeader + `<iq type='get' id='good'/>`)
			err = r.Reset(tls)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Reset: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if _, err := r.ReadHeader(); err != nil {
				t.Fatal(err)
			}
			iq, err := r.Next()
			if err != nil || iq.Attr("id") != "good" {
				t.Fatalf("got %v, %v", iq, err)
			}
		})
	}
}

func TestMisuse(t *testing.T) {
	r := NewReader(strings.NewReader(c2sHeader), Limits{})
	if _, err := r.Next(); err == nil {
		t.Fatal("Next before ReadHeader succeeded")
	}
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadHeader(); err == nil {
		t.Fatal("second ReadHeader succeeded")
	}
}

// stepReader returns its steps one Read at a time; a step with an error
// returns that error.
type stepReader struct {
	steps []any
}

func (s *stepReader) Read(p []byte) (int, error) {
	if len(s.steps) == 0 {
		return 0, io.EOF
	}
	step := s.steps[0]
	s.steps = s.steps[1:]
	if err, ok := step.(error); ok {
		return 0, err
	}
	return copy(p, step.(string)), nil
}

func TestErrorBetweenElementsIsNotFinal(t *testing.T) {
	timeout := errors.New("i/o timeout")
	r := openOn(t, &stepReader{steps: []any{c2sHeader, "<presence/> ", timeout, "<iq id='1'/>", timeout, "<message>", timeout}}, Limits{})
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, timeout) {
		t.Fatalf("got %v, want the timeout", err)
	}
	// The idle timer fired between stanzas; the session may carry on.
	if el, err := r.Next(); err != nil || el.Attr("id") != "1" {
		t.Fatalf("after the timeout: %v, %v", el, err)
	}
	// A timeout inside an element leaves the parser mid-token: final.
	if _, err := r.Next(); !errors.Is(err, timeout) {
		t.Fatalf("got %v, want the timeout", err)
	}
	if _, err := r.Next(); !errors.Is(err, timeout) {
		t.Fatalf("a failure inside an element must be final, got %v", err)
	}
}

// TestPrefixedNonASCIINames checks that the local-name check lets through
// the names encoding/xml accepts after a prefix, ASCII or not.
func TestPrefixedNonASCIINames(t *testing.T) {
	for _, in := range []string{
		`<a:émoji xmlns:a='urn:x'/>`,
		`<a:名前 xmlns:a='urn:x'/>`,
		`<message xmlns:é='urn:x' é:k='v'/>`,
		`<a:_x xmlns:a='urn:x'/>`,
	} {
		r := open(t, in+"</stream:stream>", Limits{})
		if _, err := r.Next(); err != nil {
			t.Errorf("%s: %v", in, err)
		}
	}
}
