package version

import (
	"context"
	"errors"
	"slices"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

func TestVersion(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		typ, to string
		want    string // serialized result, "" for an error
		cond    stanza.Condition
	}{
		{"default", Config{Version: "0.1.0"}, "get", "example.org",
			`<query xmlns='jabber:iq:version'><name>verlauf</name><version>0.1.0</version></query>`, ""},
		{"with os", Config{Version: "0.1.0", OS: "Linux"}, "get", "example.org",
			`<query xmlns='jabber:iq:version'><name>verlauf</name><version>0.1.0</version><os>Linux</os></query>`, ""},
		{"set", Config{}, "set", "example.org", "", stanza.BadRequest},
		{"to a user", Config{}, "get", "alice@example.org", "", stanza.ServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := router.NewMux()
			New(tt.cfg).Register(m)
			if !slices.Contains(m.Features(), NS) {
				t.Errorf("feature %s not registered", NS)
			}
			h := m.Lookup(stream.Name{Space: NS, Local: "query"})
			res, err := h.HandleIQ(context.Background(), router.IQ{
				From: jid.MustParse("bob@example.org/pc"), To: jid.MustParse(tt.to), Type: tt.typ,
				Payload: stream.NewElement(NS, "query"),
			})
			if tt.want != "" {
				if err != nil || res.String() != tt.want {
					t.Errorf("got %v, %v; want %s", res, err, tt.want)
				}
				return
			}
			var se *stanza.Error
			if !errors.As(err, &se) || se.Condition != tt.cond {
				t.Errorf("got %v, %v; want %s", res, err, tt.cond)
			}
		})
	}
}
