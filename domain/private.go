package domain

import (
	"errors"
	"fmt"
	"strings"
)

// PrivateSet records one item of the user's private XML storage
// (XEP-0049), stream PrivateStream. Items are keyed by the qualified name
// of their root element; setting an item replaces the previous one with
// that name and leaves the others alone.
type PrivateSet struct {
	// Name and Namespace are the root element's local name and namespace.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// XML is the complete serialized root element.
	XML string `json:"xml"`
}

// EventType implements Payload.
func (PrivateSet) EventType() string { return TypePrivateSet }

// EventSchemaVersion implements Payload.
func (PrivateSet) EventSchemaVersion() int { return 1 }

// Private storage errors, matched with errors.Is.
var (
	// ErrReservedNamespace is wrapped when a client tries to store data
	// under a namespace XEP-0049 §3 reserves: jabber:* and vcard-temp
	// belong to protocols with their own storage.
	ErrReservedNamespace = errors.New("domain: reserved namespace")
	// ErrPrivateFull is wrapped when a new item would take the storage past
	// its item count limit.
	ErrPrivateFull = errors.New("domain: private storage full")
)

// PrivateKey names an item of private storage.
type PrivateKey struct {
	Name, Namespace string
}

// PrivateStorage is the state of one user's private XML storage, folded
// from PrivateStream. The zero value is empty storage. Like Blocklist,
// Apply consumes the receiver.
type PrivateStorage struct {
	items map[PrivateKey]string
}

// Get returns the stored XML of the item named k.
func (s PrivateStorage) Get(k PrivateKey) (string, bool) {
	x, ok := s.items[k]
	return x, ok
}

// Len is the number of stored items.
func (s PrivateStorage) Len() int { return len(s.items) }

// ReservedPrivateNamespace reports whether XEP-0049 forbids storing data
// qualified by ns: every jabber:* namespace, and vcard-temp.
func ReservedPrivateNamespace(ns string) bool {
	return strings.HasPrefix(ns, "jabber:") || ns == "vcard-temp"
}

// Limits of private storage; zero means no limit.
type PrivateLimits struct {
	// MaxItemBytes bounds the serialized size of one item.
	MaxItemBytes int
	// MaxItems bounds the number of distinct items.
	MaxItems int
}

// PrivateItem is one item to store: its name and its serialized XML.
type PrivateItem struct {
	Key PrivateKey
	XML string
}

// Set decides storing items, all or none: the item count limit covers the
// whole request. Items identical to what is stored record nothing.
func (s PrivateStorage) Set(lim PrivateLimits, items ...PrivateItem) ([]Payload, error) {
	if len(items) == 0 {
		return nil, fmt.Errorf("set private items: %w", ErrEmptyItem)
	}
	var out []Payload
	added := make(map[PrivateKey]bool)
	for _, it := range items {
		k := it.Key
		if k.Name == "" || k.Namespace == "" {
			return nil, fmt.Errorf("set private item: %w: no qualified name", ErrEmptyItem)
		}
		if ReservedPrivateNamespace(k.Namespace) {
			return nil, fmt.Errorf("set private item: %w: %q", ErrReservedNamespace, k.Namespace)
		}
		if err := checkItem(it.XML, lim.MaxItemBytes); err != nil {
			return nil, fmt.Errorf("set private item {%s}%s: %w", k.Namespace, k.Name, err)
		}
		old, exists := s.items[k]
		if exists && old == it.XML {
			continue
		}
		if !exists && !added[k] {
			added[k] = true
			if lim.MaxItems > 0 && len(s.items)+len(added) > lim.MaxItems {
				return nil, fmt.Errorf("set private item: %w: %d items", ErrPrivateFull, lim.MaxItems)
			}
		}
		out = append(out, PrivateSet{Name: k.Name, Namespace: k.Namespace, XML: it.XML})
	}
	return out, nil
}

// Apply is the private storage's fold function.
func (s PrivateStorage) Apply(p Payload) PrivateStorage {
	e, ok := p.(PrivateSet)
	if !ok {
		return s
	}
	if s.items == nil {
		s.items = make(map[PrivateKey]string)
	}
	s.items[PrivateKey{Name: e.Name, Namespace: e.Namespace}] = e.XML
	return s
}
