package domain

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The catalogue is a switch, not a registry map that packages fill in at
// init time: the set of event types is part of the domain's language and
// must be readable in one place, and a package-level map would be mutable
// global state. Adding an event type means adding it to EventTypes and a
// case to CurrentSchemaVersion and to Decode (TestEventTypesComplete and
// TestCatalogueRoundTrip catch a missing piece).
//
// Decoded payloads are values, not pointers, so aggregates and projections
// switch on the value types (case RosterItemSet:).

// Event type names of the catalogue.
const (
	TypeAccountRegistered      = "account.registered"
	TypeAccountPasswordChanged = "account.password_changed"
	TypeAccountDeleted         = "account.deleted"

	TypeRosterItemSet         = "roster.item_set"
	TypeRosterItemRemoved     = "roster.item_removed"
	TypeRosterRequestReceived = "roster.request_received"
	TypeRosterRequestCleared  = "roster.request_cleared"

	TypeArchivePrefsSet = "archive.prefs_set"

	// The archive and offline-queue types are declared in archive.go.

	TypeBlocklistChanged = "blocklist.changed"

	TypeVCardSet = "vcard.set"

	TypePrivateSet = "private.set"
)

// EventTypes lists every type of the catalogue, for tests that check
// each type is decodable and upcastable, and for tools that enumerate the
// log's vocabulary. It returns a fresh slice each call.
func EventTypes() []string {
	return []string{
		TypeAccountRegistered, TypeAccountPasswordChanged, TypeAccountDeleted,
		TypeRosterItemSet, TypeRosterItemRemoved, TypeRosterRequestReceived, TypeRosterRequestCleared,
		TypeArchivePrefsSet,
		TypeArchiveMessageStored, TypeArchivePartnerIndexed, TypeArchiveForgotten,
		TypeOfflineMessageQueued, TypeOfflineDelivered,
		TypeBlocklistChanged,
		TypeVCardSet,
		TypePrivateSet,
	}
}

// ErrSchemaVersion is wrapped when an event's schema version is not the one
// the code decodes: newer means the log was written by a newer verlauf (a
// rollback would misread it), older means the read path skipped the
// upcaster of package migrations.
var ErrSchemaVersion = errors.New("domain: unsupported event schema version")

// CurrentSchemaVersion returns the schema version this code writes for an
// event type, and false for a type outside the catalogue. Package
// migrations upcasts stored events until they reach it.
func CurrentSchemaVersion(eventType string) (int, bool) {
	switch eventType {
	case TypeAccountRegistered:
		return AccountRegistered{}.EventSchemaVersion(), true
	case TypeAccountPasswordChanged:
		return AccountPasswordChanged{}.EventSchemaVersion(), true
	case TypeAccountDeleted:
		return AccountDeleted{}.EventSchemaVersion(), true
	case TypeRosterItemSet:
		return RosterItemSet{}.EventSchemaVersion(), true
	case TypeRosterItemRemoved:
		return RosterItemRemoved{}.EventSchemaVersion(), true
	case TypeRosterRequestReceived:
		return RosterRequestReceived{}.EventSchemaVersion(), true
	case TypeRosterRequestCleared:
		return RosterRequestCleared{}.EventSchemaVersion(), true
	case TypeArchivePrefsSet:
		return ArchivePrefsSet{}.EventSchemaVersion(), true
	case TypeArchiveMessageStored:
		return ArchiveMessageStored{}.EventSchemaVersion(), true
	case TypeArchivePartnerIndexed:
		return ArchivePartnerIndexed{}.EventSchemaVersion(), true
	case TypeArchiveForgotten:
		return ArchiveForgotten{}.EventSchemaVersion(), true
	case TypeOfflineMessageQueued:
		return OfflineMessageQueued{}.EventSchemaVersion(), true
	case TypeOfflineDelivered:
		return OfflineDelivered{}.EventSchemaVersion(), true
	case TypeBlocklistChanged:
		return BlocklistChanged{}.EventSchemaVersion(), true
	case TypeVCardSet:
		return VCardSet{}.EventSchemaVersion(), true
	case TypePrivateSet:
		return PrivateSet{}.EventSchemaVersion(), true
	default:
		return 0, false
	}
}

// Decode turns an event's body into its catalogue payload. The event must
// already be at the current schema version (upcast by package migrations);
// other versions are refused with an error wrapping ErrSchemaVersion, and
// types outside the catalogue with an error wrapping ErrUnknownEvent.
func Decode(ev Event) (Payload, error) {
	switch ev.Type {
	case TypeAccountRegistered:
		return decodeAs[AccountRegistered](ev)
	case TypeAccountPasswordChanged:
		return decodeAs[AccountPasswordChanged](ev)
	case TypeAccountDeleted:
		return decodeAs[AccountDeleted](ev)
	case TypeRosterItemSet:
		return decodeAs[RosterItemSet](ev)
	case TypeRosterItemRemoved:
		return decodeAs[RosterItemRemoved](ev)
	case TypeRosterRequestReceived:
		return decodeAs[RosterRequestReceived](ev)
	case TypeRosterRequestCleared:
		return decodeAs[RosterRequestCleared](ev)
	case TypeArchivePrefsSet:
		return decodeAs[ArchivePrefsSet](ev)
	case TypeArchiveMessageStored:
		return decodeAs[ArchiveMessageStored](ev)
	case TypeArchivePartnerIndexed:
		return decodeAs[ArchivePartnerIndexed](ev)
	case TypeArchiveForgotten:
		return decodeAs[ArchiveForgotten](ev)
	case TypeOfflineMessageQueued:
		return decodeAs[OfflineMessageQueued](ev)
	case TypeOfflineDelivered:
		return decodeAs[OfflineDelivered](ev)
	case TypeBlocklistChanged:
		return decodeAs[BlocklistChanged](ev)
	case TypeVCardSet:
		return decodeAs[VCardSet](ev)
	case TypePrivateSet:
		return decodeAs[PrivateSet](ev)
	default:
		return nil, fmt.Errorf("%w: %q (event %s)", ErrUnknownEvent, ev.Type, ev.ID)
	}
}

func decodeAs[P Payload](ev Event) (Payload, error) {
	var p P
	if want := p.EventSchemaVersion(); ev.SchemaVersion != want {
		rel := "older"
		if ev.SchemaVersion > want {
			rel = "newer"
		}
		return nil, fmt.Errorf("%w: %s v%d is %s than v%d (event %s)", ErrSchemaVersion, ev.Type, ev.SchemaVersion, rel, want, ev.ID)
	}
	if err := json.Unmarshal(ev.Body, &p); err != nil {
		return nil, fmt.Errorf("domain: decode %s v%d (event %s): %w", ev.Type, ev.SchemaVersion, ev.ID, err)
	}
	return p, nil
}

// NewEvents wraps the payloads a rule decided in envelopes, in order. It is
// the bridge from a rule's []Payload to Store.Append.
func NewEvents(clock Clock, payloads ...Payload) ([]Event, error) {
	out := make([]Event, 0, len(payloads))
	for _, p := range payloads {
		ev, err := NewEvent(clock, p)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// Fold decodes events in order and applies each to state with apply, the
// aggregate's fold function (Account.Apply, Roster.Apply, ...). Events must
// be current (upcast); the first that does not decode stops the fold.
func Fold[S any](state S, apply func(S, Payload) S, events ...Event) (S, error) {
	for _, ev := range events {
		p, err := Decode(ev)
		if err != nil {
			return state, err
		}
		state = apply(state, p)
	}
	return state, nil
}
