package domain

import (
	"bytes"
	"errors"
	"testing"

	"mellium.im/xmpp/jid"
)

func testVerifiers(t *testing.T, password string) []SCRAMVerifier {
	t.Helper()
	vs, err := NewSCRAMVerifiers(bytes.NewReader(bytes.Repeat([]byte{7}, 64)), password, MinSCRAMIterations)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

func foldAccount(t *testing.T, a Account, ps []Payload) Account {
	t.Helper()
	evs, err := NewEvents(fixedClock, ps...)
	if err != nil {
		t.Fatal(err)
	}
	a, err = Fold(a, Account.Apply, evs...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAccountLifecycle(t *testing.T) {
	alice, err := AccountJID("Alice", "example.org")
	if err != nil {
		t.Fatal(err)
	}
	v1 := testVerifiers(t, "pencil")
	v2 := testVerifiers(t, "crayon")

	var a Account
	ps, err := a.Register(alice, v1)
	if err != nil {
		t.Fatal(err)
	}
	a = foldAccount(t, a, ps)
	if !a.Active() || a.JID != "alice@example.org" {
		t.Fatalf("after register: %+v", a)
	}
	if v, ok := a.Verifier(HashSHA256); !ok || !bytes.Equal(v.StoredKey, v1[1].StoredKey) {
		t.Fatal("SHA-256 verifier not kept")
	}

	ps, err = a.ChangePassword(v2)
	if err != nil {
		t.Fatal(err)
	}
	a = foldAccount(t, a, ps)
	if v, _ := a.Verifier(HashSHA1); !bytes.Equal(v.StoredKey, v2[0].StoredKey) {
		t.Fatal("password change not applied")
	}

	ps, err = a.Delete()
	if err != nil {
		t.Fatal(err)
	}
	a = foldAccount(t, a, ps)
	if a.Active() || len(a.Verifiers) != 0 {
		t.Fatalf("after delete: %+v", a)
	}
}

func TestAccountRules(t *testing.T) {
	alice := jid.MustParse("alice@example.org")
	good := testVerifiers(t, "pencil")
	registered := Account{}.Apply(AccountRegistered{JID: alice.String(), Verifiers: good})
	deleted := registered.Apply(AccountDeleted{})
	dup := []SCRAMVerifier{good[0], good[0]}
	broken := []SCRAMVerifier{{Hash: HashSHA256, Salt: []byte("x"), Iterations: 4096}}

	tests := []struct {
		name  string
		state Account
		cmd   func(Account) ([]Payload, error)
		want  error
	}{
		{"register twice", registered, func(a Account) ([]Payload, error) { return a.Register(alice, good) }, ErrAccountExists},
		// A deleted name is never registered again (see Account).
		{"register deleted", deleted, func(a Account) ([]Payload, error) { return a.Register(alice, good) }, ErrAccountDeleted},
		{"register full JID", Account{}, func(a Account) ([]Payload, error) {
			return a.Register(jid.MustParse("alice@example.org/phone"), good)
		}, ErrInvalidJID},
		{"register domain", Account{}, func(a Account) ([]Payload, error) { return a.Register(jid.MustParse("example.org"), good) }, ErrInvalidJID},
		{"register zero JID", Account{}, func(a Account) ([]Payload, error) { return a.Register(jid.JID{}, good) }, ErrInvalidJID},
		{"register without verifiers", Account{}, func(a Account) ([]Payload, error) { return a.Register(alice, nil) }, ErrNoVerifiers},
		{"register duplicate hash", Account{}, func(a Account) ([]Payload, error) { return a.Register(alice, dup) }, ErrDuplicateVerifier},
		{"register broken verifier", Account{}, func(a Account) ([]Payload, error) { return a.Register(alice, broken) }, ErrInvalidCredentials},
		{"passwd unregistered", Account{}, func(a Account) ([]Payload, error) { return a.ChangePassword(good) }, ErrAccountNotFound},
		{"passwd deleted", deleted, func(a Account) ([]Payload, error) { return a.ChangePassword(good) }, ErrAccountDeleted},
		{"passwd broken", registered, func(a Account) ([]Payload, error) { return a.ChangePassword(broken) }, ErrInvalidCredentials},
		{"passwd none", registered, func(a Account) ([]Payload, error) { return a.ChangePassword(nil) }, ErrNoVerifiers},
		{"delete unregistered", Account{}, func(a Account) ([]Payload, error) { return a.Delete() }, ErrAccountNotFound},
		{"delete deleted", deleted, func(a Account) ([]Payload, error) { return a.Delete() }, ErrAccountDeleted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := tc.cmd(tc.state)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if ps != nil {
				t.Errorf("events %v on error", ps)
			}
		})
	}
}

func TestAccountJID(t *testing.T) {
	tests := []struct {
		user, domain, want string
		ok                 bool
	}{
		{"alice", "example.org", "alice@example.org", true},
		{"Alice", "Example.ORG", "alice@example.org", true},
		{"", "example.org", "", false},
		{"al ice", "example.org", "", false},
		{"al@ice", "example.org", "", false},
		{"alice", "", "", false},
	}
	for _, tc := range tests {
		j, err := AccountJID(tc.user, tc.domain)
		if tc.ok {
			if err != nil || j.String() != tc.want {
				t.Errorf("AccountJID(%q, %q) = %s, %v; want %s", tc.user, tc.domain, j, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidJID) {
			t.Errorf("AccountJID(%q, %q) err = %v, want ErrInvalidJID", tc.user, tc.domain, err)
		}
	}
}
