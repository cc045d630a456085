package domain

import (
	"errors"
	"fmt"
	"slices"

	"mellium.im/xmpp/jid"
)

// ArchiveMode is the default attribute of XEP-0313 preferences: which
// conversations are archived when a JID is on neither list.
type ArchiveMode string

// The three modes of XEP-0313 §6.
const (
	ArchiveAlways ArchiveMode = "always"
	ArchiveNever  ArchiveMode = "never"
	ArchiveRoster ArchiveMode = "roster"
)

// Valid reports whether m is one of the three modes.
func (m ArchiveMode) Valid() bool {
	return m == ArchiveAlways || m == ArchiveNever || m == ArchiveRoster
}

// ArchivePrefsSet records the user's archive preferences (XEP-0313 prefs),
// stream PrefsStream. It is a full replacement, as the prefs IQ is.
type ArchivePrefsSet struct {
	Default ArchiveMode `json:"default"`
	// Always and Never are canonical JIDs, sorted.
	Always []string `json:"always,omitempty"`
	Never  []string `json:"never,omitempty"`
}

// EventType implements Payload.
func (ArchivePrefsSet) EventType() string { return TypeArchivePrefsSet }

// EventSchemaVersion implements Payload.
func (ArchivePrefsSet) EventSchemaVersion() int { return 1 }

// ErrInvalidPrefs is wrapped by errors about malformed preferences.
var ErrInvalidPrefs = errors.New("domain: invalid archive preferences")

// ArchivePrefs is the state of one user's archive preferences, folded from
// PrefsStream.
//
// Until the user sets preferences, the default mode is the one the caller
// passed to NewArchivePrefs. verlauf promises "no chat history by default"
// (DESIGN.md), so the server's configured default is ArchiveNever unless an
// operator decides otherwise; the default is a parameter and not recorded
// in the log, so that changing the server's default applies to every user
// who never chose.
type ArchivePrefs struct {
	Default ArchiveMode
	// Always and Never are canonical JIDs, sorted.
	Always []string
	Never  []string
	// Chosen is true once the user has set preferences.
	Chosen bool
}

// NewArchivePrefs returns the preferences of a user who never set any.
// An invalid mode falls back to ArchiveNever, the privacy-preserving choice.
func NewArchivePrefs(serverDefault ArchiveMode) ArchivePrefs {
	if !serverDefault.Valid() {
		serverDefault = ArchiveNever
	}
	return ArchivePrefs{Default: serverDefault}
}

// Set decides new preferences. A JID may not be on both lists (the
// answer would be ambiguous); duplicates within a list are merged. Setting
// exactly the current preferences records nothing.
func (p ArchivePrefs) Set(def ArchiveMode, always, never []jid.JID) ([]Payload, error) {
	if !def.Valid() {
		return nil, fmt.Errorf("%w: default %q", ErrInvalidPrefs, def)
	}
	a := canonicalJIDs(always)
	n := canonicalJIDs(never)
	for _, j := range a {
		if _, found := slices.BinarySearch(n, j); found {
			return nil, fmt.Errorf("%w: %s is both always and never archived", ErrInvalidPrefs, j)
		}
	}
	if p.Chosen && p.Default == def && slices.Equal(p.Always, a) && slices.Equal(p.Never, n) {
		return nil, nil
	}
	return []Payload{ArchivePrefsSet{Default: def, Always: a, Never: n}}, nil
}

// Archives reports whether a conversation with peer is archived under
// these preferences (XEP-0313 §6): the lists win over the default, and
// "roster" archives peers that are in the user's roster. Lists match the
// peer's bare JID as well as its full JID.
func (p ArchivePrefs) Archives(peer jid.JID, inRoster bool) bool {
	full, bare := peer.String(), peer.Bare().String()
	listed := func(list []string) bool {
		_, f := slices.BinarySearch(list, full)
		_, b := slices.BinarySearch(list, bare)
		return f || b
	}
	switch {
	case listed(p.Never):
		return false
	case listed(p.Always):
		return true
	}
	switch p.Default {
	case ArchiveAlways:
		return true
	case ArchiveRoster:
		return inRoster
	default:
		return false
	}
}

// Apply is the archive preferences' fold function.
func (p ArchivePrefs) Apply(pl Payload) ArchivePrefs {
	if e, ok := pl.(ArchivePrefsSet); ok {
		p.Default = e.Default
		p.Always = slices.Clone(e.Always)
		p.Never = slices.Clone(e.Never)
		p.Chosen = true
	}
	return p
}

// canonicalJIDs returns the sorted, deduplicated string forms.
func canonicalJIDs(js []jid.JID) []string {
	if len(js) == 0 {
		return nil
	}
	out := make([]string, 0, len(js))
	for _, j := range js {
		if !isZeroJID(j) {
			out = append(out, j.String())
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil
	}
	return out
}
