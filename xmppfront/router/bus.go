package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/eventstore/bus"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Metadata keys of a stanza on the bus. The payload is the stanza as it
// would be written on a jabber:client stream, 'from' already stamped.
const (
	mdSession = "session"
	mdFrom    = "from"
)

// Topic returns the bus topic of partition p.
func Topic(p int) string { return bus.TopicStanza + "." + strconv.Itoa(p) }

// Submit publishes a stanza read by a bound session on the bus. With the
// in-process bus it returns once the router has consumed it, so one
// session's stanzas are routed in order.
func (r *Router) Submit(_ context.Context, s Session, st *stream.Element) error {
	from := s.JID()
	id := s.ID() + "." + strconv.FormatUint(r.seq.Add(1), 36)
	m := message.NewMessage(id, st.AppendStanza(nil, stanza.NSClient))
	m.Metadata = message.Metadata{mdSession: s.ID(), mdFrom: from.String()}
	if err := r.cfg.Publisher.Publish(Topic(r.partition(from.Bare().String())), m); err != nil {
		return fmt.Errorf("router: publish: %w", err)
	}
	return nil
}

// Start subscribes to every partition and routes what arrives until ctx
// ends. It returns once the subscriptions are in place, so sessions may
// submit as soon as it returns (the in-process bus drops what is published
// to a topic nobody listens to).
func (r *Router) Start(ctx context.Context) error {
	chans := make([]<-chan *message.Message, r.cfg.Partitions)
	for p := range chans {
		c, err := r.cfg.Subscriber.Subscribe(ctx, Topic(p))
		if err != nil {
			return fmt.Errorf("router: subscribe partition %d: %w", p, err)
		}
		chans[p] = c
	}
	for _, c := range chans {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.consume(ctx, c)
		}()
	}
	return nil
}

// Wait blocks until the partition consumers have stopped (after the
// context given to Start ends).
func (r *Router) Wait() { r.wg.Wait() }

func (r *Router) consume(ctx context.Context, c <-chan *message.Message) {
	dec := &busDecoder{max: r.cfg.MaxStanzaSize + 1024}
	for m := range c {
		st, err := dec.decode(m.Payload)
		if err != nil {
			// Only a bug can put an unreadable stanza on the bus: the
			// session serialised what it parsed.
			r.log.WithError(err).Error("router: undecodable stanza on the bus")
		} else {
			r.fromSession(ctx, m.Metadata.Get(mdSession), st)
		}
		m.Ack()
	}
}

// busHeader opens the one-element stream a bus payload is parsed in.
const busHeader = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"

// busDecoder parses the stanzas of one partition with one long-lived
// Reader: every payload is fed to it as the next element of one endless
// stream, which saves a Reader, a header and their garbage per stanza.
// The Reader never asks for input past the end of an element before Next
// is called again, so each Next sees exactly one payload.
type busDecoder struct {
	max int
	in  feed
	rd  *stream.Reader
}

type feed struct{ b []byte }

func (f *feed) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

func (d *busDecoder) decode(b []byte) (*stream.Element, error) {
	if d.rd == nil {
		d.in.b = []byte(busHeader)
		d.rd = stream.NewReader(&d.in, stream.Limits{MaxStanzaSize: d.max})
		if _, err := d.rd.ReadHeader(); err != nil {
			d.rd = nil
			return nil, err
		}
	}
	d.in.b = b
	el, err := d.rd.Next()
	if err != nil || len(d.in.b) > 0 || d.rd.Buffered() > 0 {
		// A broken Reader is sticky, and leftover bytes would belong
		// to no stanza: start afresh with the next payload.
		d.rd = nil
		if err == nil {
			err = errors.New("router: trailing bytes after a stanza on the bus")
		}
		return nil, err
	}
	return el, nil
}

// DecodeStanza parses one stanza serialised for a jabber:client stream
// (as AppendStanza(nil, stanza.NSClient) writes it), of at most max bytes.
func DecodeStanza(b []byte, max int) (*stream.Element, error) {
	rd := stream.NewReader(io.MultiReader(strings.NewReader(busHeader), bytes.NewReader(b)), stream.Limits{MaxStanzaSize: max})
	if _, err := rd.ReadHeader(); err != nil {
		return nil, err
	}
	return rd.Next()
}

// fromSession routes a stanza from a local client session, 'from' stamped
// with its full JID. It must not block: whatever may wait on the store or
// the network runs on the sender's worker.
func (r *Router) fromSession(ctx context.Context, sid string, st *stream.Element) {
	from, err := jid.Parse(st.Attr("from"))
	if err != nil {
		r.log.WithError(err).Error("router: stanza from a session without a valid 'from'")
		return
	}
	e := r.entryByID(sid)
	var sess Session
	if e != nil {
		sess = e.sess
	}
	var to jid.JID
	if t := st.Attr("to"); t != "" {
		if to, err = jid.Parse(t); err != nil {
			r.bounce(ctx, st, stanza.JIDMalformed)
			return
		}
	} else if st.Name.Local != "presence" {
		// RFC 6120 §10.3.3 (IQ) and §8.1.1.1 (message): no 'to' means the
		// sender's own account.
		to = from.Bare()
	}
	if st.Attr("to") != "" && !(r.IsLocal(to.Domainpart()) && (to.Localpart() == "" || to.Bare().Equal(from.Bare()))) &&
		r.blocking(ctx, st, from, to) {
		return
	}
	switch st.Name.Local {
	case "presence":
		r.presenceFromSession(ctx, sess, from, to, st)
	case "iq":
		typ := st.Attr("type")
		if typ == "get" || typ == "set" {
			if _, err := stanza.Payload(st); err != nil {
				r.bounceErr(ctx, st, err)
				return
			}
		}
		if r.IsLocal(to.Domainpart()) && to.Resourcepart() == "" {
			if typ != "get" && typ != "set" && typ != "" {
				return // result or error to the server or a bare JID
			}
			r.onWorker(ctx, sess, st, func(ctx context.Context) { r.handleIQ(ctx, st, from, to) })
			return
		}
		r.deliverFromSession(ctx, e, st, to, nil)
	case "message":
		r.deliverFromSession(ctx, e, st, to, &Message{Stanza: st, From: from, To: to})
	}
}

// deliverFromSession delivers at once to local users who are online; for
// the others delivery may touch the store (offline storage, account
// lookup) or the network (s2s), and a message the archiver may keep waits
// for its append, so those run on the sender's worker. m is the message
// st is, nil for an IQ.
func (r *Router) deliverFromSession(ctx context.Context, e *entry, st *stream.Element, to jid.JID, m *Message) {
	inline := r.IsLocal(to.Domainpart()) && (to.Localpart() == "" || r.online(to))
	if m != nil && r.cfg.Archiver != nil && r.cfg.Archiver.Keeps(st) {
		m.archive, inline = true, false
	}
	if inline && (e == nil || e.onWorker.Load() == 0) {
		r.deliver(ctx, st, to, m)
		return
	}
	if e == nil {
		return // the sender is gone; nobody to answer
	}
	e.onWorker.Add(1)
	if !r.onWorker(ctx, e.sess, st, func(ctx context.Context) {
		defer e.onWorker.Add(-1)
		r.deliver(ctx, st, to, m)
	}) {
		e.onWorker.Add(-1)
	}
}

func (r *Router) presenceFromSession(ctx context.Context, sess Session, from, to jid.JID, st *stream.Element) {
	if r.cfg.Presence == nil {
		// No presence handler: keep availability, deliver directed
		// presence, nothing else.
		if st.Attr("to") == "" {
			r.SetPresence(from, st)
			return
		}
		r.deliver(ctx, st, to, nil)
		return
	}
	if sess == nil {
		return
	}
	if !sess.Do(func(ctx context.Context) { r.cfg.Presence.Outbound(ctx, from, st) }) {
		r.log.WithField("from", from.String()).Warn("router: session worker full, presence dropped")
	}
}

// onWorker runs f on the sender's worker, or bounces st with
// resource-constraint if the worker's queue is full. It reports whether f
// was queued.
func (r *Router) onWorker(ctx context.Context, sess Session, st *stream.Element, f func(context.Context)) bool {
	if sess == nil {
		return false // the sender is gone; nobody to answer
	}
	if !sess.Do(f) {
		r.bounceWith(ctx, st, &stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint, Text: "too many requests in flight"})
		return false
	}
	return true
}

func (r *Router) online(user jid.JID) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.users[user.Bare().String()]) > 0
}
