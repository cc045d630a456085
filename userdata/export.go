package userdata

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/xmppfront/stream"
)

// Namespaces of the XEP-0227 file.
const (
	NSPIE      = "urn:xmpp:pie:0"
	NSPIEMAM   = "urn:xmpp:pie:0#mam"
	NSPIESCRAM = "urn:xmpp:pie:0#scram"
	// NSPIEOld is the namespace of files written before XEP-0227 1.0
	// (older ejabberd).
	NSPIEOld  = "http://www.xmpp.org/extensions/xep-0227.html#ns"
	NSXI      = "http://www.w3.org/2001/XInclude"
	NSRoster  = "jabber:iq:roster"
	NSPrivate = "jabber:iq:private"
	NSPrivacy = "jabber:iq:privacy"
	NSVCard   = "vcard-temp"
	NSBlock   = "urn:xmpp:blocking"
	NSMAM     = "urn:xmpp:mam:2"
	NSForward = "urn:xmpp:forward:0"
	NSDelay   = "urn:xmpp:delay"
	// NSVerlauf qualifies the attributes verlauf adds to a MAM <result>
	// (with, dir): they make the partner and direction exact where the
	// stanza's from/to would leave them to guesswork. Other servers
	// ignore them.
	NSVerlauf = "urn:verlauf:pie:0"
)

// manifestMarker starts the XML comment that carries the manifest after
// </server-data>; the JSON Lines manifest is the last line, with kind
// "manifest".
const (
	manifestMarker     = "<!-- verlauf-manifest "
	jsonManifestMarker = `{"kind":"manifest"`
)

// countingHash is the writer the content goes through: it counts and
// hashes what the manifest covers.
type countingHash struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// snapshot is the small part of a user's data, read before anything is
// written.
type snapshot struct {
	user      jid.JID
	creds     []domain.SCRAMVerifier
	roster    []domain.RosterItem
	requests  []string
	vcard     string
	private   []domain.PrivateItem
	blocked   []string
	prefs     *domain.ArchivePrefs
	offline   [][]byte // normalised stanzas with their <delay/>
	unreadOff int
}

// Export writes everything the server holds about user to w in format,
// followed by the manifest, which it also returns. The history is read a
// page at a time and written as it is read, so memory does not grow with
// its length. The user's archive keys must be unlocked (archive.ErrLocked
// otherwise): the history and the offline queue are decrypted.
func Export(ctx context.Context, w io.Writer, deps Deps, user jid.JID, format Format, opts ExportOptions) (Manifest, error) {
	if format != XEP0227 && format != JSONLines {
		return Manifest{}, fmt.Errorf("userdata: unknown format %q", format)
	}
	user = user.Bare()
	snap, err := readSnapshot(ctx, deps, user, opts)
	if err != nil {
		return Manifest{}, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	ch := &countingHash{w: bw, h: sha256.New()}
	m := Manifest{Format: format, User: user.String(), Counts: map[string]int{}}
	var s sink
	if format == XEP0227 {
		s = &xmlSink{w: ch, user: user}
	} else {
		s = newJSONSink(ch, user)
	}
	if err := s.head(snap, m.Counts); err != nil {
		return Manifest{}, err
	}
	if err := exportHistory(ctx, deps, user, opts, s, m.Counts); err != nil {
		return Manifest{}, err
	}
	if err := s.tail(); err != nil {
		return Manifest{}, err
	}
	m.Bytes, m.SHA256 = ch.n, hex.EncodeToString(ch.h.Sum(nil))
	if !opts.DetachedManifest {
		if err := s.manifest(bw, m); err != nil {
			return Manifest{}, err
		}
	}
	if err := bw.Flush(); err != nil {
		return Manifest{}, fmt.Errorf("userdata: export: %w", err)
	}
	return m, nil
}

func rosterAgg(max int) eventstore.Aggregate[domain.Roster] {
	return eventstore.Aggregate[domain.Roster]{
		Init: domain.NewRoster(max),
		Fold: func(r domain.Roster, ev domain.Event) (domain.Roster, error) {
			return domain.Fold(r, domain.Roster.Apply, ev)
		},
	}
}

func blocklistAgg(max int) eventstore.Aggregate[domain.Blocklist] {
	return eventstore.Aggregate[domain.Blocklist]{
		Init: domain.NewBlocklist(max),
		Fold: func(b domain.Blocklist, ev domain.Event) (domain.Blocklist, error) {
			return domain.Fold(b, domain.Blocklist.Apply, ev)
		},
	}
}

var vcardAgg = eventstore.Aggregate[domain.VCard]{
	Fold: func(v domain.VCard, ev domain.Event) (domain.VCard, error) {
		return domain.Fold(v, domain.VCard.Apply, ev)
	},
}

var privateAgg = eventstore.Aggregate[domain.PrivateStorage]{
	Fold: func(p domain.PrivateStorage, ev domain.Event) (domain.PrivateStorage, error) {
		return domain.Fold(p, domain.PrivateStorage.Apply, ev)
	},
}

// privateList folds the private stream into its items: PrivateStorage
// answers lookups by key but does not list them.
var privateList = eventstore.Aggregate[map[domain.PrivateKey]string]{
	Init: nil,
	Fold: func(m map[domain.PrivateKey]string, ev domain.Event) (map[domain.PrivateKey]string, error) {
		if ev.Type != domain.TypePrivateSet {
			return m, nil
		}
		p, err := domain.Decode(ev)
		if err != nil {
			return m, err
		}
		e := p.(domain.PrivateSet)
		if m == nil {
			m = map[domain.PrivateKey]string{}
		}
		m[domain.PrivateKey{Name: e.Name, Namespace: e.Namespace}] = e.XML
		return m, nil
	},
}

func readSnapshot(ctx context.Context, deps Deps, user jid.JID, opts ExportOptions) (snapshot, error) {
	s := snapshot{user: user}
	ok, err := deps.Accounts.Exists(ctx, user)
	if err != nil {
		return s, err
	}
	if !ok {
		return s, fmt.Errorf("userdata: export %s: no such account", user)
	}
	if opts.IncludeCredentials {
		for _, h := range []string{domain.HashSHA1, domain.HashSHA256} {
			v, err := deps.Accounts.Credentials(ctx, user, h)
			if err == nil {
				s.creds = append(s.creds, v)
			}
		}
	}
	r, err := eventstore.Load(ctx, deps.Store, domain.RosterStream(user), rosterAgg(0))
	if err != nil {
		return s, err
	}
	s.roster, s.requests = r.State.Items(), r.State.PendingRequests()
	v, err := eventstore.Load(ctx, deps.Store, domain.VCardStream(user), vcardAgg)
	if err != nil {
		return s, err
	}
	s.vcard = v.State.XML
	p, err := eventstore.Load(ctx, deps.Store, domain.PrivateStream(user), privateList)
	if err != nil {
		return s, err
	}
	for k, x := range p.State {
		s.private = append(s.private, domain.PrivateItem{Key: k, XML: x})
	}
	slices.SortFunc(s.private, func(a, b domain.PrivateItem) int {
		return strings.Compare(a.Key.Namespace+" "+a.Key.Name, b.Key.Namespace+" "+b.Key.Name)
	})
	b, err := eventstore.Load(ctx, deps.Store, domain.BlocklistStream(user), blocklistAgg(0))
	if err != nil {
		return s, err
	}
	s.blocked = b.State.JIDs()
	prefs, err := deps.Archive.Prefs(ctx, user)
	if err != nil {
		return s, err
	}
	if prefs.Chosen {
		s.prefs = &prefs
	}
	queued, err := deps.Archive.Drain(ctx, user)
	if err != nil && !errors.Is(err, archive.ErrLocked) {
		return s, err
	} else if err != nil {
		return s, fmt.Errorf("userdata: export %s: offline queue: %w", user, err)
	}
	for _, q := range queued {
		if q.Err != nil {
			s.unreadOff++
			continue
		}
		st, err := offlineStanza(q)
		if err != nil {
			s.unreadOff++
			continue
		}
		s.offline = append(s.offline, st)
	}
	return s, nil
}

// offlineStanza returns a queued message as a standalone jabber:client
// stanza with its XEP-0203 <delay/>; a message queued by an import keeps
// the delay it came with.
func offlineStanza(q archive.QueuedMessage) ([]byte, error) {
	el, err := parseStanza(q.Stanza, 1<<30)
	if err != nil {
		return nil, err
	}
	if el.Child("delay", NSDelay) == nil {
		el.AddChild(stream.NewElement(NSDelay, "delay", "stamp", q.At.UTC().Format(stampLayout)))
	}
	return el.Append(nil, ""), nil
}

// parseStanza reads one stored stanza (as the archive keeps it: in
// jabber:client, usually without its own xmlns).
func parseStanza(raw []byte, max int) (*stream.Element, error) {
	x := newXReader("", io.MultiReader(strings.NewReader("<r xmlns='jabber:client'>"), bytes.NewReader(raw), strings.NewReader("</r>")), Limits{MaxElementBytes: max + 64}.withDefaults())
	if _, err := x.token(); err != nil {
		return nil, err
	}
	for {
		t, err := x.token()
		if err != nil {
			return nil, err
		}
		if st, ok := t.(xml.StartElement); ok {
			return x.capture(st, max)
		}
	}
}

// standalone returns a stored stanza with an xmlns='jabber:client' on its
// top element if it has none, so it can be embedded anywhere. It looks
// only at the start tag, which is much cheaper than parsing the stanza.
func standalone(raw []byte) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(raw))
	d.Strict = true
	for {
		t, err := d.RawToken()
		if err != nil {
			return nil, fmt.Errorf("stored stanza: %w", err)
		}
		st, ok := t.(xml.StartElement)
		if !ok {
			continue
		}
		for _, a := range st.Attr {
			if a.Name.Space == "" && a.Name.Local == "xmlns" {
				return raw, nil
			}
		}
		i := bytes.IndexByte(raw, '<')
		if i < 0 || st.Name.Space != "" {
			return nil, errors.New("stored stanza: unexpected start")
		}
		at := i + 1 + len(st.Name.Local)
		out := make([]byte, 0, len(raw)+24)
		out = append(out, raw[:at]...)
		out = append(out, " xmlns='jabber:client'"...)
		return append(out, raw[at:]...), nil
	}
}

func exportHistory(ctx context.Context, deps Deps, user jid.JID, opts ExportOptions, s sink, counts map[string]int) error {
	q := archive.Query{Max: opts.PageSize}
	if q.Max <= 0 {
		q.Max = archive.DefaultMaxPageSize
	}
	if err := s.beginHistory(); err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := deps.Archive.Query(ctx, user, q)
		if err != nil {
			return fmt.Errorf("userdata: export %s: history: %w", user, err)
		}
		for _, m := range page.Messages {
			if m.Err != nil {
				counts["message_unreadable"]++
				continue
			}
			st, err := standalone(m.Stanza)
			if err != nil {
				counts["message_unreadable"]++
				continue
			}
			if err := s.message(m, st); err != nil {
				return err
			}
			counts[KindMessage]++
		}
		if opts.Progress != nil {
			opts.Progress(counts[KindMessage])
		}
		if page.Complete || len(page.Messages) == 0 {
			break
		}
		q.AfterID = page.Last
	}
	return s.endHistory()
}

// sink is one export format.
type sink interface {
	head(s snapshot, counts map[string]int) error
	beginHistory() error
	message(m archive.Message, stanza []byte) error
	endHistory() error
	tail() error
	// manifest writes the trailer straight to w, outside the hash.
	manifest(w io.Writer, m Manifest) error
}

// xmlSink writes XEP-0227.
type xmlSink struct {
	w    *countingHash
	user jid.JID
	buf  []byte
	err  error
}

func (x *xmlSink) write(b []byte) {
	if x.err == nil {
		_, x.err = x.w.Write(b)
	}
}

func (x *xmlSink) el(e *stream.Element) {
	x.buf = e.Append(x.buf[:0], NSPIE)
	x.write(x.buf)
	x.write([]byte("\n"))
}

func escAttr(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&apos;")
}

func (x *xmlSink) head(s snapshot, counts map[string]int) error {
	x.write([]byte("<?xml version='1.0' encoding='UTF-8'?>\n"))
	fmt.Fprintf(x.w, "<server-data xmlns='%s'>\n<host jid='%s'>\n<user name='%s'>\n", NSPIE, escAttr(s.user.Domainpart()), escAttr(s.user.Localpart()))
	counts[KindAccount] = 1
	for _, v := range s.creds {
		c := stream.NewElement(NSPIESCRAM, "scram-credentials", "mechanism", "SCRAM-"+v.Hash)
		c.AddChild(stream.NewElement(NSPIESCRAM, "server-key").AddText(base64.StdEncoding.EncodeToString(v.ServerKey)))
		c.AddChild(stream.NewElement(NSPIESCRAM, "stored-key").AddText(base64.StdEncoding.EncodeToString(v.StoredKey)))
		c.AddChild(stream.NewElement(NSPIESCRAM, "iter-count").AddText(strconv.Itoa(v.Iterations)))
		c.AddChild(stream.NewElement(NSPIESCRAM, "salt").AddText(base64.StdEncoding.EncodeToString(v.Salt)))
		x.el(c)
	}
	if len(s.roster) > 0 {
		q := stream.NewElement(NSRoster, "query")
		for _, it := range s.roster {
			item := stream.NewElement(NSRoster, "item", "jid", it.JID)
			if it.Name != "" {
				item.SetAttr("name", it.Name)
			}
			item.SetAttr("subscription", string(it.Subscription))
			if it.Ask {
				item.SetAttr("ask", "subscribe")
			}
			if it.Approved {
				item.SetAttr("approved", "true")
			}
			for _, g := range it.Groups {
				item.AddChild(stream.NewElement(NSRoster, "group").AddText(g))
			}
			q.AddChild(item)
		}
		x.el(q)
		counts[KindRoster] = len(s.roster)
	}
	for _, r := range s.requests {
		x.el(stream.NewElement(stream.NSClient, "presence", "from", r, "to", s.user.String(), "type", "subscribe"))
		counts[KindRosterRequest]++
	}
	if s.vcard != "" {
		x.write([]byte(s.vcard + "\n"))
		counts[KindVCard] = 1
	}
	if len(s.private) > 0 {
		x.write([]byte("<query xmlns='" + NSPrivate + "'>"))
		for _, it := range s.private {
			x.write([]byte(it.XML))
		}
		x.write([]byte("</query>\n"))
		counts[KindPrivate] = len(s.private)
	}
	if len(s.blocked) > 0 {
		b := stream.NewElement(NSBlock, "blocklist")
		for _, j := range s.blocked {
			b.AddChild(stream.NewElement(NSBlock, "item", "jid", j))
		}
		x.el(b)
		counts[KindBlocklist] = len(s.blocked)
	}
	if s.prefs != nil {
		x.el(prefsElement(*s.prefs))
		counts[KindPrefs] = 1
	}
	if len(s.offline) > 0 {
		x.write([]byte("<offline-messages>\n"))
		for _, st := range s.offline {
			x.write(st)
			x.write([]byte("\n"))
		}
		x.write([]byte("</offline-messages>\n"))
		counts[KindOffline] = len(s.offline)
	}
	if s.unreadOff > 0 {
		counts["offline_unreadable"] = s.unreadOff
	}
	return x.err
}

func prefsElement(p domain.ArchivePrefs) *stream.Element {
	e := stream.NewElement(NSMAM, "prefs", "default", string(p.Default))
	for _, list := range []struct {
		name string
		jids []string
	}{{"always", p.Always}, {"never", p.Never}} {
		l := stream.NewElement(NSMAM, list.name)
		for _, j := range list.jids {
			l.AddChild(stream.NewElement(NSMAM, "jid").AddText(j))
		}
		e.AddChild(l)
	}
	return e
}

func (x *xmlSink) beginHistory() error {
	x.write([]byte("<archive xmlns='" + NSPIEMAM + "'>\n"))
	return x.err
}

func (x *xmlSink) message(m archive.Message, stanza []byte) error {
	b := x.buf[:0]
	b = append(b, "<result xmlns='"+NSMAM+"' xmlns:v='"+NSVerlauf+"' id='"...)
	b = append(b, m.ID.String()...)
	b = append(b, "' v:with='"...)
	b = append(b, escAttr(m.Partner)...)
	b = append(b, "' v:dir='"...)
	b = append(b, m.Direction.String()...)
	b = append(b, "'><forwarded xmlns='"+NSForward+"'><delay xmlns='"+NSDelay+"' stamp='"...)
	b = m.At.UTC().AppendFormat(b, stampLayout)
	b = append(b, "'/>"...)
	b = append(b, stanza...)
	b = append(b, "</forwarded></result>\n"...)
	x.buf = b
	x.write(b)
	return x.err
}

func (x *xmlSink) endHistory() error {
	x.write([]byte("</archive>\n"))
	return x.err
}

func (x *xmlSink) tail() error {
	x.write([]byte("</user>\n</host>\n</server-data>\n"))
	return x.err
}

func (x *xmlSink) manifest(w io.Writer, m Manifest) error {
	j, err := json.Marshal(m)
	if err != nil {
		return err
	}
	// "--" may not appear in a comment; JSON allows \u002d in strings,
	// and outside strings it has no "--".
	s := strings.ReplaceAll(string(j), "-", `\u002d`)
	_, err = io.WriteString(w, manifestMarker+s+" -->\n")
	return err
}

// jsonSink writes JSON Lines.
type jsonSink struct {
	w    *countingHash
	enc  *json.Encoder
	user jid.JID
}

func newJSONSink(w *countingHash, user jid.JID) *jsonSink {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &jsonSink{w: w, enc: enc, user: user}
}

// Lines of the JSON Lines format.
type (
	jsonAccount struct {
		Kind        string                 `json:"kind"`
		JID         string                 `json:"jid"`
		Credentials []domain.SCRAMVerifier `json:"credentials,omitempty"`
	}
	jsonRoster struct {
		Kind string            `json:"kind"`
		Item domain.RosterItem `json:"item"`
	}
	jsonJID struct {
		Kind string `json:"kind"`
		JID  string `json:"jid"`
	}
	jsonXML struct {
		Kind string `json:"kind"`
		XML  string `json:"xml"`
	}
	jsonPrefs struct {
		Kind    string   `json:"kind"`
		Default string   `json:"default"`
		Always  []string `json:"always"`
		Never   []string `json:"never"`
	}
	jsonOffline struct {
		Kind   string `json:"kind"`
		Stanza string `json:"stanza"`
	}
	jsonMessage struct {
		Kind      string `json:"kind"`
		ID        string `json:"id"`
		At        string `json:"at"`
		With      string `json:"with"`
		Direction string `json:"direction"`
		Stanza    string `json:"stanza"`
	}
	jsonManifest struct {
		Kind string `json:"kind"`
		Manifest
	}
)

func (j *jsonSink) head(s snapshot, counts map[string]int) error {
	lines := []any{jsonAccount{Kind: KindAccount, JID: s.user.String(), Credentials: s.creds}}
	counts[KindAccount] = 1
	for _, it := range s.roster {
		lines = append(lines, jsonRoster{Kind: KindRoster, Item: it})
		counts[KindRoster]++
	}
	for _, r := range s.requests {
		lines = append(lines, jsonJID{Kind: KindRosterRequest, JID: r})
		counts[KindRosterRequest]++
	}
	if s.vcard != "" {
		lines = append(lines, jsonXML{Kind: KindVCard, XML: s.vcard})
		counts[KindVCard] = 1
	}
	for _, it := range s.private {
		lines = append(lines, jsonXML{Kind: KindPrivate, XML: it.XML})
		counts[KindPrivate]++
	}
	for _, b := range s.blocked {
		lines = append(lines, jsonJID{Kind: KindBlocklist, JID: b})
		counts[KindBlocklist]++
	}
	if p := s.prefs; p != nil {
		lines = append(lines, jsonPrefs{Kind: KindPrefs, Default: string(p.Default), Always: p.Always, Never: p.Never})
		counts[KindPrefs] = 1
	}
	for _, st := range s.offline {
		lines = append(lines, jsonOffline{Kind: KindOffline, Stanza: string(st)})
		counts[KindOffline]++
	}
	if s.unreadOff > 0 {
		counts["offline_unreadable"] = s.unreadOff
	}
	for _, l := range lines {
		if err := j.enc.Encode(l); err != nil {
			return fmt.Errorf("userdata: export: %w", err)
		}
	}
	return nil
}

func (j *jsonSink) beginHistory() error { return nil }

func (j *jsonSink) message(m archive.Message, stanza []byte) error {
	return j.enc.Encode(jsonMessage{
		Kind: KindMessage, ID: m.ID.String(), At: m.At.UTC().Format(stampLayout),
		With: m.Partner, Direction: m.Direction.String(), Stanza: string(stanza),
	})
}

func (j *jsonSink) endHistory() error { return nil }
func (j *jsonSink) tail() error       { return nil }

func (j *jsonSink) manifest(w io.Writer, m Manifest) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(jsonManifest{Kind: "manifest", Manifest: m})
}
