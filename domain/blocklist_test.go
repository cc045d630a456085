package domain

import (
	"errors"
	"slices"
	"testing"

	"mellium.im/xmpp/jid"
)

func applyBlock(t *testing.T, b Blocklist, ps []Payload, err error) Blocklist {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	evs, err := NewEvents(fixedClock, ps...)
	if err != nil {
		t.Fatal(err)
	}
	b, err = Fold(b, Blocklist.Apply, evs...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBlocklist(t *testing.T) {
	romeo := jid.MustParse("romeo@example.net")
	spam := jid.MustParse("spam.example")
	b := NewBlocklist(0)

	ps, err := b.Block(romeo, spam, romeo)
	if len(ps) != 1 || !slices.Equal(ps[0].(BlocklistChanged).Blocked, []string{"romeo@example.net", "spam.example"}) {
		t.Fatalf("block: %+v, %v", ps, err)
	}
	b = applyBlock(t, b, ps, err)
	if !slices.Equal(b.JIDs(), []string{"romeo@example.net", "spam.example"}) {
		t.Fatalf("JIDs = %v", b.JIDs())
	}

	// Blocking what is blocked records nothing; a mix records only the new.
	if ps, err := b.Block(romeo); err != nil || len(ps) != 0 {
		t.Errorf("re-block: %v, %v", ps, err)
	}
	nurse := jid.MustParse("nurse@example.com")
	ps, err = b.Block(romeo, nurse)
	if len(ps) != 1 || !slices.Equal(ps[0].(BlocklistChanged).Blocked, []string{"nurse@example.com"}) {
		t.Fatalf("block mix: %+v, %v", ps, err)
	}
	b = applyBlock(t, b, ps, err)

	ps, err = b.Unblock(romeo, jid.MustParse("never@blocked.example"))
	if len(ps) != 1 || !slices.Equal(ps[0].(BlocklistChanged).Unblocked, []string{"romeo@example.net"}) {
		t.Fatalf("unblock: %+v, %v", ps, err)
	}
	b = applyBlock(t, b, ps, err)
	if b.Blocks(romeo) || !b.Blocks(nurse) {
		t.Errorf("after unblock: %v", b.JIDs())
	}
	if ps, err := b.Unblock(romeo); err != nil || len(ps) != 0 {
		t.Errorf("unblock of an unblocked JID: %v, %v", ps, err)
	}

	ps, err = b.UnblockAll()
	b = applyBlock(t, b, ps, err)
	if b.Len() != 0 {
		t.Errorf("after unblock all: %v", b.JIDs())
	}
	if ps, err := b.UnblockAll(); err != nil || len(ps) != 0 {
		t.Errorf("unblock all of an empty list: %v, %v", ps, err)
	}

	if _, err := b.Block(); !errors.Is(err, ErrEmptyBlockRequest) {
		t.Errorf("empty block: %v", err)
	}
	if _, err := b.Unblock(); !errors.Is(err, ErrEmptyBlockRequest) {
		t.Errorf("empty unblock: %v", err)
	}
}

func TestBlocklistLimit(t *testing.T) {
	b := NewBlocklist(2)
	ps, err := b.Block(jid.MustParse("a@x.example"))
	b = applyBlock(t, b, ps, err)
	_, err = b.Block(jid.MustParse("b@x.example"), jid.MustParse("c@x.example"))
	var full *BlocklistFullError
	if !errors.As(err, &full) || !errors.Is(err, ErrBlocklistFull) || full.Max != 2 {
		t.Fatalf("err = %v, want BlocklistFullError{Max: 2}", err)
	}
	// Re-blocking an entry does not count against the limit.
	if _, err := b.Block(jid.MustParse("a@x.example"), jid.MustParse("b@x.example")); err != nil {
		t.Errorf("block up to the limit: %v", err)
	}
}

// TestBlocklistMatching follows XEP-0191 §3.3 (XEP-0016 matching).
func TestBlocklistMatching(t *testing.T) {
	b := NewBlocklist(0).Apply(BlocklistChanged{Blocked: []string{
		"romeo@example.net", "spam.example", "juliet@example.com/balcony", "example.org/bot",
	}})
	tests := []struct {
		peer string
		want bool
	}{
		{"romeo@example.net", true},
		{"romeo@example.net/orchard", true}, // bare entry blocks every resource
		{"anyone@spam.example/x", true},     // domain entry blocks the whole domain
		{"spam.example", true},
		{"juliet@example.com/balcony", true},
		{"juliet@example.com/chamber", false}, // full entry blocks only that resource
		{"juliet@example.com", false},
		{"example.org/bot", true},
		{"user@example.org/bot", true}, // domain/resource entry, XEP-0016 order
		{"user@example.org/human", false},
		{"benvolio@example.net", false},
	}
	for _, tc := range tests {
		if got := b.Blocks(jid.MustParse(tc.peer)); got != tc.want {
			t.Errorf("Blocks(%s) = %v, want %v", tc.peer, got, tc.want)
		}
	}
	if (Blocklist{}).Blocks(jid.MustParse("romeo@example.net")) {
		t.Error("empty list blocks")
	}
}
