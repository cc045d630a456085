// Package vcard implements vcard-temp (XEP-0054): each user publishes one
// vCard, readable by anyone who asks for it (XEP-0054 makes vCards public),
// recorded as vcard.set events on the user's vcard stream.
package vcard

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/xmppfront/router"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// NS is the vcard-temp namespace, also its disco#info feature.
const NS = "vcard-temp"

// DefaultMaxBytes bounds a stored vCard when Config.MaxBytes is 0. Many
// clients still put the avatar inline (XEP-0153), base64-encoded, so the
// bound is generous; it stays well below the stanza limit.
const DefaultMaxBytes = 128 << 10

// Config configures a Service.
type Config struct {
	// Store is the event store. Required.
	Store eventstore.Store
	// Clock stamps events (domain.SystemClock).
	Clock domain.Clock
	// MaxBytes bounds the serialized vCard (DefaultMaxBytes).
	MaxBytes int
}

// Service answers vcard-temp gets and sets.
type Service struct {
	cfg Config
}

// New returns a vCard service.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = domain.SystemClock{}
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	return &Service{cfg: cfg}
}

// Register installs the handler and its disco feature on m.
func (s *Service) Register(m *router.Mux) {
	m.Handle(NS, "vCard", s)
	m.Feature(NS)
}

var agg = eventstore.Aggregate[domain.VCard]{
	Fold: func(v domain.VCard, ev domain.Event) (domain.VCard, error) {
		return domain.Fold(v, domain.VCard.Apply, ev)
	},
}

// HandleIQ implements router.IQHandler. The router has already answered
// service-unavailable for a bare JID that is not a local account.
func (s *Service) HandleIQ(ctx context.Context, iq router.IQ) (*stream.Element, error) {
	if iq.Type == "get" {
		if iq.To.Localpart() == "" {
			// The server has no vCard of its own.
			return stream.NewElement(NS, "vCard"), nil
		}
		return s.get(ctx, iq)
	}
	if !iq.To.Equal(iq.From.Bare()) {
		return nil, stanza.Errorf(stanza.Auth, stanza.Forbidden, "a vCard can only be set by its owner")
	}
	card := iq.Payload.String()
	_, _, err := eventstore.Execute(ctx, s.cfg.Store, domain.VCardStream(iq.To), agg,
		func(v domain.VCard) ([]domain.Event, error) {
			ps, err := v.Set(card, s.cfg.MaxBytes)
			if err != nil {
				return nil, err
			}
			return domain.NewEvents(s.cfg.Clock, ps...)
		})
	switch {
	case errors.Is(err, domain.ErrItemTooLarge):
		return nil, stanza.Errorf(stanza.Modify, stanza.NotAcceptable, "the vCard is larger than %d bytes", s.cfg.MaxBytes)
	case err != nil:
		return nil, fmt.Errorf("vcard: set %s: %w", iq.To, err)
	}
	return nil, nil
}

// get reads only the newest event: a vcard.set replaces the whole card,
// so the stream's history does not matter to a reader, and a get (every
// client fetches its contacts' cards) costs one read however often the
// card changed.
func (s *Service) get(ctx context.Context, iq router.IQ) (*stream.Element, error) {
	user := iq.To.Bare()
	ev, ok, err := eventstore.LastEvent(ctx, s.cfg.Store, domain.VCardStream(user))
	if err != nil {
		return nil, fmt.Errorf("vcard: get %s: %w", user, err)
	}
	if !ok {
		return stream.NewElement(NS, "vCard"), nil
	}
	v, err := domain.Fold(domain.VCard{}, domain.VCard.Apply, ev.Event)
	if err != nil {
		return nil, fmt.Errorf("vcard: get %s: %w", user, err)
	}
	el, err := parse(v.XML)
	if err != nil {
		return nil, fmt.Errorf("vcard: stored card of %s: %w", user, err)
	}
	return el, nil
}

// streamHeader lets the stream reader parse a stored element: it only
// parses inside a stream. The stored XML declares its own namespace.
const streamHeader = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`

func parse(x string) (*stream.Element, error) {
	r := stream.NewReader(strings.NewReader(streamHeader+x), stream.Limits{MaxStanzaSize: len(x) + 1})
	if _, err := r.ReadHeader(); err != nil {
		return nil, err
	}
	return r.Next()
}
