package stream

import (
	"bytes"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	chatMessage,
	`<message xmlns:x='urn:x' x:a='&amp;&lt;'><x:foo><bar xmlns=''/></x:foo><![CDATA[<&>]]></message>`,
	`<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`,
	"<presence a='&#9;&#13;'>&#13;\r\n</presence>  <iq/></stream:stream>",
	`<message><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>x</body></message></forwarded></sent></message>`,
	`<a xmlns=''><b xmlns='jabber:client'/></a>`,
	`<message><!-- c --></message>`,
	billionLaughs,
	`<message>&lol;</message>`,
	strings.Repeat("<a>", 40),
	`<m xmlns:a='urn:x' xmlns:b='urn:x' a:t='1' b:u='2' xml:lang='de'/>`,
}

// fuzzLimits are small so that the fuzzer reaches every limit quickly.
var fuzzLimits = Limits{MaxStanzaSize: 4096, MaxDepth: 8, MaxAttrs: 6, MaxNameLen: 16, MaxAttrValueLen: 64}

func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		src := &countingReader{r: bytes.NewReader(append([]byte(c2sHeader), body...))}
		r := openOn(t, src, fuzzLimits)
		for {
			el, err := r.Next()
			if err != nil {
				break
			}
			checkLimits(t, el, fuzzLimits, 1)
		}
		if src.n > len(c2sHeader)+len(body) {
			t.Fatalf("read %d bytes of %d", src.n, len(c2sHeader)+len(body))
		}
	})
}

func checkLimits(t *testing.T, el *Element, lim Limits, depth int) {
	t.Helper()
	if depth > lim.MaxDepth {
		t.Fatalf("depth %d > %d", depth, lim.MaxDepth)
	}
	if len(el.Attrs) > lim.MaxAttrs || len(el.Name.Local) > lim.MaxNameLen {
		t.Fatalf("element %q with %d attributes passed the limits", el.Name.Local, len(el.Attrs))
	}
	for _, a := range el.Attrs {
		if len(a.Name.Local) > lim.MaxNameLen || len(a.Value) > lim.MaxAttrValueLen {
			t.Fatalf("attribute %q passed the limits", a.Name.Local)
		}
	}
	for c := range el.Children() {
		checkLimits(t, c, lim, depth+1)
	}
}

// reparseLimits are generous: serialising may add declarations and escapes.
var reparseLimits = Limits{MaxStanzaSize: 1 << 30, MaxAttrs: 1 << 20, MaxNameLen: 1 << 20, MaxAttrValueLen: 1 << 30, MaxDepth: 1 << 20}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stanza string) {
		el, err := NewReader(strings.NewReader(c2sHeader+stanza), Limits{}).readFirst()
		if err != nil {
			return
		}
		cases := []struct {
			header, out string
			want        *Element
		}{
			{c2sHeader, string(el.AppendStanza(nil, NSClient)), requalify(el, NSClient)},
			{s2sHeader, string(el.AppendStanza(nil, NSServer)), requalify(el, NSServer)},
			// Append is faithful wherever it is told the scope.
			{c2sHeader, string(el.Append(nil, NSClient)), el},
			{s2sHeader, string(el.Append(nil, NSServer)), el},
		}
		for _, c := range cases {
			again, err := NewReader(strings.NewReader(c.header+c.out), reparseLimits).readFirst()
			if err != nil {
				t.Fatalf("%s\ndoes not re-parse: %v", c.out, err)
			}
			if !again.Equal(c.want) {
				t.Fatalf("round trip changed the tree\nin   %q\nout  %q\nwant %s\ngot  %s", stanza, c.out, c.want, again)
			}
		}
	})
}

// readFirst reads the header and the first element.
func (r *Reader) readFirst() (*Element, error) {
	if _, err := r.ReadHeader(); err != nil {
		return nil, err
	}
	return r.Next()
}

// requalify is the tree AppendStanza promises the peer will read: an
// independent restatement of its rule, for the fuzzer to check it against.
func requalify(el *Element, to string) *Element {
	c := el.Clone()
	from := c.Name.Space
	if from != NSClient && from != NSServer && from != "" {
		return c
	}
	var walk func(e *Element)
	walk = func(e *Element) {
		if e.Name.Space != from {
			return
		}
		e.Name.Space = to
		for k := range e.Children() {
			walk(k)
		}
	}
	walk(c)
	return c
}
