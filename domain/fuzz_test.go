package domain

import (
	"errors"
	"testing"
)

// FuzzParseJID: addresses come from the network (stanza attributes, roster
// items, MAM "with" filters, SASL authzids). Parsing never panics, every
// error wraps ErrInvalidJID, and what parses is canonical: its string
// parses again to the same address. ParseBareJID accepts exactly the
// addresses ParseJID accepts that have a localpart and no resource.
func FuzzParseJID(f *testing.F) {
	for _, s := range []string{
		"alice@example.org", "alice@example.org/phone", "example.org", "Alice@Example.ORG/Res",
		"@example.org", "alice@", "a@b@c", "alice@example.org/", "/res", "",
		"ᴬlice@example.org", "ß@straße.de/ﬀ", "\x00@x", "alice@[::1]/r", "alice@127.0.0.1",
		"alice@example.org./r", "a@" + string(make([]byte, 1100)),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j, err := ParseJID(s)
		bare, berr := ParseBareJID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidJID) {
				t.Fatalf("ParseJID(%q): %v does not wrap ErrInvalidJID", s, err)
			}
			if berr == nil {
				t.Fatalf("ParseBareJID(%q) accepted what ParseJID refused", s)
			}
			return
		}
		again, err := ParseJID(j.String())
		if err != nil || !again.Equal(j) || again.String() != j.String() {
			t.Fatalf("ParseJID(%q) = %q, which parses to %q, %v", s, j, again, err)
		}
		wantBare := j.Localpart() != "" && j.Resourcepart() == ""
		switch {
		case wantBare && berr != nil:
			t.Fatalf("ParseBareJID(%q) refused a bare account address: %v", s, berr)
		case !wantBare && berr == nil:
			t.Fatalf("ParseBareJID(%q) = %q, which is not a bare account address", s, bare)
		case berr != nil && !errors.Is(berr, ErrInvalidJID):
			t.Fatalf("ParseBareJID(%q): %v does not wrap ErrInvalidJID", s, berr)
		case berr == nil && !bare.Equal(j):
			t.Fatalf("ParseBareJID(%q) = %q, ParseJID %q", s, bare, j)
		}
	})
}
