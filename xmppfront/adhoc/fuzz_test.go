package adhoc

import (
	"bytes"
	"errors"
	"testing"

	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// FuzzParseHistory: the submitted form of the "Message history" command
// comes from clients. Parsing never panics and refuses with a stanza error.
func FuzzParseHistory(f *testing.F) {
	for _, s := range []string{
		"<x xmlns='jabber:x:data' type='submit'><field var='history'><value>1</value></field></x>",
		"<x xmlns='jabber:x:data' type='submit'><field var='history'><value> false </value><value>1</value></field></x>",
		"<x xmlns='jabber:x:data' type='form'><field var='history'/><field var='history'/></x>",
	} {
		f.Add([]byte(s))
	}
	const hdr = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
	f.Fuzz(func(t *testing.T, b []byte) {
		r := stream.NewReader(bytes.NewReader(append([]byte(hdr), b...)), stream.Limits{MaxStanzaSize: 16 << 10})
		if _, err := r.ReadHeader(); err != nil {
			return
		}
		el, err := r.Next()
		if err != nil {
			return
		}
		if _, err := parseHistory(el); err != nil {
			var se *stanza.Error
			if !errors.As(err, &se) {
				t.Fatalf("parseHistory(%s): %v is not a stanza error", el, err)
			}
		}
	})
}
