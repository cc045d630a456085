package mam

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/xmppfront/stanza"
	"verlauf.im/verlauf/xmppfront/stream"
)

// prefsElement renders preferences as XEP-0441's <prefs/>. The lists are
// always present, empty or not, as the XEP's examples show them.
func prefsElement(p domain.ArchivePrefs) *stream.Element {
	el := stream.NewElement(NS, "prefs", "default", string(p.Default))
	for _, l := range []struct {
		name string
		jids []string
	}{{"always", p.Always}, {"never", p.Never}} {
		list := add(el, stream.NewElement(NS, l.name))
		for _, j := range l.jids {
			add(list, stream.NewElement(NS, "jid")).AddText(j)
		}
	}
	return el
}

// setPrefs replaces the user's preferences and answers with them as
// stored (XEP-0441).
func (s *Service) setPrefs(ctx context.Context, user jid.JID, el *stream.Element) (*stream.Element, error) {
	def := domain.ArchiveMode(el.Attr("default"))
	if !def.Valid() {
		return nil, badRequest("default must be always, never or roster, not %q", def)
	}
	always, err := bareJIDs(el.Child("always", NS))
	if err != nil {
		return nil, err
	}
	never, err := bareJIDs(el.Child("never", NS))
	if err != nil {
		return nil, err
	}
	p, err := s.cfg.Archive.SetPrefs(ctx, user, def, always, never)
	switch {
	case errors.Is(err, domain.ErrInvalidPrefs):
		return nil, stanza.Errorf(stanza.Modify, stanza.BadRequest, "a JID is on both the always and the never list")
	case err != nil:
		return nil, fmt.Errorf("mam: set prefs of %s: %w", user, err)
	}
	return prefsElement(p), nil
}

// bareJIDs parses the <jid/> children of a prefs list.
func bareJIDs(list *stream.Element) ([]jid.JID, error) {
	if list == nil {
		return nil, nil
	}
	var out []jid.JID
	for c := range list.Children() {
		if c.Name.Space != NS || c.Name.Local != "jid" {
			continue
		}
		j, err := domain.ParseJID(strings.TrimSpace(c.Text()))
		if err != nil || strings.TrimSpace(c.Text()) == "" {
			return nil, stanza.Errorf(stanza.Modify, stanza.JIDMalformed, "%q is not a JID", c.Text())
		}
		out = append(out, j)
	}
	return out, nil
}
