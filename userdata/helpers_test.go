package userdata

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/accounts"
	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/eventstore/embedded"
	"verlauf.im/verlauf/eventstore/keystore"
	"verlauf.im/verlauf/projections"
	"verlauf.im/verlauf/xmppfront/stream"
)

// env is a whole server's storage on disk: the embedded store, the
// projections with the real runner, the key store, and the archive and
// accounts services wired as cmd/verlauf wires them.
type env struct {
	t        testing.TB
	store    *embedded.Store
	keys     *archive.Keys
	ks       *keystore.Store
	archive  *archive.Service
	index    *projections.Archive
	accounts *accounts.Service
	runner   *projections.Runner
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e := &env{t: t}
	var err error
	if e.store, err = embedded.Open(ctx, filepath.Join(dir, "events"), embedded.Options{CacheSize: 16 << 20, MemTableSize: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	db, err := projections.OpenDB(filepath.Join(dir, "projections"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	index := projections.NewArchive(db)
	accProj := projections.NewAccounts(db)
	log := logrus.NewEntry(logrus.New())
	log.Logger.SetLevel(logrus.WarnLevel)
	b := bus.InProcess(log)
	e.runner = projections.NewRunner(e.store, b, log, index, accProj)
	rctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- e.runner.Run(rctx, ready) }()
	select {
	case <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("runner: %v", err)
	}
	e.ks = ks
	e.index = index
	e.keys = archive.NewKeys(ks, nil)
	if e.archive, err = archive.New(archive.Config{Store: e.store, KeyStore: ks, Index: index, Waiter: e.runner}, e.keys); err != nil {
		t.Fatal(err)
	}
	if e.accounts, err = accounts.New(accounts.Config{
		Store: e.store, Directory: accProj, Domain: "example.org", Iterations: domain.MinSCRAMIterations,
		Hooks: accounts.Hooks{OnRegistered: func(ctx context.Context, km accounts.KeyMaterial) error {
			return e.keys.Provision(ctx, km.User, km.ClientKeys)
		}},
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.archive.Close(context.Background())
		cancel()
		<-errc
		b.Close()
		db.Close()
		e.store.Close()
		ks.Close()
	})
	return e
}

func (e *env) deps() Deps {
	return Deps{Store: e.store, Archive: e.archive, Accounts: e.accounts, Keys: e.keys}
}

func (e *env) head() eventstore.Position {
	e.t.Helper()
	p, err := e.store.Head(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// unlock opens user's keys with password, as a login does.
func (e *env) unlock(user jid.JID, password string) {
	e.t.Helper()
	ctx := context.Background()
	for _, h := range []string{domain.HashSHA256, domain.HashSHA1} {
		v, err := e.accounts.Credentials(ctx, user, h)
		if err != nil {
			continue
		}
		ck, err := archive.ClientKeyFromPassword(v, password)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := e.keys.Unlock(ctx, user, h, ck); err != nil {
			e.t.Fatalf("unlock %s with %s: %v", user, h, err)
		}
		return
	}
	e.t.Fatalf("%s has no verifier", user)
}

func mustJID(t testing.TB, s string) jid.JID {
	t.Helper()
	j, err := jid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// chat builds a stanza the way the router archives it.
func chat(from, to jid.JID, id, body string) []byte {
	m := stream.NewElement(stream.NSClient, "message", "from", from.String(), "to", to.String(), "type", "chat", "id", id)
	m.AddChild(stream.NewElement(stream.NSClient, "body").AddText(body))
	return m.AppendStanza(nil, stream.NSClient)
}

// fill stores n messages between user and a few partners, in batches.
func (e *env) fill(user jid.JID, n int, start time.Time) {
	e.t.Helper()
	ctx := context.Background()
	partners := []jid.JID{mustJID(e.t, "bob@example.net"), mustJID(e.t, "carol@example.com"), mustJID(e.t, "dave@example.org")}
	const batch = 1000
	for i := 0; i < n; i += batch {
		var entries []archive.Entry
		for k := i; k < min(n, i+batch); k++ {
			p := partners[k%len(partners)]
			at := start.Add(time.Duration(k) * time.Second)
			id, err := uuid.NewV7()
			if err != nil {
				e.t.Fatal(err)
			}
			ent := archive.Entry{ID: id, Partner: p, At: at}
			if k%2 == 0 {
				ent.Direction, ent.Stanza = domain.DirectionIn, chat(withRes(p, "phone"), user, fmt.Sprint("m", k), fmt.Sprintf("message %d <&> ü", k))
			} else {
				ent.Direction, ent.Stanza = domain.DirectionOut, chat(withRes(user, "laptop"), p, fmt.Sprint("m", k), fmt.Sprintf("reply %d", k))
			}
			entries = append(entries, ent)
		}
		if _, err := e.archive.StoreMany(ctx, user, entries...); err != nil {
			e.t.Fatal(err)
		}
	}
}

func withRes(j jid.JID, r string) jid.JID {
	f, err := j.WithResource(r)
	if err != nil {
		panic(err)
	}
	return f
}
