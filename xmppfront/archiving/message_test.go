package archiving_test

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/xmppfront/stanza"
)

func TestArchivingFollowsEachSidesPrefs(t *testing.T) {
	const never, always, roster = domain.ArchiveNever, domain.ArchiveAlways, domain.ArchiveRoster
	tests := []struct {
		name             string
		alice, bob       domain.ArchiveMode
		aliceInBobRoster bool
		wantAlice        bool
		wantBob          bool
	}{
		{"nobody opted in", never, never, false, false, false},
		{"only the sender", always, never, false, true, false},
		{"only the recipient", never, always, false, false, true},
		{"both", always, always, false, true, true},
		{"recipient archives contacts, sender is one", never, roster, true, false, true},
		{"recipient archives contacts, sender is a stranger", never, roster, false, false, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			w.setPrefs("alice", tt.alice)
			w.setPrefs("bob", tt.bob)
			if tt.aliceInBobRoster {
				w.roster["bob@example.test alice@example.test"] = true
			}
			w.bind("alice/a", "0")
			w.bind("alice/b", "0")
			w.bind("bob/1", "0")
			w.send("alice/b", "<iq type='set' id='c'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
			w.sessions["alice/b"].take()

			body := fmt.Sprint("quokka-", i)
			// A forged stanza-id by the recipient must not survive.
			w.send("alice/a", "<message to='bob@example.test' type='chat' id='m'><body>"+body+"</body>"+
				"<stanza-id xmlns='urn:xmpp:sid:0' by='bob@example.test' id='forged'/></message>")

			got := w.sessions["bob/1"].take()
			if len(got) != 1 {
				t.Fatalf("bob got %d stanzas", len(got))
			}
			bobID := stanzaID(t, got[0], "bob@example.test")
			carbons := w.sessions["alice/b"].take()
			if len(carbons) != 1 {
				t.Fatalf("alice/b got %d stanzas, want a sent carbon", len(carbons))
			}
			_, inner := carbon(carbons[0])
			aliceID := stanzaID(t, inner, "alice@example.test")

			check := func(user, id string, want bool, dir domain.Direction, partner string) {
				t.Helper()
				msgs := w.archived(user)
				if !want {
					if len(msgs) != 0 || id != "" {
						t.Fatalf("%s: %d archived, stanza-id %q; want neither", user, len(msgs), id)
					}
					return
				}
				if len(msgs) != 1 {
					t.Fatalf("%s: %d archived, want 1", user, len(msgs))
				}
				m := msgs[0]
				if m.ID != mustUUID(t, id) || m.Direction != dir || m.Partner != partner || !bytes.Contains(m.Stanza, []byte(body)) {
					t.Fatalf("%s: archived %v %v %s, want id %s %v %s with the body", user, m.ID, m.Direction, m.Partner, id, dir, partner)
				}
			}
			check("alice", aliceID, tt.wantAlice, domain.DirectionOut, "bob@example.test")
			check("bob", bobID, tt.wantBob, domain.DirectionIn, "alice@example.test")
		})
	}
}

func TestNoStoreNeverArchivedNorQueued(t *testing.T) {
	tag := "\x20\x09\x20\x20\x09\x09\x09\x09\x20\x09\x20\x09\x20\x09\x20\x20\x20\x20\x09\x09\x20\x20\x09\x09"
	tests := []struct {
		name  string
		inner string
	}{
		{"OTR query", "<body>?OTRv23?</body>"},
		{"OTR data", "<body>?OTR:AAMDbHVnc2Vk</body>"},
		{"OTR error", "<body>?OTR Error: no</body>"},
		{"OTR whitespace tag", "<body>let us go private" + tag + "</body>"},
		{"EME naming OTR", "<body>[encrypted]</body><encryption xmlns='urn:xmpp:eme:0' namespace='urn:xmpp:otr:0'/>"},
		{"no-store", "<body>secret</body><no-store xmlns='urn:xmpp:hints'/>"},
		{"no-permanent-store", "<body>secret</body><no-permanent-store xmlns='urn:xmpp:hints'/>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			for _, u := range []string{"alice", "bob", "carol"} {
				w.setPrefs(u, domain.ArchiveAlways)
			}
			w.bind("alice/a", "0")
			w.bind("bob/1", "0")
			w.send("alice/a", "<message to='bob@example.test' type='chat' id='on'>"+tt.inner+"</message>")
			w.send("alice/a", "<message to='carol@example.test' type='chat' id='off'>"+tt.inner+"</message>")
			want := map[string][]string{
				"bob/1":   {"msg on"},
				"alice/a": {"error off service-unavailable/cancel"},
			}
			if got := w.deliveries(); !reflect.DeepEqual(got, want) {
				t.Fatalf("delivered %v, want %v", got, want)
			}
			for _, u := range []string{"alice", "bob", "carol"} {
				if n := len(w.archived(u)); n != 0 {
					t.Errorf("%s has %d archived", u, n)
				}
			}
			if n := w.pending("carol"); n != 0 {
				t.Errorf("carol has %d queued", n)
			}
		})
	}
}

func TestOnlyConversationsAreArchived(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want []string
	}{
		{"chat state alone", "<message to='bob@example.test' type='chat' id='m'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", []string{"msg m"}},
		{"empty body with a chat state", "<message to='bob@example.test' type='chat' id='m'><body/><active xmlns='http://jabber.org/protocol/chatstates'/></message>", []string{"msg m"}},
		{"headline", "<message to='bob@example.test' type='headline' id='m'><body>news</body></message>", []string{"msg m"}},
		{"groupchat to a user bounces", "<message to='bob@example.test' type='groupchat' id='m'><body>x</body></message>", nil},
		{"error", "<message to='bob@example.test/1' type='error' id='m'><body>x</body><error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", []string{"error m gone/cancel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			w.setPrefs("alice", domain.ArchiveAlways)
			w.setPrefs("bob", domain.ArchiveAlways)
			w.bind("alice/a", "0")
			w.bind("bob/1", "0")
			w.send("alice/a", tt.raw)
			if got := w.deliveries()["bob/1"]; !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("bob got %v, want %v", got, tt.want)
			}
			if n := len(w.archived("alice")) + len(w.archived("bob")); n != 0 {
				t.Fatalf("%d archived, want none", n)
			}
		})
	}
}

func TestCarbons(t *testing.T) {
	tests := []struct {
		name  string
		from  string
		raw   string
		setup []string // IQs alice/b sends first
		want  map[string][]string
	}{
		{"sent and received copies", "alice/a", "<message to='bob@example.test' type='chat' id='m'><body>x</body></message>", nil,
			map[string][]string{"alice/b": {"sent m"}, "bob/1": {"msg m"}, "bob/2": {"received m"}}},
		{"to a full JID, the recipient's other resource gets a received copy", "alice/a", "<message to='bob@example.test/2' type='chat' id='m'><body>x</body></message>", nil,
			map[string][]string{"alice/b": {"sent m"}, "bob/1": {"received m"}, "bob/2": {"msg m"}}},
		{"private is not copied", "alice/a", "<message to='bob@example.test' type='chat' id='m'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>", nil,
			map[string][]string{"bob/1": {"msg m"}}},
		{"no-copy is not copied", "alice/a", "<message to='bob@example.test' type='chat' id='m'><body>x</body><no-copy xmlns='urn:xmpp:hints'/></message>", nil,
			map[string][]string{"bob/1": {"msg m"}}},
		{"chat states are copied", "alice/a", "<message to='bob@example.test' type='chat' id='m'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>", nil,
			map[string][]string{"alice/b": {"sent m"}, "bob/1": {"msg m"}, "bob/2": {"received m"}}},
		{"headlines are not copied", "alice/a", "<message to='bob@example.test' type='headline' id='m'><body>x</body></message>", nil,
			map[string][]string{"bob/1": {"msg m"}, "bob/2": {"msg m"}}},
		{"a resource that disabled carbons gets none", "alice/a", "<message to='bob@example.test' type='chat' id='m'><body>x</body></message>",
			[]string{"<iq type='set' id='d'><disable xmlns='urn:xmpp:carbons:2'/></iq>"},
			map[string][]string{"bob/1": {"msg m"}, "bob/2": {"received m"}}},
		{"the sending resource never gets its own carbon", "alice/b", "<message to='bob@example.test' type='chat' id='m'><body>x</body></message>", nil,
			map[string][]string{"alice/a": {"sent m"}, "bob/1": {"msg m"}, "bob/2": {"received m"}}},
		{"a message to oneself is not copied", "alice/a", "<message to='alice@example.test/b' type='chat' id='m'><body>x</body></message>", nil,
			map[string][]string{"alice/b": {"msg m"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{})
			w.bind("alice/a", "0")
			w.bind("alice/b", "0")
			w.bind("alice/c", "0")
			w.bind("bob/1", "5")
			w.bind("bob/2", "1")
			for _, addr := range []string{"alice/a", "alice/b", "bob/1", "bob/2"} {
				w.send(addr, "<iq type='set' id='e'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
			}
			for _, iq := range tt.setup {
				w.send("alice/b", iq)
			}
			w.deliveries()
			w.send(tt.from, tt.raw)
			if got := w.deliveries(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("delivered %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCarbonsCarryTheArchiveIDs(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.setPrefs("alice", domain.ArchiveAlways)
	w.setPrefs("bob", domain.ArchiveAlways)
	for _, b := range [][2]string{{"alice/a", "0"}, {"alice/b", "0"}, {"bob/1", "5"}, {"bob/2", "1"}} {
		w.bind(b[0], b[1])
		w.send(b[0], "<iq type='set' id='e'><enable xmlns='urn:xmpp:carbons:2'/></iq>")
	}
	w.deliveries()
	w.send("alice/a", "<message to='bob@example.test' type='chat' id='m'><body>x</body><private xmlns='urn:example'/></message>")
	direct := w.sessions["bob/1"].take()
	_, sent := carbon(w.sessions["alice/b"].take()[0])
	_, received := carbon(w.sessions["bob/2"].take()[0])
	aliceID, bobID := w.archived("alice")[0].ID.String(), w.archived("bob")[0].ID.String()
	if got := stanzaID(t, sent, "alice@example.test"); got != aliceID {
		t.Errorf("sent carbon has stanza-id %q, want alice's archive id %s", got, aliceID)
	}
	if got := stanzaID(t, received, "bob@example.test"); got != bobID {
		t.Errorf("received carbon has stanza-id %q, want bob's archive id %s", got, bobID)
	}
	if got := stanzaID(t, direct[0], "bob@example.test"); got != bobID {
		t.Errorf("delivered copy has stanza-id %q, want %s", got, bobID)
	}
	if stanzaID(t, received, "alice@example.test") != "" || stanzaID(t, direct[0], "alice@example.test") != "" {
		t.Error("bob's copies carry alice's archive id")
	}
}

func TestCarbonsPrivateIsStrippedOnDelivery(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.bind("alice/a", "0")
	w.bind("bob/1", "0")
	w.send("alice/a", "<message to='bob@example.test' type='chat' id='m'><body>x</body><private xmlns='urn:xmpp:carbons:2'/></message>")
	got := w.sessions["bob/1"].take()
	if len(got) != 1 || got[0].Child("private", "urn:xmpp:carbons:2") != nil || got[0].Child("body", "") == nil {
		t.Fatalf("bob got %v, want the message without <private/>", got)
	}
}

func TestOfflineDeliveryWithDelay(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.setPrefs("bob", domain.ArchiveAlways)
	w.bind("alice/a", "0")
	var stamps []string
	for i := range 2 {
		stamps = append(stamps, w.clock.Now().Format("2006-01-02T15:04:05.000Z"))
		w.send("alice/a", fmt.Sprintf("<message to='bob@example.test' type='chat' id='m%d'><body>wombat %d</body></message>", i, i))
		w.clock.add(time.Minute)
	}
	// A chat state for nobody is dropped quietly, not queued nor bounced.
	w.send("alice/a", "<message to='bob@example.test' type='chat' id='cs'><gone xmlns='http://jabber.org/protocol/chatstates'/></message>")
	if got := w.deliveries(); len(got) != 0 {
		t.Fatalf("delivered %v while bob is offline, want nothing", got)
	}
	if n := w.pending("bob"); n != 2 {
		t.Fatalf("%d queued, want 2", n)
	}

	// Bound but not yet available: nothing yet.
	w.bind("bob/1", "-")
	if got := w.deliveries(); len(got) != 0 {
		t.Fatalf("delivered %v before initial presence", got)
	}
	w.send("bob/1", "<presence/>")
	got := w.sessions["bob/1"].take()
	archived := w.archived("bob")
	if len(got) != 2 || len(archived) != 2 {
		t.Fatalf("bob got %d messages, %d archived; want 2 and 2", len(got), len(archived))
	}
	for i, st := range got {
		d := st.Child("delay", "urn:xmpp:delay")
		if st.Attr("id") != fmt.Sprint("m", i) || d == nil || d.Attr("stamp") != stamps[i] || d.Attr("from") != domainName {
			t.Fatalf("message %d: %s, want id m%d with <delay from=%s stamp=%s/>", i, st, i, domainName, stamps[i])
		}
		if id := stanzaID(t, st, "bob@example.test"); id != archived[i].ID.String() {
			t.Fatalf("message %d has stanza-id %q, want the archive id %s", i, id, archived[i].ID)
		}
	}
	if n := w.pending("bob"); n != 0 {
		t.Fatalf("%d still queued after delivery", n)
	}
	// Delivered means forgotten: the next resource gets nothing.
	w.bind("bob/2", "0")
	if got := w.deliveries(); len(got) != 0 {
		t.Fatalf("second resource got %v", got)
	}
}

func TestOfflineNegativePriorityWaits(t *testing.T) {
	w := newWorld(t, worldOptions{})
	w.bind("alice/a", "0")
	w.send("alice/a", "<message to='bob@example.test' id='m'><body>x</body></message>")
	w.bind("bob/1", "-1")
	if got := w.deliveries(); len(got) != 0 {
		t.Fatalf("delivered %v to a negative priority", got)
	}
	w.send("bob/1", "<presence><priority>0</priority></presence>")
	if got := w.deliveries(); !reflect.DeepEqual(got, map[string][]string{"bob/1": {"msg m"}}) {
		t.Fatalf("delivered %v", got)
	}
}

func TestOfflineQueueBound(t *testing.T) {
	w := newWorld(t, worldOptions{offlineLimit: 3})
	w.bind("alice/a", "0")
	for i := range 4 {
		w.send("alice/a", fmt.Sprintf("<message to='bob@example.test' type='chat' id='m%d'><body>x</body></message>", i))
	}
	want := map[string][]string{"alice/a": {"error m3 resource-constraint/wait"}}
	if got := w.deliveries(); !reflect.DeepEqual(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	if n := w.pending("bob"); n != 3 {
		t.Fatalf("%d queued, want 3", n)
	}
}

// When the sender keeps history and the disk is full, the message is
// refused with resource-constraint and not delivered: a conversation is
// never half kept. When only the recipient's copy fails, the message is
// delivered without the recipient's stanza-id.
func TestArchiveFailure(t *testing.T) {
	tests := []struct {
		name        string
		failing     string
		wantBounce  bool
		wantAliceIn bool
	}{
		{"neither full", "", false, true},
		{"sender's archive full", "archive-alice@example.test", true, false},
		{"recipient's archive full", "archive-bob@example.test", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, worldOptions{failAppends: map[string]bool{tt.failing: true}})
			w.setPrefs("alice", domain.ArchiveAlways)
			w.setPrefs("bob", domain.ArchiveAlways)
			w.bind("alice/a", "0")
			w.bind("bob/1", "0")
			w.send("alice/a", "<message to='bob@example.test' type='chat' id='m'><body>kept or refused</body></message>")
			got := w.sessions["bob/1"].take()
			back := w.sessions["alice/a"].take()
			if tt.wantBounce {
				if len(got) != 0 {
					t.Fatalf("bob got %v although alice's copy could not be kept", got)
				}
				if len(back) != 1 || back[0].Attr("type") != "error" ||
					back[0].Child("error", "").Child("resource-constraint", stanza.NSStanzas) == nil {
					t.Fatalf("alice got %v, want a resource-constraint error", back)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("bob got %d stanzas", len(got))
			}
			bobsID := false
			for c := range got[0].Children() {
				bobsID = bobsID || c.Name.Local == "stanza-id" && c.Attr("by") == "bob@example.test"
			}
			if bobsID != (tt.failing == "") {
				t.Fatalf("bob's copy carries his stanza-id: %v, although his archive failed: %v: %s", bobsID, tt.failing != "", got[0])
			}
			if tt.failing == "" {
				// Both copies in one append, and nothing else.
				if n := len(w.archived("bob")); n != 1 {
					t.Fatalf("bob's archive holds %d messages", n)
				}
				if w.disk.appends["together"] != 1 || w.disk.appends["single"] != 0 {
					t.Fatalf("archive appends %v, want both copies together once", w.disk.appends)
				}
			}
			if n := len(w.archived("alice")); (n == 1) != tt.wantAliceIn {
				t.Fatalf("alice's archive holds %d messages", n)
			}
		})
	}
}
