package carbons

import (
	"context"
	"errors"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// switches is a registry of bound resources and their carbons switch.
type switches map[string]bool

func (s switches) Resources(jid.JID) []router.Resource { return nil }
func (s switches) SendToResource(context.Context, jid.JID, *stream.Element) bool {
	return false
}
func (s switches) SetCarbons(full jid.JID, on bool) bool {
	if _, ok := s[full.String()]; !ok {
		return false
	}
	s[full.String()] = on
	return true
}

func TestEnableDisable(t *testing.T) {
	alice := jid.MustParse("alice@example.test/a")
	tests := []struct {
		name    string
		payload string
		typ     string
		to      string
		want    stanza.Condition // "" for a result
		on      bool
	}{
		{"enable", "enable", "set", "alice@example.test", "", true},
		{"enable addressed to the server", "enable", "set", "example.test", "", true},
		{"disable", "disable", "set", "alice@example.test", "", false},
		{"get is a bad request", "enable", "get", "alice@example.test", stanza.BadRequest, false},
		{"another user's carbons are not ours to switch", "enable", "set", "bob@example.test", stanza.Forbidden, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := switches{alice.String(): !tt.on}
			mux := router.NewMux()
			New(reg).Register(mux)
			h := mux.Lookup(stream.Name{Space: NS, Local: tt.payload})
			_, err := h.HandleIQ(context.Background(), router.IQ{From: alice, To: jid.MustParse(tt.to), Type: tt.typ, Payload: stream.NewElement(NS, tt.payload)})
			var se *stanza.Error
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("error %v, want a result", err)
			case tt.want != "" && (!errors.As(err, &se) || se.Condition != tt.want):
				t.Fatalf("error %v, want %s", err, tt.want)
			case tt.want == "" && reg[alice.String()] != tt.on:
				t.Fatalf("carbons %v, want %v", reg[alice.String()], tt.on)
			}
		})
	}
	mux := router.NewMux()
	New(switches{}).Register(mux)
	if f := mux.Features(); len(f) != 1 || f[0] != NS {
		t.Fatalf("features %q, want %s", f, NS)
	}
}
