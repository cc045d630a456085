package archive

import (
	"context"
	"errors"
	"testing"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
)

func TestPrefs(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{}, nil)
	alice, bob, carol := mustJID(t, "alice@example.org"), mustJID(t, "bob@example.org"), mustJID(t, "carol@example.org")

	check := func(step string, partner bool, inRoster bool, want bool) {
		t.Helper()
		p := bob
		if !partner {
			p = carol
		}
		got, err := e.svc.Archives(ctx, alice, p, inRoster)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%s: Archives(%s, roster %v) = %v, want %v", step, p, inRoster, got, want)
		}
	}
	check("no history by default", true, true, false)
	if _, err := e.svc.SetPrefs(ctx, alice, domain.ArchiveRoster, nil, []jid.JID{bob}); err != nil {
		t.Fatal(err)
	}
	check("roster mode, never bob", true, true, false)
	check("roster mode, carol in roster", false, true, true)
	check("roster mode, carol not in roster", false, false, false)
	if _, err := e.svc.SetPrefs(ctx, alice, "sometimes", nil, nil); !errors.Is(err, domain.ErrInvalidPrefs) {
		t.Fatalf("invalid mode: %v", err)
	}
	check("unchanged by an invalid change", false, false, false)

	// A change made by another front end or node, straight through the
	// command path: the cache answers the old value until the event passes
	// HandleEvent, then the new one.
	agg := e.svc.prefsAgg()
	_, res, err := eventstore.Execute(ctx, e.store, domain.PrefsStream(alice), agg, func(p domain.ArchivePrefs) ([]domain.Event, error) {
		out, err := p.Set(domain.ArchiveAlways, nil, nil)
		if err != nil {
			return nil, err
		}
		return domain.NewEvents(e.clock, out...)
	})
	if err != nil {
		t.Fatal(err)
	}
	check("cached", true, false, false)
	evs, err := e.store.ReadAll(ctx, eventstore.Start, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Position == res.Position {
			if err := e.svc.HandleEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	check("after the event", true, false, true)
}
