package stream

import (
	"slices"
	"strings"
	"testing"
)

const chatMessage = `<message from='juliet@example.com/balcony' id='ktx72v49' to='romeo@example.net' type='chat' xml:lang='en'>` +
	`<body>Art thou not Romeo, and a Montague? &lt;3</body>` +
	`<thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>` +
	`<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/>` +
	`<origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546014'/></message>`

func TestAccessors(t *testing.T) {
	el, err := open(t, chatMessage, Limits{}).Next()
	if err != nil {
		t.Fatal(err)
	}
	if got := el.Attr("to"); got != "romeo@example.net" {
		t.Errorf("Attr(to) = %q", got)
	}
	if got := el.Attr("lang"); got != "" {
		t.Errorf("Attr(lang) = %q: xml:lang is not unqualified", got)
	}
	if got := el.Lang(); got != "en" {
		t.Errorf("Lang() = %q", got)
	}
	if got := el.Child("body", "").Text(); got != "Art thou not Romeo, and a Montague? <3" {
		t.Errorf("body = %q", got)
	}
	if el.Child("body", NSServer) != nil {
		t.Error("Child matched the wrong namespace")
	}
	if c := el.Child("origin-id", "urn:xmpp:sid:0"); c == nil || c.Attr("id") == "" {
		t.Errorf("origin-id = %v", c)
	}
	var names []string
	for c := range el.Children() {
		names = append(names, c.Name.Local)
	}
	if want := []string{"body", "thread", "active", "request", "origin-id"}; !slices.Equal(names, want) {
		t.Errorf("Children = %v, want %v", names, want)
	}
}

func TestTextConcatenatesDirectText(t *testing.T) {
	el := NewElement("", "p").AddText("a").AddChild(NewElement("", "b").AddText("x")).AddText("c")
	el.Nodes = append(el.Nodes, Node{Text: "d"})
	if got := el.Text(); got != "acd" {
		t.Fatalf("Text() = %q", got)
	}
}

func TestSetAttr(t *testing.T) {
	el := NewElement(NSClient, "message", "to", "a", "type", "chat")
	el.SetAttr("from", "juliet@example.com/balcony")
	el.SetAttr("to", "b")
	el.SetAttr("type", "")
	want := []Attr{{Name{"", "to"}, "b"}, {Name{"", "from"}, "juliet@example.com/balcony"}}
	if !slices.Equal(el.Attrs, want) {
		t.Fatalf("Attrs = %v, want %v", el.Attrs, want)
	}
}

func TestCloneIsDeep(t *testing.T) {
	el, err := open(t, chatMessage, Limits{}).Next()
	if err != nil {
		t.Fatal(err)
	}
	c := el.Clone()
	if !c.Equal(el) {
		t.Fatal("clone differs")
	}
	c.SetAttr("from", "mallory@example.com")
	c.Child("body", "").Nodes[0].Text = "changed"
	if el.Attr("from") != "juliet@example.com/balcony" || el.Child("body", "").Text() == "changed" {
		t.Fatal("changing the clone changed the original")
	}
}

func TestAppendEscaping(t *testing.T) {
	el := NewElement("urn:x", "e", "a", "<'\"&>\t\n\r", "b", "ok\x00\xff\uFFFE")
	el.AddText("<&>]]>\r\n\t'\"\x01")
	want := `<e xmlns='urn:x' a='&lt;&apos;"&amp;&gt;&#x9;&#xA;&#xD;' b='ok` + "\uFFFD\uFFFD\uFFFD" + `'>` +
		"&lt;&amp;&gt;]]&gt;&#xD;\n\t'\"\uFFFD</e>"
	if got := el.String(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestAppendNamespaces(t *testing.T) {
	el := &Element{Name: Name{NSClient, "message"}, Nodes: []Node{
		{Elem: &Element{Name: Name{NSClient, "body"}}},
		{Elem: &Element{Name: Name{"", "bare"}}},
		{Elem: &Element{Name: Name{"urn:x", "x"},
			Attrs: []Attr{{Name{"urn:a", "p"}, "1"}, {Name{"urn:b", "q"}, "2"}, {Name{"urn:a", "r"}, "3"}, {Name{NSXML, "lang"}, "de"}},
			Nodes: []Node{{Elem: &Element{Name: Name{"urn:x", "y"}}}}}},
	}}
	tests := []struct {
		name  string
		scope string
		want  string
	}{
		{"standalone", "", `<message xmlns='jabber:client'><body/><bare xmlns=''/><x xmlns='urn:x' xmlns:ns0='urn:a' ns0:p='1' xmlns:ns1='urn:b' ns1:q='2' ns0:r='3' xml:lang='de'><y/></x></message>`},
		{"in a c2s stream", NSClient, `<message><body/><bare xmlns=''/><x xmlns='urn:x' xmlns:ns0='urn:a' ns0:p='1' xmlns:ns1='urn:b' ns1:q='2' ns0:r='3' xml:lang='de'><y/></x></message>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(el.Append(nil, tt.scope)); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestAppendStanzaRequalifies(t *testing.T) {
	// A carbon read from a c2s stream: the outer message and its body are
	// content, the forwarded message keeps jabber:client.
	in := `<message to='romeo@example.net'><body>hi</body>` +
		`<sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>` +
		`<message xmlns='jabber:client' from='juliet@example.com/balcony'><body>x</body></message>` +
		`</forwarded></sent></message>`
	stanza, err := open(t, in, Limits{}).Next()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		out  []byte
		want string
	}{
		{"c2s to c2s", stanza.AppendStanza(nil, NSClient), in},
		// The bytes are the same, but they now mean jabber:server.
		{"c2s to s2s", stanza.AppendStanza(nil, NSServer), in},
		{"no requalification with Append", stanza.Append(nil, NSServer),
			strings.Replace(in, "<message to=", "<message xmlns='jabber:client' to=", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.out); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
	// Read back from an s2s stream, the outer stanza is jabber:server and
	// the forwarded one is still jabber:client.
	s2s := NewReader(strings.NewReader(s2sHeader+string(stanza.AppendStanza(nil, NSServer))), Limits{})
	if _, err := s2s.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	got, err := s2s.Next()
	if err != nil {
		t.Fatal(err)
	}
	fwd := got.Child("sent", "urn:xmpp:carbons:2").Child("forwarded", "urn:xmpp:forward:0")
	if got.Name.Space != NSServer || got.Child("body", NSServer) == nil || fwd.Child("message", NSClient) == nil {
		t.Fatalf("requalified wrongly: %s", got)
	}
}

func TestAppendStanzaStreamPrefix(t *testing.T) {
	el, err := open(t, `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`, Limits{}).Next()
	if err != nil {
		t.Fatal(err)
	}
	want := `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>`
	if got := string(el.AppendStanza(nil, NSServer)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// Standalone there is no stream prefix to rely on.
	if got := el.String(); !strings.HasPrefix(got, `<features xmlns='http://etherx.jabber.org/streams'>`) {
		t.Fatalf("standalone: %s", got)
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []string{
		chatMessage,
		`<message xmlns:x='urn:x' x:a='&amp;&lt;&gt;&apos;&quot;'><x:foo><bar xmlns=''/></x:foo><![CDATA[<&>]]></message>`,
		"<iq type='result' id='1'><query xmlns='jabber:iq:roster'>\n  <item jid='a@b' name='A &amp; B'><group>Ünïcödé ☃</group></item>\n</query></iq>",
		`<presence a='&#9;&#10;&#13;'>&#13;</presence>`,
		`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`,
	}
	for _, in := range tests {
		t.Run(in[:12], func(t *testing.T) {
			el, err := open(t, in, Limits{}).Next()
			if err != nil {
				t.Fatal(err)
			}
			for _, out := range []string{string(el.AppendStanza(nil, NSClient)), el.String()} {
				again, err := open(t, out, Limits{}).Next()
				if err != nil {
					t.Fatalf("re-reading %s: %v", out, err)
				}
				if !again.Equal(el) {
					t.Fatalf("round trip changed the tree:\nfirst  %s\nsecond %s", el, again)
				}
			}
		})
	}
}

func TestEqual(t *testing.T) {
	base := func() *Element {
		return NewElement(NSClient, "m", "a", "1").AddText("t").AddChild(NewElement("urn:x", "c"))
	}
	tests := []struct {
		name   string
		change func(*Element)
	}{
		{"name", func(e *Element) { e.Name.Local = "n" }},
		{"namespace", func(e *Element) { e.Name.Space = NSServer }},
		{"attribute value", func(e *Element) { e.Attrs[0].Value = "2" }},
		{"attribute namespace", func(e *Element) { e.Attrs[0].Name.Space = "urn:y" }},
		{"text", func(e *Element) { e.Nodes[0].Text = "u" }},
		{"child", func(e *Element) { e.Nodes[1].Elem.Name.Space = "urn:y" }},
		{"extra node", func(e *Element) { e.AddChild(NewElement("", "d")) }},
		{"text becomes element", func(e *Element) { e.Nodes[0] = Node{Elem: NewElement("", "t")} }},
	}
	if !base().Equal(base()) {
		t.Fatal("equal elements differ")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := base()
			tt.change(e)
			if e.Equal(base()) || base().Equal(e) {
				t.Fatal("difference not seen")
			}
		})
	}
}
