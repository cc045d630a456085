package offline

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

type fakeQueue struct {
	queueErr  error
	queued    int
	waiting   []archive.QueuedMessage
	delivered []uuid.UUID
}

func (q *fakeQueue) Queue(context.Context, jid.JID, []byte) (uuid.UUID, error) {
	if q.queueErr != nil {
		return uuid.Nil, q.queueErr
	}
	q.queued++
	return uuid.New(), nil
}
func (q *fakeQueue) Drain(context.Context, jid.JID) ([]archive.QueuedMessage, error) {
	return q.waiting, nil
}
func (q *fakeQueue) Delivered(_ context.Context, _ jid.JID, ids []uuid.UUID) error {
	q.delivered = append(q.delivered, ids...)
	return nil
}

// fakeRouter has one resource that takes room stanzas, then refuses.
type fakeRouter struct {
	room int
	got  []*stream.Element
}

func (r *fakeRouter) Resources(jid.JID) []router.Resource { return nil }
func (r *fakeRouter) SendToResourceWait(_ context.Context, _ jid.JID, st *stream.Element) bool {
	if len(r.got) == r.room {
		return false
	}
	r.got = append(r.got, st)
	return true
}

func TestOfflineErr(t *testing.T) {
	bob := jid.MustParse("bob@example.test")
	tests := []struct {
		name     string
		raw      string
		queueErr error
		want     stanza.Condition // "" when taken
		queued   int
	}{
		{"chat with a body is queued", "<message type='chat'><body>x</body></message>", nil, "", 1},
		{"normal with a body is queued", "<message><body>x</body></message>", nil, "", 1},
		{"store hint without body is queued", "<message type='chat'><store xmlns='urn:xmpp:hints'/></message>", nil, "", 1},
		{"chat state alone is dropped quietly", "<message type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/></message>", nil, "", 0},
		{"OTR is refused", "<message type='chat'><body>?OTR:AAM</body></message>", nil, stanza.ServiceUnavailable, 0},
		{"no-store is refused", "<message type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>", nil, stanza.ServiceUnavailable, 0},
		{"headline is not ours", "<message type='headline'><body>x</body></message>", nil, stanza.ServiceUnavailable, 0},
		{"a full queue is resource-constraint", "<message type='chat'><body>x</body></message>", archive.ErrQueueFull, stanza.ResourceConstraint, 0},
		{"a broken store is internal-server-error", "<message type='chat'><body>x</body></message>", errors.New("disk on fire"), stanza.InternalServerError, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &fakeQueue{queueErr: tt.queueErr}
			s := New(Config{Queue: q, Router: &fakeRouter{}, Domain: "example.test"})
			st, err := router.DecodeStanza([]byte(tt.raw), 1<<16)
			if err != nil {
				t.Fatal(err)
			}
			err = s.OfflineErr(context.Background(), bob, st)
			var se *stanza.Error
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused with %v, want taken", err)
			case tt.want != "" && (!errors.As(err, &se) || se.Condition != tt.want):
				t.Fatalf("got %v, want %s", err, tt.want)
			}
			if q.queued != tt.queued {
				t.Fatalf("queued %d, want %d", q.queued, tt.queued)
			}
		})
	}
}

func TestAvailableDeliversWhatItCan(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 600e6, time.UTC)
	ids := []uuid.UUID{uuid.New(), uuid.New(), uuid.New(), uuid.New()}
	q := &fakeQueue{waiting: []archive.QueuedMessage{
		{ID: ids[0], At: at, Stanza: []byte("<message type='chat' id='a'><body>x</body></message>")},
		{ID: ids[1], Err: errors.New("corrupt")}, // forgotten, or it stays for good
		{ID: ids[2], At: at, Stanza: []byte("<message type='chat' id='c'><body>y</body></message>")},
		{ID: ids[3], At: at, Stanza: []byte("<message type='chat' id='d'><body>z</body></message>")},
	}}
	r := &fakeRouter{room: 2}
	s := New(Config{Queue: q, Router: r, Domain: "example.test"})
	s.Available(context.Background(), jid.MustParse("bob@example.test/1"))
	if want := ids[:3]; !slices.Equal(q.delivered, want) {
		t.Fatalf("recorded as delivered %v, want %v (the last did not fit)", q.delivered, want)
	}
	if len(r.got) != 2 {
		t.Fatalf("sent %d", len(r.got))
	}
	d := r.got[0].Child("delay", NSDelay)
	if d == nil || d.Attr("stamp") != "2025-01-02T03:04:05.600Z" || d.Attr("from") != "example.test" {
		t.Fatalf("first message %s, want a delay stamped 2025-01-02T03:04:05.600Z from example.test", r.got[0])
	}
}
