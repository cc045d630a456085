package migrations

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
)

func v1Event(body string) domain.Event {
	return domain.Event{
		ID:            uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8057"),
		Type:          domain.TypeRosterItemSet,
		SchemaVersion: 1,
		Time:          time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC),
		Body:          []byte(body),
	}
}

func TestNewUpcastsRosterItemSetV1(t *testing.T) {
	tests := []struct {
		name string
		body string
		want domain.RosterItemSet
	}{
		{
			name: "two groups",
			body: `{"jid":"romeo@example.net","name":"Romeo","group":"Friends,Verona","subscription":"both","ask":true,"ver":7}`,
			want: domain.RosterItemSet{RosterItem: domain.RosterItem{
				JID: "romeo@example.net", Name: "Romeo", Groups: []string{"Friends", "Verona"},
				Subscription: domain.SubscriptionBoth, Ask: true,
			}, Ver: 7},
		},
		{
			name: "empty pieces and duplicates dropped",
			body: `{"jid":"romeo@example.net","group":",Friends,,Friends,","subscription":"to","ver":1}`,
			want: domain.RosterItemSet{RosterItem: domain.RosterItem{
				JID: "romeo@example.net", Groups: []string{"Friends"}, Subscription: domain.SubscriptionTo,
			}, Ver: 1},
		},
		{
			name: "no group field",
			body: `{"jid":"nurse@example.com","subscription":"none","approved":true,"ver":3}`,
			want: domain.RosterItemSet{RosterItem: domain.RosterItem{
				JID: "nurse@example.com", Subscription: domain.SubscriptionNone, Approved: true,
			}, Ver: 3},
		},
		{
			name: "empty group string",
			body: `{"jid":"nurse@example.com","group":"","subscription":"none","ver":4}`,
			want: domain.RosterItemSet{RosterItem: domain.RosterItem{
				JID: "nurse@example.com", Subscription: domain.SubscriptionNone,
			}, Ver: 4},
		},
		{
			name: "null group",
			body: `{"jid":"nurse@example.com","group":null,"subscription":"from","ver":5}`,
			want: domain.RosterItemSet{RosterItem: domain.RosterItem{
				JID: "nurse@example.com", Subscription: domain.SubscriptionFrom,
			}, Ver: 5},
		},
	}
	chain := New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := v1Event(tc.body)
			out, err := chain.Upcast(in)
			if err != nil {
				t.Fatal(err)
			}
			if out.SchemaVersion != 2 || out.ID != in.ID || out.Type != in.Type || !out.Time.Equal(in.Time) {
				t.Errorf("envelope changed: %+v", out)
			}
			if bytes.Contains(out.Body, []byte(`"group"`)) {
				t.Errorf("v1 field kept: %s", out.Body)
			}
			p, err := domain.Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p, tc.want) {
				t.Errorf("decoded %#v\nwant    %#v", p, tc.want)
			}
			// The input event is not modified: the log is immutable.
			if string(in.Body) != tc.body || in.SchemaVersion != 1 {
				t.Error("upcast modified its input")
			}
		})
	}
}

func TestNewPassesCurrentAndUnknownEvents(t *testing.T) {
	chain := New()
	cur, err := domain.NewEvent(domain.ClockFunc(time.Now), domain.RosterItemSet{RosterItem: domain.RosterItem{JID: "a@x.example", Groups: []string{"a,b"}}, Ver: 1})
	if err != nil {
		t.Fatal(err)
	}
	out, err := chain.Upcast(cur)
	if err != nil || !reflect.DeepEqual(out, cur) {
		t.Errorf("current event changed: %+v, %v", out, err)
	}
	unknown := domain.Event{Type: "future.thing", SchemaVersion: 9, Body: []byte(`{}`)}
	out, err = chain.Upcast(unknown)
	if err != nil || !reflect.DeepEqual(out, unknown) {
		t.Errorf("unknown type: %+v, %v; want it passed to Decode unchanged", out, err)
	}
}

func TestUpcastErrors(t *testing.T) {
	chain := New()
	tests := []struct {
		name string
		ev   domain.Event
		want error
	}{
		{"future version", domain.Event{Type: domain.TypeRosterItemSet, SchemaVersion: 3, Body: []byte(`{}`)}, ErrFutureVersion},
		{"version zero", domain.Event{Type: domain.TypeRosterItemSet, SchemaVersion: 0, Body: []byte(`{}`)}, ErrMissingStep},
		{"old version without step", domain.Event{Type: domain.TypeAccountRegistered, SchemaVersion: 0, Body: []byte(`{}`)}, ErrMissingStep},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := chain.Upcast(tc.ev); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	for _, body := range []string{`not json`, `[1,2]`, `null`, `{"group":7}`} {
		if _, err := chain.Upcast(v1Event(body)); err == nil {
			t.Errorf("v1 body %s upcast without error", body)
		}
	}
}

// A three-version history of a test type checks that steps run in order,
// each exactly once, from any starting version.
func TestChainAppliesStepsInOrder(t *testing.T) {
	current := func(typ string) (int, bool) {
		if typ == "test.thing" {
			return 3, true
		}
		return 0, false
	}
	appendStep := func(tag string) func([]byte) ([]byte, error) {
		return func(body []byte) ([]byte, error) {
			var m map[string]string
			if err := json.Unmarshal(body, &m); err != nil {
				return nil, err
			}
			m["trail"] += tag
			return json.Marshal(m)
		}
	}
	chain, err := NewChain(current,
		Step{Type: "test.thing", From: 2, Up: appendStep("b")},
		Step{Type: "test.thing", From: 1, Up: appendStep("a")},
	)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		from  int
		trail string
	}{
		{1, "ab"},
		{2, "b"},
		{3, ""},
	}
	for _, tc := range tests {
		out, err := chain.Upcast(domain.Event{Type: "test.thing", SchemaVersion: tc.from, Body: []byte(`{"trail":""}`)})
		if err != nil {
			t.Fatalf("from v%d: %v", tc.from, err)
		}
		var m map[string]string
		if err := json.Unmarshal(out.Body, &m); err != nil {
			t.Fatal(err)
		}
		if m["trail"] != tc.trail || out.SchemaVersion != 3 {
			t.Errorf("from v%d: trail %q at v%d, want %q at v3", tc.from, m["trail"], out.SchemaVersion, tc.trail)
		}
	}

	// A gap is reported when an event needs it.
	gappy, err := NewChain(current, Step{Type: "test.thing", From: 2, Up: appendStep("b")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gappy.Upcast(domain.Event{Type: "test.thing", SchemaVersion: 1, Body: []byte(`{}`)}); !errors.Is(err, ErrMissingStep) {
		t.Errorf("gap: %v, want ErrMissingStep", err)
	}

	// A failing step stops the chain and says where.
	failing, err := NewChain(current, Step{Type: "test.thing", From: 1, Up: func([]byte) ([]byte, error) { return nil, errors.New("boom") }},
		Step{Type: "test.thing", From: 2, Up: appendStep("b")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := failing.Upcast(domain.Event{Type: "test.thing", SchemaVersion: 1, Body: []byte(`{}`)}); err == nil || !strings.Contains(err.Error(), "v1 to v2") {
		t.Errorf("failing step: %v", err)
	}
}

func TestNewRejectsBadChains(t *testing.T) {
	up := func(b []byte) ([]byte, error) { return b, nil }
	tests := []struct {
		name  string
		steps []Step
	}{
		{"unknown type", []Step{{Type: "nope", From: 1, Up: up}}},
		{"step at current version", []Step{{Type: domain.TypeRosterItemSet, From: 2, Up: up}}},
		{"step from zero", []Step{{Type: domain.TypeRosterItemSet, From: 0, Up: up}}},
		{"nil step", []Step{{Type: domain.TypeRosterItemSet, From: 1}}},
		{"duplicate", []Step{{Type: domain.TypeRosterItemSet, From: 1, Up: up}, {Type: domain.TypeRosterItemSet, From: 1, Up: up}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewChain(domain.CurrentSchemaVersion, tc.steps...); !errors.Is(err, ErrInvalidChain) {
				t.Errorf("err = %v, want ErrInvalidChain", err)
			}
		})
	}
	if _, err := NewChain(nil); !errors.Is(err, ErrInvalidChain) {
		t.Errorf("nil current: %v", err)
	}
}

// Every event type whose current version is above 1 needs a step from
// each older version, or events recorded by older verlauf become
// unreadable.
func TestNewCoversEveryVersion(t *testing.T) {
	have := map[string]map[int]bool{}
	for _, s := range Steps() {
		if have[s.Type] == nil {
			have[s.Type] = map[int]bool{}
		}
		have[s.Type][s.From] = true
	}
	types := domain.EventTypes()
	for _, typ := range types {
		cur, ok := domain.CurrentSchemaVersion(typ)
		if !ok {
			t.Fatalf("%s not in the catalogue", typ)
		}
		for v := 1; v < cur; v++ {
			if !have[typ][v] {
				t.Errorf("%s: no step from v%d", typ, v)
			}
		}
	}
}
