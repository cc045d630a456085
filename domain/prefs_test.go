package domain

import (
	"errors"
	"slices"
	"testing"

	"mellium.im/xmpp/jid"
)

func TestArchivePrefsDefault(t *testing.T) {
	if p := NewArchivePrefs(ArchiveNever); p.Default != ArchiveNever || p.Chosen {
		t.Errorf("NewArchivePrefs(never) = %+v", p)
	}
	if p := NewArchivePrefs(ArchiveRoster); p.Default != ArchiveRoster {
		t.Errorf("server default not used: %+v", p)
	}
	if p := NewArchivePrefs("sometimes"); p.Default != ArchiveNever {
		t.Errorf("invalid server default gave %+v, want never", p)
	}
}

func TestArchivePrefsSet(t *testing.T) {
	romeo := jid.MustParse("romeo@example.net")
	nurse := jid.MustParse("nurse@example.com")
	p := NewArchivePrefs(ArchiveNever)

	ps, err := p.Set(ArchiveRoster, []jid.JID{romeo, romeo}, []jid.JID{nurse})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := NewEvents(fixedClock, ps...)
	if err != nil {
		t.Fatal(err)
	}
	p, err = Fold(p, ArchivePrefs.Apply, evs...)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Chosen || p.Default != ArchiveRoster || !slices.Equal(p.Always, []string{"romeo@example.net"}) || !slices.Equal(p.Never, []string{"nurse@example.com"}) {
		t.Fatalf("after set: %+v", p)
	}

	// The same prefs again record nothing.
	if ps, err := p.Set(ArchiveRoster, []jid.JID{romeo}, []jid.JID{nurse}); err != nil || len(ps) != 0 {
		t.Errorf("unchanged set: %v, %v", ps, err)
	}
	// Choosing the server default explicitly is a choice and is recorded.
	if ps, _ := NewArchivePrefs(ArchiveNever).Set(ArchiveNever, nil, nil); len(ps) != 1 {
		t.Errorf("explicit never not recorded: %v", ps)
	}

	if _, err := p.Set("sometimes", nil, nil); !errors.Is(err, ErrInvalidPrefs) {
		t.Errorf("bad mode: %v", err)
	}
	if _, err := p.Set(ArchiveAlways, []jid.JID{romeo}, []jid.JID{romeo}); !errors.Is(err, ErrInvalidPrefs) {
		t.Errorf("JID on both lists: %v", err)
	}
}

func TestArchivePrefsArchives(t *testing.T) {
	romeo := jid.MustParse("romeo@example.net/orchard")
	nurse := jid.MustParse("nurse@example.com")
	stranger := jid.MustParse("tybalt@example.org")
	prefs := func(def ArchiveMode) ArchivePrefs {
		return NewArchivePrefs(ArchiveNever).Apply(ArchivePrefsSet{
			Default: def, Always: []string{"romeo@example.net"}, Never: []string{"nurse@example.com"},
		})
	}
	tests := []struct {
		def      ArchiveMode
		peer     jid.JID
		inRoster bool
		want     bool
	}{
		{ArchiveNever, romeo, false, true}, // always list, matched by bare JID
		{ArchiveAlways, nurse, true, false},
		{ArchiveAlways, stranger, false, true},
		{ArchiveNever, stranger, true, false},
		{ArchiveRoster, stranger, true, true},
		{ArchiveRoster, stranger, false, false},
	}
	for _, tc := range tests {
		if got := prefs(tc.def).Archives(tc.peer, tc.inRoster); got != tc.want {
			t.Errorf("default %s, %s (in roster %v): %v, want %v", tc.def, tc.peer, tc.inRoster, got, tc.want)
		}
	}
	if NewArchivePrefs(ArchiveNever).Archives(stranger, true) {
		t.Error("a user who never chose has history by default")
	}
}
