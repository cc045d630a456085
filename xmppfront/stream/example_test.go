package stream_test

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"verlauf.im/verlauf/xmppfront/stream"
)

// A session loop: read the peer's header, answer with ours, then handle
// first-level elements until the stream ends or breaks.
func Example() {
	in := strings.NewReader(`<?xml version='1.0'?>` +
		`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>` +
		`<message to='romeo@example.net'><body>Wherefore art thou?</body></message>` +
		` ` + // a whitespace keepalive
		`<!-- comments are restricted XML -->`)
	r := stream.NewReader(in, stream.Limits{})
	r.SetKeepaliveHook(func(n int) { fmt.Println("keepalive:", n) })
	w := stream.NewWriter(os.Stdout)

	h, err := r.ReadHeader()
	if err != nil {
		se, _ := stream.StreamErrorFor(err)
		_ = w.WriteError(se)
		return
	}
	_ = w.WriteHeader(stream.Header{From: h.To, ID: "s1", Namespace: h.Namespace})
	fmt.Println()
	for {
		el, err := r.Next()
		if errors.Is(err, stream.ErrStreamClosed) {
			_ = w.Close()
			return
		}
		if err != nil {
			if se, ok := stream.StreamErrorFor(err); ok {
				_ = w.WriteError(se)
			}
			fmt.Println()
			fmt.Println(err)
			return
		}
		fmt.Println("got", el.Name.Local, el.Attr("to"), el.Child("body", "").Text())
	}
	// Output:
	// <?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='example.org' id='s1' version='1.0'>
	// got message romeo@example.net Wherefore art thou?
	// keepalive: 1
	// <stream:error><restricted-xml xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>
	// stream: restricted XML: comment
}
