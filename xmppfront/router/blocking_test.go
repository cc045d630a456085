package router

import (
	"context"
	"reflect"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/xmppfront/stream"
)

// blocks is a blocklist as pairs "user blocks peer" (bare JIDs).
type blocks map[[2]string]bool

func (b blocks) Blocks(_ context.Context, user, peer jid.JID) bool {
	return b[[2]string{user.Bare().String(), peer.Bare().String()}]
}

func TestBlocking(t *testing.T) {
	a, b := "alice@"+domain, "bob@"+domain
	tests := []struct {
		name string
		raw  string
		from string
		want map[string][]string
	}{
		{"message from a blocked sender bounces as if nobody were there", "<message to='" + a + "' type='chat' id='m'/>", "bob/1",
			map[string][]string{"bob/1": {"message/error/m:service-unavailable"}}},
		{"IQ from a blocked sender bounces", "<iq to='" + a + "/a' type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>", "bob/1",
			map[string][]string{"bob/1": {"iq/error/q:service-unavailable"}}},
		{"presence from a blocked sender vanishes", "<presence to='" + a + "' id='p'/>", "bob/1",
			map[string][]string{}},
		{"message to someone one blocks is refused with not-acceptable", "<message to='" + b + "' type='chat' id='o'/>", "alice/a",
			map[string][]string{"alice/a": {"message/error/o:not-acceptable"}}},
		{"IQs to the own account are not blocked", "<iq type='get' id='own'><ping xmlns='urn:xmpp:ping'/></iq>", "alice/a",
			map[string][]string{"alice/a": {"iq/result/own"}}},
		{"others are not affected", "<message to='" + a + "' type='chat' id='c'/>", "carol/1",
			map[string][]string{"alice/a": {"message/chat/c"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "alice/a:0", "bob/1:0", "carol/1:0")
			f.r.UseBlocker(blocks{{a, b}: true})
			f.send(t, tt.from, tt.raw)
			if got := f.delivered(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("delivered %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBlockedAppCondition(t *testing.T) {
	f := newFixture(t, "alice/a:0", "bob/1:0")
	f.r.UseBlocker(blocks{{"alice@" + domain, "bob@" + domain}: true})
	f.send(t, "alice/a", "<message to='bob@"+domain+"' type='chat' id='o'/>")
	got := f.sessions["alice/a"].take()
	if len(got) != 1 || got[0].Child("error", "").Child("blocked", NSBlockingErrors) == nil {
		t.Fatalf("got %v, want an error with <blocked xmlns='%s'/>", got, NSBlockingErrors)
	}
}

func TestKickUser(t *testing.T) {
	f := newFixture(t, "alice/a:0", "alice/b:0", "bob/1:0")
	f.r.KickUser(jid.MustParse("alice@"+domain), stream.NotAuthorized, "gone")
	for addr, want := range map[string]stream.Condition{"alice/a": stream.NotAuthorized, "alice/b": stream.NotAuthorized, "bob/1": ""} {
		if got := f.sessions[addr].kicked; got != want {
			t.Errorf("%s kicked with %q, want %q", addr, got, want)
		}
	}
}
