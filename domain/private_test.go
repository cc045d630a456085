package domain

import (
	"errors"
	"reflect"
	"testing"
)

func TestPrivateSet(t *testing.T) {
	bm := PrivateKey{Name: "storage", Namespace: "storage:bookmarks"}
	notes := PrivateKey{Name: "storage", Namespace: "storage:rosternotes"}
	const x = `<storage xmlns="storage:bookmarks"/>`
	stored := PrivateStorage{}.Apply(PrivateSet{Name: bm.Name, Namespace: bm.Namespace, XML: x})
	tests := []struct {
		name    string
		state   PrivateStorage
		key     PrivateKey
		xml     string
		lim     PrivateLimits
		want    []Payload
		wantErr error
	}{
		{"new", PrivateStorage{}, bm, x, PrivateLimits{}, []Payload{PrivateSet{Name: "storage", Namespace: "storage:bookmarks", XML: x}}, nil},
		{"unchanged", stored, bm, x, PrivateLimits{MaxItems: 1}, nil, nil},
		{"replace at item limit", stored, bm, `<storage xmlns="storage:bookmarks"><x/></storage>`, PrivateLimits{MaxItems: 1}, []Payload{PrivateSet{Name: "storage", Namespace: "storage:bookmarks", XML: `<storage xmlns="storage:bookmarks"><x/></storage>`}}, nil},
		{"full", stored, notes, `<storage xmlns="storage:rosternotes"/>`, PrivateLimits{MaxItems: 1}, nil, ErrPrivateFull},
		{"too large", PrivateStorage{}, bm, x, PrivateLimits{MaxItemBytes: 8}, nil, ErrItemTooLarge},
		{"jabber namespace", PrivateStorage{}, PrivateKey{"query", "jabber:iq:roster"}, "<query xmlns='jabber:iq:roster'/>", PrivateLimits{}, nil, ErrReservedNamespace},
		{"vcard-temp", PrivateStorage{}, PrivateKey{"vCard", "vcard-temp"}, "<vCard xmlns='vcard-temp'/>", PrivateLimits{}, nil, ErrReservedNamespace},
		{"no namespace", PrivateStorage{}, PrivateKey{"x", ""}, "<x/>", PrivateLimits{}, nil, ErrEmptyItem},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.state.Set(tt.lim, PrivateItem{tt.key, tt.xml})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("payloads = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestPrivateSetMany(t *testing.T) {
	a := PrivateItem{PrivateKey{"a", "urn:a"}, "<a xmlns='urn:a'/>"}
	b := PrivateItem{PrivateKey{"b", "urn:b"}, "<b xmlns='urn:b'/>"}
	b2 := PrivateItem{PrivateKey{"b", "urn:b"}, "<b xmlns='urn:b'>2</b>"}
	if _, err := (PrivateStorage{}).Set(PrivateLimits{MaxItems: 1}, a, b); !errors.Is(err, ErrPrivateFull) {
		t.Errorf("two new items under a limit of one: %v", err)
	}
	// Two values for one new key count once against the limit.
	ps, err := PrivateStorage{}.Set(PrivateLimits{MaxItems: 1}, b, b2)
	if err != nil || len(ps) != 2 {
		t.Errorf("same key twice: %v, %v", ps, err)
	}
	if _, err := (PrivateStorage{}).Set(PrivateLimits{}); !errors.Is(err, ErrEmptyItem) {
		t.Errorf("no items: %v", err)
	}
	stored := PrivateStorage{}.Apply(PrivateSet{Name: "a", Namespace: "urn:a", XML: a.XML})
	ps, err = stored.Set(PrivateLimits{}, a, b)
	if err != nil || !reflect.DeepEqual(ps, []Payload{PrivateSet{Name: "b", Namespace: "urn:b", XML: b.XML}}) {
		t.Errorf("only the changed item: %v, %v", ps, err)
	}
}

func TestPrivateFoldThroughCatalogue(t *testing.T) {
	evs, err := NewEvents(fixedClock,
		PrivateSet{Name: "storage", Namespace: "storage:bookmarks", XML: "<a/>"},
		PrivateSet{Name: "prefs", Namespace: "exodus:prefs", XML: "<b/>"},
		PrivateSet{Name: "storage", Namespace: "storage:bookmarks", XML: "<c/>"},
	)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := CurrentSchemaVersion(TypePrivateSet); !ok || v != 1 {
		t.Fatalf("CurrentSchemaVersion(%s) = %d, %v", TypePrivateSet, v, ok)
	}
	s, err := Fold(PrivateStorage{}, PrivateStorage.Apply, evs...)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2", s.Len())
	}
	if x, ok := s.Get(PrivateKey{"storage", "storage:bookmarks"}); !ok || x != "<c/>" {
		t.Errorf("bookmarks = %q, %v", x, ok)
	}
	if _, ok := s.Get(PrivateKey{"storage", "other"}); ok {
		t.Error("unknown item found")
	}
}
