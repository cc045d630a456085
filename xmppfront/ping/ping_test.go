package ping

import (
	"context"
	"slices"
	"testing"

	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stream"
)

func TestRegister(t *testing.T) {
	m := router.NewMux()
	Register(m)
	h := m.Lookup(stream.Name{Space: NS, Local: "ping"})
	if h == nil {
		t.Fatal("no handler for urn:xmpp:ping ping")
	}
	res, err := h.HandleIQ(context.Background(), router.IQ{Type: "get"})
	if err != nil || res != nil {
		t.Fatalf("HandleIQ = %v, %v; want an empty result", res, err)
	}
	if !slices.Contains(m.Features(), NS) {
		t.Fatalf("features %v lack %s", m.Features(), NS)
	}
}
