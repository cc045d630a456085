package c2s_test

import (
	"context"

	"verlauf.im/verlauf/xmppfront/c2s"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stream"
)

// registerStub answers XEP-0077 form requests, standing in for the
// registration feature written elsewhere.
type registerStub struct{}

func (registerStub) HandleIQ(_ context.Context, iq router.IQ) (*stream.Element, error) {
	q := stream.NewElement(c2s.NSRegister, "query")
	q.AddChild(stream.NewElement(c2s.NSRegister, "username"))
	q.AddChild(stream.NewElement(c2s.NSRegister, "password"))
	return q, nil
}
