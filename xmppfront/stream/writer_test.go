package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestWriterHeader(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	h := Header{From: "example.org", To: "example.net", ID: "x'1", Lang: "en", Namespace: NSServer,
		Decls: map[string]string{"db": "jabber:server:dialback", "stream": "urn:evil"}}
	if err := w.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	want := `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='example.net' from='example.org' id='x&apos;1' version='1.0' xml:lang='en'>`
	if buf.String() != want {
		t.Fatalf("got  %s\nwant %s", buf.String(), want)
	}
	// And our own reader accepts it.
	got, err := NewReader(&buf, Limits{}).ReadHeader()
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "x'1" || got.Decls["db"] != "jabber:server:dialback" || got.Namespace != NSServer {
		t.Fatalf("read back %+v", got)
	}
	if err := w.WriteHeader(h); err == nil {
		t.Fatal("second header written")
	}
}

func TestWriterStanzasAcrossStreams(t *testing.T) {
	// A stanza read from an s2s stream, written into a c2s stream, reads
	// back in jabber:client.
	r := NewReader(strings.NewReader(s2sHeader+`<message from='a@example.net' to='b@example.org'><body>x</body></message>`), Limits{})
	if _, err := r.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	in, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if err := w.WriteHeader(Header{Namespace: NSClient}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteElement(in); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	els, err := readAll(openOn(t, &buf, Limits{}))
	if err != ErrStreamClosed || len(els) != 1 {
		t.Fatalf("got %d elements, %v", len(els), err)
	}
	if els[0].Name.Space != NSClient || els[0].Child("body", NSClient).Text() != "x" {
		t.Fatalf("got %s", els[0])
	}
}

func TestWriteErrorBeforeHeader(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	se := StreamError{Condition: SeeOtherHost, Content: "[2001:db8::1]:5222", Text: "moved <here>", Lang: "en"}
	if err := w.WriteError(se); err != nil {
		t.Fatal(err)
	}
	wantTail := `<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>[2001:db8::1]:5222</see-other-host>` +
		`<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>moved &lt;here&gt;</text></stream:error></stream:stream>`
	if !strings.HasSuffix(buf.String(), wantTail) {
		t.Fatalf("got %s", buf.String())
	}
	r := openOn(t, &buf, Limits{})
	el, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := ParseStreamError(el)
	if !ok || got != se {
		t.Fatalf("parsed %+v (%v), want %+v", got, ok, se)
	}
	if _, err := r.Next(); err != ErrStreamClosed {
		t.Fatalf("after error: %v", err)
	}
	if err := w.WriteError(se); err == nil {
		t.Fatal("wrote to a closed stream")
	}
	if err := w.WriteElement(NewElement("", "presence")); err == nil {
		t.Fatal("wrote a stanza to a closed stream")
	}
}

func TestWriterRestart(t *testing.T) {
	var plain, tls bytes.Buffer
	w := NewWriter(&plain)
	if err := w.WriteHeader(Header{}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteElement(NewElement("urn:ietf:params:xml:ns:xmpp-tls", "proceed")); err != nil {
		t.Fatal(err)
	}
	w.Reset(&tls)
	if err := w.WriteHeader(Header{}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(plain.String(), "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>") || !strings.HasPrefix(tls.String(), "<?xml") {
		t.Fatalf("plain %q, tls %q", plain.String(), tls.String())
	}
}

func TestParseStreamError(t *testing.T) {
	tests := []struct {
		in   string
		want StreamError
		ok   bool
	}{
		{`<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><escape-your-data xmlns='urn:example'/></stream:error>`,
			StreamError{Condition: HostUnknown}, true},
		{`<stream:error><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>why</text></stream:error>`,
			StreamError{Condition: UndefinedCondition, Text: "why"}, true},
		{`<error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></error>`, StreamError{}, false},
	}
	for _, tt := range tests {
		el, err := open(t, tt.in, Limits{}).Next()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := ParseStreamError(el)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: got %+v %v, want %+v %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestConditionOf(t *testing.T) {
	tests := []struct {
		err  error
		want Condition
		ok   bool
	}{
		{nil, "", false},
		{ErrStreamClosed, "", false},
		{io.EOF, "", false},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), "", false},
		{errAny, "", false},
		{fmt.Errorf("%w: comment", ErrRestrictedXML), RestrictedXML, true},
		{fmt.Errorf("%w: x", ErrNotWellFormed), NotWellFormed, true},
		{&LimitError{"MaxDepth", 1}, PolicyViolation, true},
		{fmt.Errorf("%w: 3 bytes", ErrBufferedData), PolicyViolation, true},
		{ErrBadFormat, BadFormat, true},
		{ErrInvalidNamespace, InvalidNamespace, true},
		{ErrBadNamespacePrefix, BadNamespacePrefix, true},
		{ErrUnsupportedVersion, UnsupportedVersion, true},
		{fmt.Errorf("xml: %w", ErrUnsupportedEncoding), UnsupportedEncoding, true},
	}
	for _, tt := range tests {
		got, ok := ConditionOf(tt.err)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ConditionOf(%v) = %q %v, want %q %v", tt.err, got, ok, tt.want, tt.ok)
		}
		se, ok := StreamErrorFor(tt.err)
		if ok != tt.ok || se.Condition != tt.want {
			t.Errorf("StreamErrorFor(%v) = %+v %v", tt.err, se, ok)
		}
	}
	if !errors.Is(&LimitError{}, ErrLimit) {
		t.Error("LimitError does not match ErrLimit")
	}
}

// writes records each Write it is given.
type writes struct{ calls []string }

func (w *writes) Write(p []byte) (int, error) {
	w.calls = append(w.calls, string(p))
	return len(p), nil
}

// TestWriterQueue: queued elements go out with the next write, in order,
// in one Write; Flush writes them alone; a restart drops them.
func TestWriterQueue(t *testing.T) {
	var out writes
	w := NewWriter(&out)
	if err := w.QueueElement(NewElement("", "message")); err == nil {
		t.Fatal("queued an element before the header")
	}
	if err := w.WriteHeader(Header{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"1", "2"} {
		if err := w.QueueElement(NewElement("", "message", "id", id)); err != nil {
			t.Fatal(err)
		}
	}
	if len(out.calls) != 1 || w.Queued() == 0 {
		t.Fatalf("queueing wrote: %d writes, %d bytes queued", len(out.calls), w.Queued())
	}
	if err := w.WriteElement(NewElement("", "message", "id", "3")); err != nil {
		t.Fatal(err)
	}
	want := `<message id='1'/><message id='2'/><message id='3'/>`
	if len(out.calls) != 2 || out.calls[1] != want || w.Queued() != 0 {
		t.Fatalf("writes %q, %d bytes queued; want the three in one write", out.calls[1:], w.Queued())
	}
	if err := w.Flush(); err != nil || len(out.calls) != 2 {
		t.Fatalf("flush of nothing: %v, %d writes", err, len(out.calls))
	}
	if err := w.QueueElement(NewElement("", "message", "id", "4")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil || len(out.calls) != 3 || out.calls[2] != `<message id='4'/>` {
		t.Fatalf("flush: %v, writes %q", err, out.calls[2:])
	}
	// Queued, then the stream ends with an error: the error follows them.
	if err := w.QueueElement(NewElement("", "message", "id", "5")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteError(StreamError{Condition: SystemShutdown}); err != nil {
		t.Fatal(err)
	}
	if last := out.calls[len(out.calls)-1]; !strings.HasPrefix(last, `<message id='5'/><stream:error>`) {
		t.Fatalf("error write %q", last)
	}
	// A restart drops what the old stream had queued.
	w.Restart()
	if err := w.WriteHeader(Header{}); err != nil {
		t.Fatal(err)
	}
	if err := w.QueueElement(NewElement("", "message", "id", "6")); err != nil {
		t.Fatal(err)
	}
	w.Restart()
	if w.Queued() != 0 {
		t.Fatalf("%d bytes queued after a restart", w.Queued())
	}
}
