package projections

import (
	"context"
	"slices"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

func TestAccountsProjection(t *testing.T) {
	ctx := context.Background()
	db, err := OpenDB(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p := NewAccounts(db)

	clock := domain.ClockFunc(domain.SystemClock{}.Now)
	v := domain.SCRAMVerifier{Hash: domain.HashSHA1, Salt: []byte("saltsalt"), Iterations: 4096, StoredKey: make([]byte, 20), ServerKey: make([]byte, 20)}
	var pos uint64
	apply := func(user string, payload domain.Payload) {
		t.Helper()
		ev, err := domain.NewEvent(clock, payload)
		if err != nil {
			t.Fatal(err)
		}
		pos++
		rec := eventstore.RecordedEvent{Event: ev, Stream: domain.AccountStream(jid.MustParse(user)), Position: eventstore.Position{Commit: pos, Prepare: pos}}
		if err := p.Apply(ctx, []eventstore.RecordedEvent{rec}); err != nil {
			t.Fatal(err)
		}
	}
	apply("carol@example.org", domain.AccountRegistered{JID: "carol@example.org", Verifiers: []domain.SCRAMVerifier{v}})
	apply("alice@example.org", domain.AccountRegistered{JID: "alice@example.org", Verifiers: []domain.SCRAMVerifier{v}})
	apply("bob@example.org", domain.AccountRegistered{JID: "bob@example.org", Verifiers: []domain.SCRAMVerifier{v}})
	apply("alice@example.org", domain.AccountPasswordChanged{Verifiers: []domain.SCRAMVerifier{v}})
	apply("bob@example.org", domain.AccountDeleted{})

	got, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alice@example.org", "carol@example.org"}; !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	cp, err := p.Checkpoint(ctx)
	if err != nil || cp != (eventstore.Position{Commit: 5, Prepare: 5}) {
		t.Errorf("Checkpoint = %v, %v; want 5/5", cp, err)
	}
	if err := p.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.List(ctx); len(got) != 0 {
		t.Errorf("List after Reset = %q", got)
	}
}

func TestAccountsProjectionRefusesForeignStream(t *testing.T) {
	db, err := OpenDB(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ev, err := domain.NewEvent(domain.SystemClock{}, domain.AccountDeleted{})
	if err != nil {
		t.Fatal(err)
	}
	rec := eventstore.RecordedEvent{Event: ev, Stream: domain.RosterStream(jid.MustParse("a@example.org")), Position: eventstore.Position{Commit: 1, Prepare: 1}}
	if err := NewAccounts(db).Apply(context.Background(), []eventstore.RecordedEvent{rec}); err == nil {
		t.Error("account event on a roster stream accepted")
	}
}
