package userdata

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"mellium.im/xmpp/jid"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/eventstore"
	"verlauf.im/verlauf/xmppfront/stream"
)

// userData is one user of an import file, validated.
type userData struct {
	jid       jid.JID
	line      int
	password  string
	verifiers []domain.SCRAMVerifier
	roster    []domain.RosterItem
	requests  []string
	vcard     string
	private   []domain.PrivateItem
	blocked   []jid.JID
	prefs     *prefsData
	offline   [][]byte
	history   *spool
	skipped   map[string]int
	// lastMilli and seq order the ids drawn for messages whose id is not
	// a UUIDv7 (other servers' archives) in file order.
	lastMilli int64
	seq       uint16
}

type prefsData struct {
	def           domain.ArchiveMode
	always, never []jid.JID
}

type importer struct {
	ctx   context.Context
	deps  Deps
	opts  ImportOptions
	users []*userData
	seen  map[string]bool
}

// Import reads an XEP-0227 file (as verlauf, Prosody's
// mod_storage_xep0227 or ejabberd's export_piefxis write it) and imports
// every user in it. The whole file is read and validated first; a
// malformed file is refused with a *FileError naming the element and the
// line, and then nothing has been written. Users that exist are refused
// (ErrExists) unless opts.MergeExisting. See the package documentation
// for credentials and keys.
func Import(ctx context.Context, r io.Reader, deps Deps, opts ImportOptions) (Report, error) {
	deps = deps.withDefaults()
	opts.Limits = opts.Limits.withDefaults()
	im := &importer{ctx: ctx, deps: deps, opts: opts, seen: map[string]bool{}}
	defer func() {
		for _, u := range im.users {
			if u.history != nil {
				u.history.close()
			}
		}
	}()
	if err := im.parseFile("", r, 0); err != nil {
		return Report{}, err
	}
	if opts.Password != "" && len(im.users) != 1 {
		return Report{}, fmt.Errorf("%w: a password is for a file with one user, this one has %d", ErrMalformed, len(im.users))
	}
	creates := make([]bool, len(im.users))
	for i, u := range im.users {
		c, err := im.preflight(u)
		if err != nil {
			return Report{}, err
		}
		creates[i] = c
	}
	var rep Report
	for i, u := range im.users {
		ur, err := im.write(u, creates[i])
		rep.Users = append(rep.Users, ur)
		if err != nil {
			return rep, fmt.Errorf("userdata: import %s: %w", u.jid, err)
		}
	}
	return rep, nil
}

// parseFile reads one file: <server-data> with hosts (or includes), or a
// <host> as root (a file that ejabberd's main file includes).
func (im *importer) parseFile(name string, r io.Reader, depth int) error {
	x := newXReader(name, r, im.opts.Limits)
	t, err := x.token()
	for err == nil {
		if c, ok := t.(xml.CharData); ok && space(c) {
			t, err = x.token()
			continue
		}
		break
	}
	if err != nil {
		return err
	}
	root, ok := t.(xml.StartElement)
	if !ok {
		return x.failf("text before the root element")
	}
	switch {
	case root.Name.Local == "server-data" && (root.Name.Space == NSPIE || root.Name.Space == NSPIEOld):
		if err := im.children(x, func(st xml.StartElement) error {
			switch {
			case st.Name.Space == root.Name.Space && st.Name.Local == "host":
				return im.parseHost(x, st)
			case st.Name.Space == NSXI && st.Name.Local == "include":
				return im.include(x, st, depth)
			}
			return x.failf("unexpected element in <server-data>")
		}); err != nil {
			return err
		}
	case root.Name.Local == "host" && (root.Name.Space == NSPIE || root.Name.Space == NSPIEOld) && depth > 0:
		if err := im.parseHost(x, root); err != nil {
			return err
		}
	default:
		return x.failf("not an XEP-0227 file: the root is not <server-data xmlns='%s'>", NSPIE)
	}
	for {
		t, err := x.token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if c, ok := t.(xml.CharData); !ok || !space(c) {
			return x.failf("content after the root element")
		}
	}
}

// children calls fn for each child element of the element just opened,
// up to its end; text other than whitespace is refused.
func (im *importer) children(x *xreader, fn func(xml.StartElement) error) error {
	for {
		t, err := x.token()
		if err != nil {
			return err
		}
		switch t := t.(type) {
		case xml.StartElement:
			if err := fn(t); err != nil {
				return err
			}
		case xml.EndElement:
			return nil
		case xml.CharData:
			if !space(t) {
				return x.failf("unexpected text")
			}
		}
	}
}

func (im *importer) include(x *xreader, st xml.StartElement, depth int) error {
	href, _ := attr(st, "href")
	switch {
	case im.opts.Include == nil:
		return x.failf("includes are not enabled for this import")
	case depth >= im.opts.Limits.MaxIncludeDepth:
		return x.failf("includes nested deeper than %d", im.opts.Limits.MaxIncludeDepth)
	case href == "":
		return x.failf("include without href")
	}
	if p, _ := attr(st, "parse"); p != "" && p != "xml" {
		return x.failf("include with parse=%q", p)
	}
	f, err := im.opts.Include(href)
	if err != nil {
		return x.fail(fmt.Errorf("include %q: %w", href, err))
	}
	defer f.Close()
	if err := im.parseFile(href, f, depth+1); err != nil {
		return err
	}
	return x.skip()
}

func (im *importer) parseHost(x *xreader, st xml.StartElement) error {
	host, _ := attr(st, "jid")
	hj, err := jid.Parse(host)
	if err != nil || hj.Localpart() != "" || hj.Resourcepart() != "" {
		return x.failf("host jid %q is not a domain", host)
	}
	if im.opts.Domain != "" && hj.Domainpart() != im.opts.Domain {
		return x.failf("host %s is not this server's domain %s", hj.Domainpart(), im.opts.Domain)
	}
	return im.children(x, func(c xml.StartElement) error {
		if c.Name.Space == st.Name.Space && c.Name.Local == "user" {
			return im.parseUser(x, c, hj.Domainpart())
		}
		return x.failf("unexpected element in <host>")
	})
}

func (im *importer) parseUser(x *xreader, st xml.StartElement, host string) error {
	name, _ := attr(st, "name")
	u := &userData{line: x.line(), skipped: map[string]int{}}
	j, err := domain.AccountJID(name, host)
	if err != nil {
		return x.failf("user name %q: %v", name, err)
	}
	if err := im.deps.Accounts.CheckUsername(j); err != nil {
		return x.fail(err)
	}
	if im.seen[j.String()] {
		return x.failf("user %s appears twice", j)
	}
	im.seen[j.String()] = true
	u.jid = j
	if pw, ok := attr(st, "password"); ok && pw != "" {
		if rest, ok := strings.CutPrefix(pw, "scram:"); ok {
			v, err := ejabberdSCRAM(rest)
			if err != nil {
				return x.failf("password attribute: %v", err)
			}
			u.verifiers = append(u.verifiers, v)
		} else {
			if err := im.deps.Accounts.CheckPassword(pw); err != nil {
				return x.fail(err)
			}
			u.password = pw
		}
	}
	im.users = append(im.users, u)
	return im.children(x, func(c xml.StartElement) error {
		max := im.opts.Limits.MaxElementBytes
		switch [2]string{c.Name.Space, c.Name.Local} {
		case [2]string{NSPIEMAM, "archive"}:
			return im.parseArchive(x, u)
		case [2]string{st.Name.Space, "offline-messages"}, [2]string{"", "offline-messages"}:
			return im.parseOffline(x, u)
		}
		el, err := x.capture(c, max)
		if err != nil {
			return err
		}
		line := x.line()
		bad := func(format string, args ...any) error {
			return &FileError{File: x.file, Element: nameOf(c.Name), Line: line, Err: fmt.Errorf(format, args...)}
		}
		switch [2]string{c.Name.Space, c.Name.Local} {
		case [2]string{NSPIESCRAM, "scram-credentials"}:
			v, ok, err := scramCredentials(el)
			if err != nil {
				return bad("%v", err)
			}
			if ok {
				if slices.ContainsFunc(u.verifiers, func(o domain.SCRAMVerifier) bool { return o.Hash == v.Hash }) {
					return bad("two verifiers for %s", v.Hash)
				}
				u.verifiers = append(u.verifiers, v)
			} else {
				u.skipped["scram-credentials"]++
			}
		case [2]string{NSRoster, "query"}:
			if err := im.roster(u, el); err != nil {
				return bad("%v", err)
			}
		case [2]string{stream.NSClient, "presence"}:
			if el.Attr("type") != "subscribe" {
				u.skipped["presence"]++
				return nil
			}
			from, err := domain.ParseBareJID(el.Attr("from"))
			if err != nil {
				return bad("subscription request from %q: %v", el.Attr("from"), err)
			}
			if !slices.Contains(u.requests, from.String()) {
				u.requests = append(u.requests, from.String())
			}
		case [2]string{NSVCard, "vCard"}:
			u.vcard = el.String()
			if _, err := (domain.VCard{}).Set(u.vcard, im.deps.MaxVCardBytes); err != nil {
				return bad("%v", err)
			}
		case [2]string{NSPrivate, "query"}:
			for c := range el.Children() {
				u.private = append(u.private, domain.PrivateItem{Key: domain.PrivateKey{Name: c.Name.Local, Namespace: c.Name.Space}, XML: c.String()})
			}
			if len(u.private) > 0 {
				if _, err := (domain.PrivateStorage{}).Set(im.deps.Private, u.private...); err != nil {
					return bad("%v", err)
				}
			}
		case [2]string{NSBlock, "blocklist"}:
			for it := range el.Children() {
				if err := u.block(it.Attr("jid")); err != nil {
					return bad("%v", err)
				}
			}
		case [2]string{NSPrivacy, "query"}:
			if err := u.privacy(el); err != nil {
				return bad("%v", err)
			}
		case [2]string{NSMAM, "prefs"}:
			p, err := parsePrefs(el)
			if err != nil {
				return bad("%v", err)
			}
			u.prefs = p
		default:
			u.skipped[c.Name.Local]++
		}
		return nil
	})
}

func (u *userData) block(s string) error {
	j, err := jid.Parse(s)
	if err != nil {
		return fmt.Errorf("blocked jid %q: %w", s, err)
	}
	u.blocked = append(u.blocked, j)
	return nil
}

// privacy takes the block list out of XEP-0016 privacy lists, which is
// how ejabberd keeps XEP-0191 blocking: the items of the default (else the
// active) list that deny a JID everything.
func (u *userData) privacy(el *stream.Element) error {
	want := ""
	if d := el.Child("default", NSPrivacy); d != nil {
		want = d.Attr("name")
	} else if a := el.Child("active", NSPrivacy); a != nil {
		want = a.Attr("name")
	}
	for l := range el.Children() {
		if l.Name.Local != "list" {
			continue
		}
		if want != "" && l.Attr("name") != want {
			u.skipped["privacy-list"]++
			continue
		}
		for it := range l.Children() {
			if it.Attr("type") == "jid" && it.Attr("action") == "deny" && len(it.Nodes) == 0 {
				if err := u.block(it.Attr("value")); err != nil {
					return err
				}
			} else {
				u.skipped["privacy-item"]++
			}
		}
	}
	return nil
}

func parsePrefs(el *stream.Element) (*prefsData, error) {
	p := &prefsData{def: domain.ArchiveMode(el.Attr("default"))}
	if !p.def.Valid() {
		return nil, fmt.Errorf("default %q", p.def)
	}
	for list, dst := range map[string]*[]jid.JID{"always": &p.always, "never": &p.never} {
		l := el.Child(list, NSMAM)
		if l == nil {
			continue
		}
		for j := range l.Children() {
			v, err := jid.Parse(j.Text())
			if err != nil {
				return nil, fmt.Errorf("%s jid %q: %w", list, j.Text(), err)
			}
			*dst = append(*dst, v)
		}
	}
	if _, err := domain.NewArchivePrefs(domain.ArchiveNever).Set(p.def, p.always, p.never); err != nil {
		return nil, err
	}
	return p, nil
}

func (im *importer) roster(u *userData, q *stream.Element) error {
	seen := map[string]bool{}
	for it := range q.Children() {
		if it.Name.Local != "item" || it.Name.Space != NSRoster {
			continue
		}
		j, err := jid.Parse(it.Attr("jid"))
		if err != nil || j.Resourcepart() != "" {
			return fmt.Errorf("roster item jid %q is not a bare JID", it.Attr("jid"))
		}
		item := domain.RosterItem{JID: j.String(), Name: it.Attr("name"), Subscription: domain.Subscription(it.Attr("subscription"))}
		switch item.Subscription {
		case "":
			item.Subscription = domain.SubscriptionNone
		case domain.SubscriptionNone, domain.SubscriptionTo, domain.SubscriptionFrom, domain.SubscriptionBoth:
		default:
			return fmt.Errorf("roster item %s: subscription %q", j, item.Subscription)
		}
		switch it.Attr("ask") {
		case "":
		case "subscribe":
			item.Ask = true
		default:
			// ask='unsubscribe' is an old draft's state with no meaning
			// in RFC 6121; nothing pends.
		}
		item.Approved = it.Attr("approved") == "true" || it.Attr("approved") == "1"
		for g := range it.Children() {
			if g.Name.Local == "group" && !slices.Contains(item.Groups, g.Text()) && g.Text() != "" {
				item.Groups = append(item.Groups, g.Text())
			}
		}
		if len(item.Name) > domain.MaxRosterTextLen || slices.ContainsFunc(item.Groups, func(g string) bool { return len(g) > domain.MaxRosterTextLen }) {
			return fmt.Errorf("roster item %s: name or group longer than %d bytes", j, domain.MaxRosterTextLen)
		}
		if seen[item.JID] {
			return fmt.Errorf("roster item %s twice", j)
		}
		seen[item.JID] = true
		u.roster = append(u.roster, item)
	}
	if len(u.roster) > im.deps.MaxRosterItems {
		return fmt.Errorf("%d roster items, at most %d", len(u.roster), im.deps.MaxRosterItems)
	}
	return nil
}

// scramCredentials reads XEP-0227's <scram-credentials/>; ok is false for
// a mechanism verlauf does not keep (SCRAM-SHA-512 …).
func scramCredentials(el *stream.Element) (domain.SCRAMVerifier, bool, error) {
	var v domain.SCRAMVerifier
	switch el.Attr("mechanism") {
	case "SCRAM-SHA-1":
		v.Hash = domain.HashSHA1
	case "SCRAM-SHA-256":
		v.Hash = domain.HashSHA256
	default:
		return v, false, nil
	}
	text := func(n string) string {
		if c := el.Child(n, NSPIESCRAM); c != nil {
			return strings.TrimSpace(c.Text())
		}
		return ""
	}
	var err error
	if v.ServerKey, err = base64.StdEncoding.DecodeString(text("server-key")); err != nil {
		return v, false, fmt.Errorf("server-key: %w", err)
	}
	if v.StoredKey, err = base64.StdEncoding.DecodeString(text("stored-key")); err != nil {
		return v, false, fmt.Errorf("stored-key: %w", err)
	}
	if v.Salt, err = base64.StdEncoding.DecodeString(text("salt")); err != nil {
		return v, false, fmt.Errorf("salt: %w", err)
	}
	if v.Iterations, err = strconv.Atoi(text("iter-count")); err != nil {
		return v, false, fmt.Errorf("iter-count: %w", err)
	}
	if v.Validate() != nil {
		if w, ok := doubleEncoded(v); ok {
			v = w
		}
	}
	return v, true, v.Validate()
}

// doubleEncoded undoes ejabberd's export of <scram-credentials> (seen
// with 23.01's export_piefxis): it keeps the keys and the salt base64
// encoded in its database and encodes them once more for the file, so
// each element holds base64 of base64. Only when both keys decode a
// second time to the hash's size is the verifier read that way; the salt
// is then decoded a second time too (it went through the same path).
func doubleEncoded(v domain.SCRAMVerifier) (domain.SCRAMVerifier, bool) {
	w := v
	var err error
	if w.StoredKey, err = base64.StdEncoding.DecodeString(string(v.StoredKey)); err != nil {
		return v, false
	}
	if w.ServerKey, err = base64.StdEncoding.DecodeString(string(v.ServerKey)); err != nil {
		return v, false
	}
	if w.Salt, err = base64.StdEncoding.DecodeString(string(v.Salt)); err != nil || len(w.Salt) == 0 {
		return v, false
	}
	return w, w.Validate() == nil
}

// ejabberdSCRAM reads ejabberd's password='scram:…': StoredKey, ServerKey,
// Salt (base64) and the iteration count, separated by commas (SHA-1), or
// the same after a hash name ("sha256:…") in newer versions.
func ejabberdSCRAM(s string) (domain.SCRAMVerifier, error) {
	v := domain.SCRAMVerifier{Hash: domain.HashSHA1}
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ':' })
	if len(fields) == 5 {
		switch strings.ToLower(fields[0]) {
		case "sha", "sha1", "sha-1":
		case "sha256", "sha-256":
			v.Hash = domain.HashSHA256
		default:
			return v, fmt.Errorf("unsupported SCRAM hash %q", fields[0])
		}
		fields = fields[1:]
	}
	if len(fields) != 4 {
		return v, errors.New("not StoredKey,ServerKey,Salt,IterationCount")
	}
	var err error
	if v.StoredKey, err = base64.StdEncoding.DecodeString(fields[0]); err != nil {
		return v, err
	}
	if v.ServerKey, err = base64.StdEncoding.DecodeString(fields[1]); err != nil {
		return v, err
	}
	if v.Salt, err = base64.StdEncoding.DecodeString(fields[2]); err != nil {
		return v, err
	}
	if v.Iterations, err = strconv.Atoi(fields[3]); err != nil {
		return v, err
	}
	return v, v.Validate()
}

// parseOffline reads <offline-messages>: message stanzas, each bounded by
// MaxStanzaBytes, kept with their <delay/>.
func (im *importer) parseOffline(x *xreader, u *userData) error {
	return im.children(x, func(c xml.StartElement) error {
		el, err := x.capture(c, im.opts.Limits.MaxStanzaBytes)
		if err != nil {
			return err
		}
		if c.Name.Space != stream.NSClient && c.Name.Space != stream.NSServer || c.Name.Local != "message" {
			return x.failf("offline message is <%s>, not a message", nameOf(c.Name))
		}
		el.Name.Space = stream.NSClient
		u.offline = append(u.offline, el.AppendStanza(nil, stream.NSClient))
		return nil
	})
}

// parseArchive reads <archive xmlns='urn:xmpp:pie:0#mam'>: MAM results,
// each bounded by MaxStanzaBytes, validated and spooled.
func (im *importer) parseArchive(x *xreader, u *userData) error {
	if u.history == nil {
		sp, err := newSpool(im.opts.SpoolDir)
		if err != nil {
			return err
		}
		u.history = sp
	}
	return im.children(x, func(c xml.StartElement) error {
		el, err := x.capture(c, im.opts.Limits.MaxStanzaBytes)
		if err != nil {
			return err
		}
		if c.Name.Space != NSMAM || c.Name.Local != "result" {
			return x.failf("archive item is <%s>, not a MAM result", nameOf(c.Name))
		}
		e, err := u.result(el)
		if err != nil {
			return x.fail(err)
		}
		return u.history.add(e)
	})
}

func (u *userData) result(el *stream.Element) (spoolEntry, error) {
	var e spoolEntry
	fwd := el.Child("forwarded", NSForward)
	if fwd == nil {
		return e, errors.New("result without <forwarded/>")
	}
	d := fwd.Child("delay", NSDelay)
	if d == nil {
		return e, errors.New("result without <delay/>")
	}
	at, err := time.Parse(time.RFC3339Nano, d.Attr("stamp"))
	if err != nil || at.Year() < 1900 || at.Year() > 2200 {
		return e, fmt.Errorf("delay stamp %q", d.Attr("stamp"))
	}
	e.at = at.UTC()
	msg := fwd.Child("message", stream.NSClient)
	if msg == nil {
		return e, errors.New("result without a jabber:client <message/>")
	}
	me := u.jid.String()
	bareOf := func(s string) string {
		if s == "" {
			return ""
		}
		j, err := jid.Parse(s)
		if err != nil {
			return "\x00"
		}
		return j.Bare().String()
	}
	from, to := bareOf(msg.Attr("from")), bareOf(msg.Attr("to"))
	switch el.AttrNS(NSVerlauf, "dir") {
	case "in":
		e.dir = domain.DirectionIn
	case "out":
		e.dir = domain.DirectionOut
	case "":
		if from == me {
			e.dir = domain.DirectionOut
		} else {
			e.dir = domain.DirectionIn
		}
	default:
		return e, fmt.Errorf("direction %q", el.AttrNS(NSVerlauf, "dir"))
	}
	partner := el.AttrNS(NSVerlauf, "with")
	if partner == "" {
		if e.dir == domain.DirectionOut {
			partner = to
		} else {
			partner = from
		}
	}
	pj, err := domain.ParseBareJID(partner)
	if err != nil {
		return e, fmt.Errorf("no conversation partner in from/to (%q): %w", partner, err)
	}
	e.partner = pj.String()
	if id, err := uuid.Parse(el.Attr("id")); err == nil && id.Version() == 7 {
		e.id = id
	} else {
		e.id = u.drawID(e.at)
	}
	e.stanza = msg.AppendStanza(nil, stream.NSClient)
	return e, nil
}

// drawID makes a UUIDv7 whose time is at: the archive orders and filters
// by the time in the id, so a message from another server's archive must
// carry its own time, not the import's. Messages within one millisecond
// keep the file's order through a counter in rand_a.
func (u *userData) drawID(at time.Time) uuid.UUID {
	var id uuid.UUID
	ms := at.UnixMilli()
	if ms == u.lastMilli {
		u.seq++
	} else {
		u.lastMilli, u.seq = ms, 0
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(ms))
	copy(id[0:6], b[2:])
	id[6] = 0x70 | byte(u.seq>>8&0x0f)
	id[7] = byte(u.seq)
	rand.Read(id[8:])
	id[8] = id[8]&0x3f | 0x80
	return id
}

// preflight checks what the store says before anything is written and
// returns whether the account must be created.
func (im *importer) preflight(u *userData) (bool, error) {
	ok, err := im.deps.Accounts.Exists(im.ctx, u.jid)
	if err != nil {
		return false, err
	}
	if ok {
		if !im.opts.MergeExisting {
			return false, fmt.Errorf("%w: %s", ErrExists, u.jid)
		}
		return false, nil
	}
	switch {
	case u.password != "" || len(u.verifiers) > 0 || im.opts.Password != "":
	default:
		return false, fmt.Errorf("%w: %s (line %d)", ErrNoCredentials, u.jid, u.line)
	}
	if im.opts.Password != "" && u.password == "" && len(u.verifiers) == 0 {
		if err := im.deps.Accounts.CheckPassword(im.opts.Password); err != nil {
			return false, err
		}
	}
	if im.opts.Password != "" && len(u.verifiers) > 0 {
		if _, err := clientKeys(u.verifiers, im.opts.Password); err != nil {
			return false, err
		}
	}
	if u.password == "" && len(u.verifiers) > 0 && im.deps.Keys == nil {
		return false, errors.New("userdata: importing SCRAM verifiers needs Deps.Keys")
	}
	return true, nil
}

// clientKeys derives the ClientKey of each verifier from password, checking
// it against the verifier.
func clientKeys(vs []domain.SCRAMVerifier, password string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, v := range vs {
		ck, err := archive.ClientKeyFromPassword(v, password)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrWrongPassword, err)
		}
		var stored []byte
		if v.Hash == domain.HashSHA1 {
			s := sha1Sum(ck)
			stored = s
		} else {
			s := sha256.Sum256(ck)
			stored = s[:]
		}
		if subtle.ConstantTimeCompare(stored, v.StoredKey) != 1 {
			return nil, ErrWrongPassword
		}
		out[v.Hash] = ck
	}
	return out, nil
}

var accountAgg = eventstore.Aggregate[domain.Account]{
	Fold: func(a domain.Account, ev domain.Event) (domain.Account, error) {
		return domain.Fold(a, domain.Account.Apply, ev)
	},
}

// write records one validated user.
func (im *importer) write(u *userData, create bool) (UserReport, error) {
	ctx, d := im.ctx, im.deps
	clock := d.clock()
	rep := UserReport{JID: u.jid.String(), Created: create, Counts: map[string]int{}, Skipped: u.skipped}
	if create {
		if err := im.createAccount(u, &rep); err != nil {
			return rep, err
		}
		rep.Counts[KindAccount] = 1
	}
	if len(u.roster) > 0 || len(u.requests) > 0 {
		_, _, err := eventstore.Execute(ctx, d.Store, domain.RosterStream(u.jid), rosterAgg(d.MaxRosterItems),
			func(r domain.Roster) ([]domain.Event, error) { return rosterEvents(r, u, clock) })
		if err != nil {
			return rep, err
		}
		rep.Counts[KindRoster], rep.Counts[KindRosterRequest] = len(u.roster), len(u.requests)
	}
	if u.vcard != "" {
		_, _, err := eventstore.Execute(ctx, d.Store, domain.VCardStream(u.jid), vcardAgg,
			func(v domain.VCard) ([]domain.Event, error) {
				ps, err := v.Set(u.vcard, d.MaxVCardBytes)
				if err != nil {
					return nil, err
				}
				return domain.NewEvents(clock, ps...)
			})
		if err != nil {
			return rep, err
		}
		rep.Counts[KindVCard] = 1
	}
	if len(u.private) > 0 {
		_, _, err := eventstore.Execute(ctx, d.Store, domain.PrivateStream(u.jid), privateAgg,
			func(p domain.PrivateStorage) ([]domain.Event, error) {
				ps, err := p.Set(d.Private, u.private...)
				if err != nil {
					return nil, err
				}
				return domain.NewEvents(clock, ps...)
			})
		if err != nil {
			return rep, err
		}
		rep.Counts[KindPrivate] = len(u.private)
	}
	if len(u.blocked) > 0 {
		_, _, err := eventstore.Execute(ctx, d.Store, domain.BlocklistStream(u.jid), blocklistAgg(d.MaxBlocklistItems),
			func(b domain.Blocklist) ([]domain.Event, error) {
				ps, err := b.Block(u.blocked...)
				if err != nil {
					return nil, err
				}
				return domain.NewEvents(clock, ps...)
			})
		if err != nil {
			return rep, err
		}
		rep.Counts[KindBlocklist] = len(u.blocked)
	}
	if p := u.prefs; p != nil {
		if _, err := d.Archive.SetPrefs(ctx, u.jid, p.def, p.always, p.never); err != nil {
			return rep, err
		}
		rep.Counts[KindPrefs] = 1
	}
	for _, st := range u.offline {
		if _, err := d.Archive.Queue(ctx, u.jid, st); err != nil {
			return rep, err
		}
		rep.Counts[KindOffline]++
	}
	if u.history != nil {
		// One append (one fsync) per batch: the fsync, not the sealing, bounds
		// an import, and a batch of this size is still a small append.
		const batch = 1024
		entries := make([]archive.Entry, 0, batch)
		flush := func() error {
			if len(entries) == 0 {
				return nil
			}
			if _, err := d.Archive.StoreMany(ctx, u.jid, entries...); err != nil {
				return err
			}
			rep.Counts[KindMessage] += len(entries)
			entries = entries[:0]
			if im.opts.Progress != nil {
				im.opts.Progress(u.jid.String(), rep.Counts[KindMessage])
			}
			return nil
		}
		err := u.history.each(func(e spoolEntry) error {
			pj, err := jid.Parse(e.partner)
			if err != nil {
				return err
			}
			entries = append(entries, archive.Entry{ID: e.id, Partner: pj, Direction: e.dir, At: e.at, Stanza: e.stanza})
			if len(entries) == batch {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err == nil {
			// Done means the user can find it: a MAM query right after
			// the import would otherwise wait for the index itself.
			if im.opts.Indexing != nil {
				im.opts.Indexing(u.jid.String())
			}
			err = d.Archive.WaitIndexed(ctx, u.jid)
		}
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// rosterEvents decides the import of u's roster into r: items set as the
// file has them (subscription states included, which no client command
// may set), versions numbered on from r's, and pending requests recorded.
func rosterEvents(r domain.Roster, u *userData, clock domain.Clock) ([]domain.Event, error) {
	var ps []domain.Payload
	ver := r.Ver()
	added := 0
	for _, it := range u.roster {
		j, err := jid.Parse(it.JID)
		if err != nil {
			return nil, err
		}
		old, ok := r.Item(j)
		if ok && slices.Equal(old.Groups, it.Groups) && old.Name == it.Name && old.Subscription == it.Subscription && old.Ask == it.Ask && old.Approved == it.Approved {
			continue
		}
		if !ok {
			added++
		}
		ver++
		ps = append(ps, domain.RosterItemSet{RosterItem: it, Ver: ver})
	}
	pending := r.PendingRequests()
	for _, req := range u.requests {
		if !slices.Contains(pending, req) {
			ps = append(ps, domain.RosterRequestReceived{JID: req})
			added++
		}
	}
	if max := r.MaxItems(); max > 0 && len(r.Items())+len(pending)+added > max {
		return nil, &domain.RosterFullError{Contact: u.jid.String(), Max: max}
	}
	return domain.NewEvents(clock, ps...)
}

// createAccount registers u. A plaintext password goes through
// accounts.Register (new verifiers, keys provisioned by its hook). SCRAM
// verifiers are recorded as they are, so the user keeps the password, and
// the archive identity is wrapped under the ClientKeys derived from
// Options.Password if given, else under interim keys that the key store
// keeps until the user's first login (see the package documentation).
func (im *importer) createAccount(u *userData, rep *UserReport) error {
	ctx, d := im.ctx, im.deps
	switch {
	case u.password != "":
		return d.Accounts.Register(ctx, u.jid, u.password)
	case len(u.verifiers) == 0:
		return d.Accounts.Register(ctx, u.jid, im.opts.Password)
	}
	_, _, err := eventstore.Execute(ctx, d.Store, domain.AccountStream(u.jid), accountAgg,
		func(a domain.Account) ([]domain.Event, error) {
			ps, err := a.Register(u.jid, u.verifiers)
			if err != nil {
				return nil, err
			}
			return domain.NewEvents(d.clock(), ps...)
		})
	if err != nil {
		return err
	}
	if im.opts.Password == "" {
		rep.Interim = true
		return d.Keys.ProvisionInterim(ctx, u.jid, u.verifiers)
	}
	keys, err := clientKeys(u.verifiers, im.opts.Password)
	if err != nil {
		return err
	}
	return d.Keys.Provision(ctx, u.jid, keys)
}
