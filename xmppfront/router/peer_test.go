package router

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/stream"
)

// remoteRecorder is the S2S hook: what the router sends to peers.
type remoteRecorder struct {
	mu  sync.Mutex
	got []string
}

func (r *remoteRecorder) SendRemote(_ context.Context, st *stream.Element) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := st.Name.Local + "/" + st.Attr("type") + "/" + st.Attr("id")
	if e := st.Child("error", ""); e != nil {
		for c := range e.Children() {
			d += ":" + c.Name.Local
			break
		}
	}
	r.got = append(r.got, d+">"+st.Attr("to"))
	return nil
}

type archiveRecorder struct{ archived []string }

func (a *archiveRecorder) Keeps(*stream.Element) bool { return true }
func (a *archiveRecorder) Archive(_ context.Context, m *Message) error {
	a.archived = append(a.archived, m.From.String()+">"+m.To.String())
	m.SetID(m.To, "arch-1")
	return nil
}

func TestFromPeer(t *testing.T) {
	const a, b = "alice/phone", "bob/desk"
	tests := []struct {
		name      string
		raw       string
		err       bool
		delivered map[string][]string
		remote    []string
		archived  []string
	}{
		{"message to a bare JID, archived on the way",
			"<message from='x@remote.test/r' to='alice@example.test' type='chat' id='m1'><body>hi</body></message>", false,
			map[string][]string{a: {"message/chat/m1"}}, nil, []string{"x@remote.test/r>alice@example.test"}},
		{"IQ to a full JID",
			"<iq from='x@remote.test/r' to='bob@example.test/desk' type='get' id='i1'><ping xmlns='urn:xmpp:ping'/></iq>", false,
			map[string][]string{b: {"iq/get/i1"}}, nil, nil},
		{"IQ to the server, answered to the peer",
			"<iq from='x@remote.test/r' to='example.test' type='get' id='i2'><ping xmlns='urn:xmpp:ping'/></iq>", false,
			nil, []string{"iq/result/i2>x@remote.test/r"}, nil},
		{"message to nobody bounces to the peer",
			"<message from='x@remote.test/r' to='nobody@example.test' type='chat' id='m2'/>", false,
			nil, []string{"message/error/m2:service-unavailable>x@remote.test/r"}, nil},
		{"a peer cannot speak for local users",
			"<message from='carol@example.test/r' to='alice@example.test' type='chat' id='m3'/>", true,
			nil, nil, nil},
		{"no relaying to third domains",
			"<message from='x@remote.test/r' to='y@third.test' type='chat' id='m4'/>", true,
			nil, []string{"message/error/m4:service-unavailable>x@remote.test/r"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, a+":0", b+":0")
			rr, ar := &remoteRecorder{}, &archiveRecorder{}
			f.r.UseS2S(rr)
			f.r.UseArchiver(ar)
			err := f.r.FromPeer(context.Background(), parse(t, tt.raw))
			if (err != nil) != tt.err || (err != nil && !errors.Is(err, ErrBadPeerStanza)) {
				t.Fatalf("err %v, want error %v", err, tt.err)
			}
			if got := f.delivered(); !reflect.DeepEqual(got, nonNil(tt.delivered)) {
				t.Errorf("delivered %v, want %v", got, tt.delivered)
			}
			if !reflect.DeepEqual(rr.got, tt.remote) {
				t.Errorf("sent to peers %v, want %v", rr.got, tt.remote)
			}
			if !reflect.DeepEqual(ar.archived, tt.archived) {
				t.Errorf("archived %v, want %v", ar.archived, tt.archived)
			}
		})
	}
}

func nonNil(m map[string][]string) map[string][]string {
	if m == nil {
		return map[string][]string{}
	}
	return m
}

// Presence from a peer goes to the presence handler, which owns
// subscriptions; none reaches a session directly.
func TestFromPeerPresence(t *testing.T) {
	f := newFixture(t, "alice/phone:0")
	ph := &inboundRecorder{}
	f.r.UsePresence(ph)
	if err := f.r.FromPeer(context.Background(), parse(t, "<presence from='x@remote.test/r' to='alice@example.test' type='subscribe'/>")); err != nil {
		t.Fatal(err)
	}
	if len(ph.in) != 1 || ph.in[0] != "subscribe" {
		t.Fatalf("presence handler got %v", ph.in)
	}
	if d := f.delivered(); len(d) != 0 {
		t.Fatalf("delivered directly: %v", d)
	}
}

type inboundRecorder struct{ in []string }

func (p *inboundRecorder) Outbound(context.Context, jid.JID, *stream.Element) {}
func (p *inboundRecorder) Inbound(_ context.Context, st *stream.Element) {
	p.in = append(p.in, st.Attr("type"))
}
func (p *inboundRecorder) Ended(context.Context, jid.JID, *stream.Element) {}
