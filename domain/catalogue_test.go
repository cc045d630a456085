package domain

import (
	"errors"
	"reflect"
	"testing"

	"mellium.im/xmpp/jid"
)

// catalogue lists one sample of every payload. TestCatalogueRoundTrip
// fails when a type is added to Decode or CurrentSchemaVersion without
// the other, or when a payload does not survive its JSON encoding.
func catalogue() []Payload {
	v := SCRAMVerifier{Hash: HashSHA1, Salt: []byte("salt1234"), Iterations: 4096, StoredKey: make([]byte, 20), ServerKey: make([]byte, 20)}
	return append([]Payload{
		AccountRegistered{JID: "alice@example.org", Verifiers: []SCRAMVerifier{v}},
		AccountPasswordChanged{Verifiers: []SCRAMVerifier{v}},
		AccountDeleted{},
		RosterItemSet{RosterItem: RosterItem{JID: "romeo@example.net", Name: "Romeo", Groups: []string{"a,b", "c"}, Subscription: SubscriptionBoth, Ask: true, Approved: true}, Ver: 9},
		RosterItemRemoved{JID: "romeo@example.net", Ver: 10},
		RosterRequestReceived{JID: "nurse@example.com"},
		RosterRequestCleared{JID: "nurse@example.com"},
		ArchivePrefsSet{Default: ArchiveRoster, Always: []string{"a@x.example"}, Never: []string{"b@x.example"}},
		BlocklistChanged{Blocked: []string{"spam.example"}, Unblocked: []string{"x@y.example"}},
		BlocklistChanged{UnblockAll: true},
		VCardSet{XML: "<vCard xmlns='vcard-temp'/>"},
		PrivateSet{Name: "storage", Namespace: "storage:bookmarks", XML: "<storage xmlns='storage:bookmarks'/>"},
	}, archiveSamples()...)
}

// TestEventTypesComplete fails when a type is added to the catalogue
// without a sample above, or listed in EventTypes without a version.
func TestEventTypesComplete(t *testing.T) {
	sampled := map[string]bool{}
	for _, p := range catalogue() {
		sampled[p.EventType()] = true
	}
	types := EventTypes()
	for _, typ := range types {
		if _, ok := CurrentSchemaVersion(typ); !ok {
			t.Errorf("%s listed but has no current version", typ)
		}
		if !sampled[typ] {
			t.Errorf("%s has no sample in catalogue()", typ)
		}
	}
	if len(sampled) != len(types) {
		t.Errorf("%d sampled types, %d listed in EventTypes", len(sampled), len(types))
	}
}

func TestCatalogueRoundTrip(t *testing.T) {
	for _, p := range catalogue() {
		t.Run(p.EventType(), func(t *testing.T) {
			ev, err := NewEvent(fixedClock, p)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type != p.EventType() || ev.SchemaVersion != p.EventSchemaVersion() || !ev.Time.Equal(fixedClock.Now()) {
				t.Errorf("envelope %+v", ev)
			}
			if v, ok := CurrentSchemaVersion(ev.Type); !ok || v != p.EventSchemaVersion() {
				t.Errorf("CurrentSchemaVersion = %d, %v; want %d", v, ok, p.EventSchemaVersion())
			}
			got, err := Decode(ev)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, p) {
				t.Errorf("decoded %#v, want %#v", got, p)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	ev, err := NewEvent(fixedClock, RosterItemSet{RosterItem: RosterItem{JID: "romeo@example.net"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*Event)
		want   error
	}{
		{"unknown type", func(e *Event) { e.Type = "roster.exploded" }, ErrUnknownEvent},
		{"newer version", func(e *Event) { e.SchemaVersion = 3 }, ErrSchemaVersion},
		{"older version not upcast", func(e *Event) { e.SchemaVersion = 1 }, ErrSchemaVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := ev
			tc.mutate(&e)
			if _, err := Decode(e); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	bad := ev
	bad.Body = []byte(`{"jid":`)
	if _, err := Decode(bad); err == nil {
		t.Error("malformed body decoded")
	}
	if _, ok := CurrentSchemaVersion("roster.exploded"); ok {
		t.Error("unknown type has a current version")
	}
}

func TestFoldStopsAtBadEvent(t *testing.T) {
	good, _ := NewEvent(fixedClock, RosterItemSet{RosterItem: RosterItem{JID: "a@x.example", Subscription: SubscriptionNone}, Ver: 1})
	bad := good
	bad.Type = "nope"
	r, err := Fold(NewRoster(0), Roster.Apply, good, bad)
	if !errors.Is(err, ErrUnknownEvent) {
		t.Fatalf("err = %v", err)
	}
	if _, ok := r.Item(jid.MustParse("a@x.example")); !ok {
		t.Error("events before the bad one were not applied")
	}
}
