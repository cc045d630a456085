package domain

import (
	"errors"
	"fmt"
)

// VCardSet records the user's vCard (XEP-0054 vcard-temp), stream
// VCardStream. It is a full replacement, as the vcard-temp set is. The
// vCard travels as its serialized XML: the domain does not interpret it
// (it is the client's business card, not a rule of the server), and a
// string keeps the event readable by any tool that reads the log.
type VCardSet struct {
	// XML is the complete <vCard xmlns='vcard-temp'/> element.
	XML string `json:"xml"`
}

// EventType implements Payload.
func (VCardSet) EventType() string { return TypeVCardSet }

// EventSchemaVersion implements Payload.
func (VCardSet) EventSchemaVersion() int { return 1 }

// ErrItemTooLarge is wrapped when a stored item (a vCard, a private XML
// item) is larger than the limit the caller set.
var ErrItemTooLarge = errors.New("domain: item too large")

// ErrEmptyItem is wrapped when an item to store has no content at all.
var ErrEmptyItem = errors.New("domain: empty item")

// VCard is the state of one user's vCard, folded from VCardStream. The
// zero value is a user who never published one.
type VCard struct {
	// XML is the current vCard, "" if none was ever set.
	XML string
}

// Set decides replacing the vCard with xml. maxBytes bounds the size (0
// means no limit): the vCard is loaded whenever anyone asks for it, and
// avatars belong in XEP-0084, not inline. Setting the same vCard again
// records nothing.
func (v VCard) Set(xml string, maxBytes int) ([]Payload, error) {
	if err := checkItem(xml, maxBytes); err != nil {
		return nil, fmt.Errorf("set vcard: %w", err)
	}
	if xml == v.XML {
		return nil, nil
	}
	return []Payload{VCardSet{XML: xml}}, nil
}

// Apply is the vCard's fold function.
func (v VCard) Apply(p Payload) VCard {
	if e, ok := p.(VCardSet); ok {
		v.XML = e.XML
	}
	return v
}

func checkItem(xml string, maxBytes int) error {
	if xml == "" {
		return ErrEmptyItem
	}
	if maxBytes > 0 && len(xml) > maxBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrItemTooLarge, len(xml), maxBytes)
	}
	return nil
}
