package domain

import (
	"errors"
	"fmt"
	"testing"

	"mellium.im/xmpp/jid"
)

func TestStreamNames(t *testing.T) {
	// A full JID names the same streams as its bare JID, and equivalent
	// spellings name the same stream.
	user := jid.MustParse("Alice@Example.ORG/phone")
	tests := []struct {
		fn   func(jid.JID) string
		want string
	}{
		{AccountStream, "account-alice@example.org"},
		{RosterStream, "roster-alice@example.org"},
		{ArchiveStream, "archive-alice@example.org"},
		{OfflineStream, "offline-alice@example.org"},
		{PrefsStream, "prefs-alice@example.org"},
		{BlocklistStream, "blocklist-alice@example.org"},
		{VCardStream, "vcard-alice@example.org"},
		{PrivateStream, "private-alice@example.org"},
	}
	if len(tests) != len(Concerns()) {
		t.Fatalf("%d stream helpers tested, %d concerns", len(tests), len(Concerns()))
	}
	for _, tc := range tests {
		got := tc.fn(user)
		if got != tc.want {
			t.Errorf("stream %q, want %q", got, tc.want)
		}
		concern, bare, err := SplitStream(got)
		if err != nil || concern+"-"+bare.String() != tc.want {
			t.Errorf("SplitStream(%q) = %q, %s, %v", got, concern, bare, err)
		}
	}
}

func TestSplitStreamRejects(t *testing.T) {
	for _, s := range []string{"", "roster", "-alice@example.org", "roster-", "roster-alice@example.org/phone", "roster-example.org"} {
		if _, _, err := SplitStream(s); !errors.Is(err, ErrInvalidJID) {
			t.Errorf("SplitStream(%q) err = %v, want ErrInvalidJID", s, err)
		}
	}
	// Domains with hyphens stay intact: the concern is cut at the first '-'.
	c, j, err := SplitStream("roster-bob@my-server.example")
	if err != nil || c != "roster" || j.String() != "bob@my-server.example" {
		t.Errorf("SplitStream with hyphenated domain = %q, %s, %v", c, j, err)
	}
}

func TestStreamConcern(t *testing.T) {
	tests := map[string]string{
		"roster-bob@my-server.example": "roster",
		"archive-alice@example.org":    "archive",
		"roster":                       "",
		"-alice@example.org":           "",
		"":                             "",
	}
	for stream, want := range tests {
		if got := StreamConcern(stream); got != want {
			t.Errorf("StreamConcern(%q) = %q, want %q", stream, got, want)
		}
		// It agrees with SplitStream wherever SplitStream succeeds.
		if c, _, err := SplitStream(stream); err == nil && c != StreamConcern(stream) {
			t.Errorf("StreamConcern(%q) = %q, SplitStream says %q", stream, StreamConcern(stream), c)
		}
	}
}

func TestParseJID(t *testing.T) {
	if j, err := ParseJID("Juliet@Example.com/Balcony"); err != nil || j.String() != "juliet@example.com/Balcony" {
		t.Errorf("ParseJID = %s, %v", j, err)
	}
	// "..", "0.." and the like have canonical forms that do not parse
	// back to themselves (found by FuzzParseJID).
	for _, s := range []string{"", "@example.com", "a@b@c", "juliet@example.com/", "..", "juliet@..", "../r", "0..", "a@example.com../r"} {
		if _, err := ParseJID(s); !errors.Is(err, ErrInvalidJID) {
			t.Errorf("ParseJID(%q) err = %v, want ErrInvalidJID", s, err)
		}
	}
	for _, s := range []string{"example.com", "juliet@example.com/balcony"} {
		if _, err := ParseBareJID(s); !errors.Is(err, ErrInvalidJID) {
			t.Errorf("ParseBareJID(%q) err = %v, want ErrInvalidJID", s, err)
		}
	}
}

func ExampleRosterStream() {
	alice, _ := AccountJID("Alice", "example.org")
	fmt.Println(AccountStream(alice))
	fmt.Println(RosterStream(alice))
	// Output:
	// account-alice@example.org
	// roster-alice@example.org
}
