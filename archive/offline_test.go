package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/domain/envelope"
	"verlauf.im/verlauf/eventstore"
)

func TestOfflineQueue(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := newEnv(t, dir, Config{OfflineLimit: 3}, nil)
	bob := newAccount(t, "bob@example.org", "correct horse")
	e.provision(bob)

	var stamps []time.Time
	var queued []uuid.UUID
	for i := range 3 {
		stamps = append(stamps, e.clock.Now())
		id, err := e.svc.Queue(ctx, bob.jid, stanza("alice@example.org/pc", "bob@example.org", fmt.Sprint("wait ", i)))
		if err != nil {
			t.Fatal(err)
		}
		queued = append(queued, id)
		e.clock.add(time.Minute)
	}
	if _, err := e.svc.Queue(ctx, bob.jid, []byte("<message/>")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("fourth message: %v, want ErrQueueFull", err)
	}
	if _, err := e.svc.Drain(ctx, bob.jid); !errors.Is(err, ErrLocked) {
		t.Fatalf("drain while locked: %v, want ErrLocked", err)
	}

	// A restart keeps the queue and its bound.
	e.close()
	e = newEnv(t, dir, Config{OfflineLimit: 3}, nil)
	if n, err := e.svc.Pending(ctx, bob.jid); err != nil || n != 3 {
		t.Fatalf("after restart: %d pending, %v", n, err)
	}
	if _, err := e.svc.Queue(ctx, bob.jid, []byte("<message/>")); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("after restart, fourth message: %v, want ErrQueueFull", err)
	}

	e.unlock(bob)
	msgs, err := e.svc.Drain(ctx, bob.jid)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("drained %d, want 3", len(msgs))
	}
	for i, m := range msgs {
		if m.Err != nil || m.ID != queued[i] || !m.At.Equal(stamps[i]) ||
			!bytes.Equal(m.Stanza, stanza("alice@example.org/pc", "bob@example.org", fmt.Sprint("wait ", i))) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	firstKeys := offlineKeys(t, e, "bob@example.org")
	if len(firstKeys) != 1 {
		t.Fatalf("%d offline keys before delivery, want 1", len(firstKeys))
	}

	// A partial delivery keeps the key: a message under it still waits.
	if err := e.svc.Delivered(ctx, bob.jid, queued[:2]); err != nil {
		t.Fatal(err)
	}
	if keys := offlineKeys(t, e, "bob@example.org"); len(keys) != 1 || keys[0].Sealed.ID != firstKeys[0].Sealed.ID {
		t.Fatalf("after a partial delivery: keys %v, want the batch's key", keys)
	}
	// A message arriving between drain and delivery goes under a new key,
	// which the delivery of the first batch leaves alone.
	late, err := e.svc.Queue(ctx, bob.jid, stanza("carol@example.org", "bob@example.org", "late"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Delivered(ctx, bob.jid, queued[2:]); err != nil {
		t.Fatal(err)
	}
	left := offlineKeys(t, e, "bob@example.org")
	if len(left) != 1 || left[0].Sealed.ID == firstKeys[0].Sealed.ID {
		t.Fatalf("after delivery: keys %v, want only the late message's key", left)
	}
	if n, _ := e.svc.Pending(ctx, bob.jid); n != 1 {
		t.Fatalf("%d pending, want the late one", n)
	}

	// The delivered records are still in the log, and can no longer be
	// opened by anyone: their key is gone.
	evs, err := e.store.ReadStream(ctx, domain.OfflineStream(bob.jid), 0, eventstore.Forwards, 100)
	if err != nil {
		t.Fatal(err)
	}
	cur, done, err := e.keys.session("bob@example.org")
	if err != nil {
		t.Fatal(err)
	}
	opened := 0
	for _, ev := range evs {
		p, err := domain.Decode(ev.Event)
		if err != nil {
			t.Fatal(err)
		}
		q, ok := p.(domain.OfflineMessageQueued)
		if !ok {
			continue
		}
		_, err = e.svc.openRecord(ctx, cur, "bob@example.org", envelope.KindOffline, q.ID, q.KeyID, q.Sealed)
		switch {
		case q.ID == late && err == nil:
			opened++
		case q.ID != late && !errors.Is(err, ErrKeyGone):
			t.Errorf("delivered record %s: %v, want ErrKeyGone", q.ID, err)
		}
	}
	done()
	if opened != 1 {
		t.Fatal("the late message cannot be opened")
	}

	msgs, err = e.svc.Drain(ctx, bob.jid)
	if err != nil || len(msgs) != 1 || msgs[0].ID != late {
		t.Fatalf("second drain: %+v %v", msgs, err)
	}
	if err := e.svc.Delivered(ctx, bob.jid, []uuid.UUID{late}); err != nil {
		t.Fatal(err)
	}
	if keys := offlineKeys(t, e, "bob@example.org"); len(keys) != 0 {
		t.Fatalf("%d offline keys after everything was delivered", len(keys))
	}
	// The bound counts waiting messages only.
	if _, err := e.svc.Queue(ctx, bob.jid, []byte("<message/>")); err != nil {
		t.Fatal(err)
	}

	// The shredded key's bytes are gone from the key store's files.
	e.close()
	var blobs [][]byte
	for _, k := range firstKeys {
		blobs = append(blobs, k.Sealed.Blob)
	}
	if found := scanFiles(t, e.dataDirs()[2], blobs); len(found) > 0 {
		t.Fatalf("shredded key bytes still in %v", found)
	}
}

func offlineKeys(t *testing.T, e *env, user string) []keystoreDataKey {
	t.Helper()
	keys, err := e.ks.DataKeys(context.Background(), user)
	if err != nil {
		t.Fatal(err)
	}
	var out []keystoreDataKey
	for _, k := range keys {
		if k.Kind == envelope.KindOffline {
			out = append(out, k)
		}
	}
	return out
}

// Queueing, draining, delivering, archiving and querying for one user at
// once, as several sessions and the router do: no deadlock, no message
// lost, and (under -race) no data race.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir(), Config{OfflineLimit: 1000}, nil)
	bob := newAccount(t, "bob@example.org", "correct horse")
	e.provision(bob)
	e.unlock(bob)
	const n = 20
	errc := make(chan error, 4)
	go func() {
		for i := range n {
			if _, err := e.svc.Queue(ctx, bob.jid, []byte(fmt.Sprint("<message>", i, "</message>"))); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	go func() {
		for range n {
			if _, err := e.svc.Store(ctx, bob.jid, mustJID(t, "carol@example.org"), []byte("<message/>"), domain.DirectionIn, time.Now()); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	delivered := make(chan int, 1)
	go func() {
		total := 0
		for total < n {
			msgs, err := e.svc.Drain(ctx, bob.jid)
			if err != nil {
				errc <- err
				return
			}
			var ids []uuid.UUID
			for _, m := range msgs {
				if m.Err != nil {
					errc <- m.Err
					return
				}
				ids = append(ids, m.ID)
			}
			if err := e.svc.Delivered(ctx, bob.jid, ids); err != nil {
				errc <- err
				return
			}
			total += len(ids)
		}
		delivered <- total
		errc <- nil
	}()
	go func() {
		for range n {
			if _, err := e.svc.Query(ctx, bob.jid, Query{}); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if got := <-delivered; got != n {
		t.Fatalf("delivered %d, want %d", got, n)
	}
	if keys := offlineKeys(t, e, "bob@example.org"); len(keys) > 1 {
		t.Fatalf("%d offline keys left after everything was delivered, want at most the current one", len(keys))
	}
}
